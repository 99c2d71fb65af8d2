import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../../sinks/postgres/migrations.js';
import { verifyMirror } from '../../../sinks/postgres/verify.js';
import type { ChangeEvent, SnapshotEvent } from '../../../src/events/ChangeEvent.js';
import { useTestScope } from '../../harness/TestScope.js';
import {
  controlEvent,
  describeDiffs,
  dropSchema,
  MirrorHarness,
  mirrorCaughtUp,
  mirrorRun,
  PG_URL,
  pgQuery,
  rng,
  sinkFor,
  TEST_REPLID,
  uniqueSchema,
} from './helpers.js';

/**
 * Big collections stored one row per member (docs/postgres.md, "Big collections"): real commands on a real master,
 * the stream it propagates applied to the sink, and the mirror compared with the master by `redtail verify` and by
 * direct SQL on the per-type views, while each collection crosses the threshold (40 here) both ways.
 */
const BIG = 40;
const scope = useTestScope();

/** Where a key's value lives: its `member_rows`, or null when inline; undefined when the key is absent. */
async function memberRows(schema: string, key: string): Promise<number | null | undefined> {
  const rows = await pgQuery<{ n: string | null }>(
    `SELECT member_rows AS n FROM "${schema}".keys WHERE key = $1::bytea`,
    [Buffer.from(key)],
  );
  if (rows.length === 0) return undefined;
  return rows[0]!.n === null ? null : Number(rows[0]!.n);
}

/** Every row-stored key has exactly `member_rows` rows in its type's table; no member row is orphaned. */
async function rowsConsistent(schema: string): Promise<unknown[]> {
  return pgQuery(
    `WITH m AS (SELECT db, key, 'hash' AS t FROM "${schema}".hash_fields
                UNION ALL SELECT db, key, 'set' FROM "${schema}".set_members
                UNION ALL SELECT db, key, 'zset' FROM "${schema}".zset_members
                UNION ALL SELECT db, key, 'list' FROM "${schema}".list_items),
          c AS (SELECT db, key, t, count(*) AS n FROM m GROUP BY db, key, t)
     SELECT k.key, k.member_rows, c.n FROM "${schema}".keys k FULL JOIN c ON c.db = k.db AND c.key = k.key AND c.t = k.type
     WHERE k.member_rows IS DISTINCT FROM c.n`,
  );
}

const hex = (b: Buffer) => b.toString('hex');

/** The key as the master has it and as the type's view shows it, both as sorted hex strings (lists in order). */
async function viewAndMaster(h: MirrorHarness, type: string, key: string): Promise<[string[], string[]]> {
  const c = h.master.client();
  const s = `"${h.schema}"`;
  const k = Buffer.from(key);
  switch (type) {
    case 'hash': {
      const flat = (await c.callBuffer('HGETALL', key)) as Buffer[];
      const master: string[] = [];
      for (let i = 0; i < flat.length; i += 2) master.push(`${hex(flat[i]!)}=${hex(flat[i + 1]!)}`);
      const rows = await pgQuery<{ f: Buffer; v: Buffer }>(
        `SELECT ${s}.redtail_value(field) AS f, ${s}.redtail_value(value) AS v FROM ${s}.live_hash_fields WHERE key = $1`,
        [k],
      );
      return [master.sort(), rows.map((r) => `${hex(r.f)}=${hex(r.v)}`).sort()];
    }
    case 'set': {
      const master = (await c.smembersBuffer(key)).map(hex);
      const rows = await pgQuery<{ m: Buffer }>(
        `SELECT ${s}.redtail_value(member) AS m FROM ${s}.live_set_members WHERE key = $1`,
        [k],
      );
      return [master.sort(), rows.map((r) => hex(r.m)).sort()];
    }
    case 'zset': {
      const flat = await c.zrangeBuffer(key, 0, -1, 'WITHSCORES');
      const master: string[] = [];
      const score = (b: Buffer) => {
        const t = b.toString();
        return t === 'inf' ? Number.POSITIVE_INFINITY : t === '-inf' ? Number.NEGATIVE_INFINITY : Number(t);
      };
      for (let i = 0; i < flat.length; i += 2) master.push(`${hex(flat[i]!)}@${score(flat[i + 1]!)}`);
      const rows = await pgQuery<{ m: Buffer; score: number }>(
        `SELECT ${s}.redtail_value(member) AS m, score FROM ${s}.live_zset_members WHERE key = $1`,
        [k],
      );
      return [master.sort(), rows.map((r) => `${hex(r.m)}@${r.score}`).sort()];
    }
    default: {
      const master = (await c.lrangeBuffer(key, 0, -1)).map(hex);
      const rows = await pgQuery<{ v: Buffer }>(
        `SELECT ${s}.redtail_value(value) AS v FROM ${s}.live_list_items WHERE key = $1 ORDER BY idx`,
        [k],
      );
      return [master, rows.map((r) => hex(r.v))];
    }
  }
}

describe('big collections in member rows (bigCollectionMembers = 40)', () => {
  let h: MirrorHarness;
  beforeAll(async () => {
    h = await MirrorHarness.start({}, { bigCollectionMembers: BIG });
  });
  afterAll(async () => {
    await h?.stop();
  });

  /** Verify, the member-row invariant, and the type's view against the master's own reads. */
  async function agree(type: string, key: string): Promise<void> {
    const r = await h.verify();
    expect(r.differences.length, describeDiffs(r)).toBe(0);
    expect(await rowsConsistent(h.schema)).toEqual([]);
    const [master, view] = await viewAndMaster(h, type, key);
    expect(view).toEqual(master);
  }

  const range = (from: number, to: number, f: (i: number) => Array<string | Buffer | number>) =>
    Array.from({ length: to - from }, (_, i) => f(from + i));

  it('hash: inline, past the threshold into rows, member ops on rows, down to half and back inline', async () => {
    await h.run([['hset', 'h', ...range(0, 30, (i) => [`f${i}`, `v${i}`]).flat()]]);
    expect(await memberRows(h.schema, 'h')).toBeNull();
    await agree('hash', 'h');
    await h.run([['hset', 'h', ...range(30, 60, (i) => [`f${i}`, `v${i}`]).flat()]]);
    expect(await memberRows(h.schema, 'h')).toBe(60);
    await agree('hash', 'h');
    const binField = Buffer.from([0, 0xff, 0x41, 0x0a]);
    await h.run([
      ['hset', 'h', 'f1', 'changed', 'new', '1'],
      ['hincrby', 'h', 'counter', 5],
      ['hincrby', 'h', 'counter', -2],
      ['hdel', 'h', 'f2', 'f3', 'nope'],
      ['hsetnx', 'h', 'f4', 'not written'],
      ['hsetnx', 'h', 'nx', 'written'],
      ['hincrbyfloat', 'h', 'fl', '1.5'],
      ['hset', 'h', binField, Buffer.from([0xc3, 0x28])],
      ['hset', 'h', 'long'.repeat(40), 'a field longer than 32 bytes: its row id is its SHA-256'],
      ['hmset', 'h', 'f5', 'x', 'f6', 'y'],
    ]);
    expect(await memberRows(h.schema, 'h')).toBe(64);
    await agree('hash', 'h');
    // Between half the threshold and the threshold: still rows (hysteresis).
    await h.run([['hdel', 'h', ...range(0, 40, (i) => [`f${i}`]).flat()]]);
    // f2 and f3 were deleted already: 64 - 38.
    expect(await memberRows(h.schema, 'h')).toBe(26);
    await agree('hash', 'h');
    await h.run([['hdel', 'h', ...range(40, 50, (i) => [`f${i}`]).flat()]]);
    expect(await memberRows(h.schema, 'h')).toBeNull();
    await agree('hash', 'h');
    await h.run([
      ['hset', 'h', ...range(100, 150, (i) => [`g${i}`, `v${i}`]).flat()],
      ['del', 'h'],
    ]);
    expect(await memberRows(h.schema, 'h')).toBeUndefined();
    expect(await rowsConsistent(h.schema)).toEqual([]);
  });

  it('set: sadd/srem/smove/spop/sinterstore on rows, back inline', async () => {
    await h.run([['sadd', 's', ...range(0, 50, (i) => [`m${i}`]).flat()]]);
    expect(await memberRows(h.schema, 's')).toBe(50);
    await h.run([
      ['sadd', 's', 'a', 'b', 'm1', Buffer.from([0, 1, 2])],
      ['srem', 's', 'm2', 'm3', 'zz'],
      ['smove', 's', 'small', 'm4'],
      ['smove', 'small', 's', 'm4'],
      ['smove', 's', 's2', 'm5'],
      ['spop', 's'],
      ['spop', 's', 3],
      ['sadd', 'other', ...range(0, 60, (i) => [`m${i * 2}`]).flat()],
      ['sinterstore', 'inter', 's', 'other'],
    ]);
    await agree('set', 's');
    await agree('set', 'inter');
    expect(await memberRows(h.schema, 'other')).toBe(60);
    await h.run([['srem', 's', ...range(0, 50, (i) => [`m${i}`]).flat()]]);
    expect(await memberRows(h.schema, 's')).toBeNull();
    await agree('set', 's');
  });

  it('zset: zadd flags/zincrby/zrem on rows; pops and range removals load the whole zset', async () => {
    await h.run([['zadd', 'z', ...range(0, 50, (i) => [i % 7, `m${i}`]).flat()]]);
    expect(await memberRows(h.schema, 'z')).toBe(50);
    await h.run([
      ['zincrby', 'z', 3, 'm1'],
      ['zincrby', 'z', -1.5, 'new'],
      ['zadd', 'z', 'nx', 100, 'm2', 100, 'nx1'],
      ['zadd', 'z', 'xx', 100, 'm3', 100, 'xx1'],
      ['zadd', 'z', 'lt', 0, 'm4'],
      ['zadd', 'z', 'gt', 50, 'm5'],
      ['zadd', 'z', 'inf', 'top', '-inf', 'bottom'],
      ['zrem', 'z', 'm6', 'm7', 'zz'],
    ]);
    await agree('zset', 'z');
    const before = { ...h.sink.stats.memberRows };
    await h.run([
      ['zpopmin', 'z'],
      ['zpopmax', 'z', 2],
      ['zremrangebyrank', 'z', 0, 1],
      ['zremrangebyscore', 'z', 3, 4],
    ]);
    await agree('zset', 'z');
    // Loaded whole, but only the removed members' rows were written: nothing was copied again.
    const after = h.sink.stats.memberRows;
    expect(after?.wholeLoads).toBeGreaterThan(before.wholeLoads ?? 0);
    expect(after?.rowsCopied).toBe(before.rowsCopied);
    expect((after?.rowsDeleted ?? 0) - (before.rowsDeleted ?? 0)).toBeGreaterThanOrEqual(5);
    await h.run([['zremrangebyrank', 'z', 0, -10]]);
    expect(await memberRows(h.schema, 'z')).toBeNull();
    await agree('zset', 'z');
  });

  it('zset: ZINCRBY on rows (present, absent, repeated in one batch, overflow to inf) adds in order, counts inserts', async () => {
    await h.run([['zadd', 'zi', ...range(0, 50, (i) => [i, `m${i}`]).flat()]]);
    expect(await memberRows(h.schema, 'zi')).toBe(50);
    await h.run([
      // Present, three times: ((1 + 0.1) + 0.2) + 0.7 is 2.0000000000000004, 1 + (0.1 + 0.2 + 0.7) would be 2.
      ['zincrby', 'zi', 0.1, 'm1'],
      ['zincrby', 'zi', 0.2, 'm1'],
      ['zincrby', 'zi', 0.7, 'm1'],
      // Absent, then incremented again in the same batch: inserted by the first round, updated by the second.
      ['zincrby', 'zi', 2.5, 'new1'],
      ['zincrby', 'zi', -1, 'new1'],
      ['zincrby', 'zi', '-inf', 'new2'],
      ['zincrby', 'zi', 1e308, 'm2'],
      ['zincrby', 'zi', 1e308, 'm2'],
      ['zadd', 'zi', 'incr', 'ch', 5, 'm4'],
      ['zincrby', 'zi', 1, 'm3'],
      ['zrem', 'zi', 'm3'],
      ['zadd', 'zi', 'xx', 'incr', 5, 'm5'],
    ]);
    expect(await memberRows(h.schema, 'zi')).toBe(51);
    // Where the batch's member-row time went, per kind of statement (the bench prints it).
    expect(h.sink.stats.memberRows?.statementMs['zset members']).toBeGreaterThan(0);
    await agree('zset', 'zi');
    // Incremented and emptied in one batch.
    await h.run([
      ['zincrby', 'zi', 1, 'm6'],
      ['zrem', 'zi', ...range(0, 60, (i) => [`m${i}`]).flat(), 'new1', 'new2'],
    ]);
    expect(await memberRows(h.schema, 'zi')).toBeUndefined();
    expect(await rowsConsistent(h.schema)).toEqual([]);
  });

  it('list: pushes, pops and moves at the ends on rows; index ops load the whole list', async () => {
    await h.run([['rpush', 'l', ...range(0, 50, (i) => [`e${i}`]).flat()]]);
    expect(await memberRows(h.schema, 'l')).toBe(50);
    await h.run([
      ['lpush', 'l', 'h1', 'h2'],
      ['rpush', 'l', 't1'],
      ['lpop', 'l'],
      ['rpop', 'l', 2],
      ['lmove', 'l', 'l', 'right', 'left'],
      ['lmove', 'l', 'l', 'left', 'right'],
      ['rpoplpush', 'l', 'l2'],
      ['lmove', 'l2', 'l', 'left', 'left'],
    ]);
    await agree('list', 'l');
    await h.run([
      ['lset', 'l', 5, 'set5'],
      ['linsert', 'l', 'before', 'e10', 'ins'],
      ['lrem', 'l', 0, 'e11'],
      ['rpush', 'l', 'after-index-ops'],
      ['lpop', 'l', 3],
    ]);
    await agree('list', 'l');
    // Many pops in one batch reach past everything a partial load would hold: they meet in the middle.
    await h.run(
      [
        ['rpop', 'l', 10],
        ['lpop', 'l', 10],
        ['rpush', 'l', 'x'],
        ['lpop', 'l', 5],
      ],
      1000,
    );
    await agree('list', 'l');
    await h.run([['ltrim', 'l', 0, 9]]);
    expect(await memberRows(h.schema, 'l')).toBeNull();
    await agree('list', 'l');
  });

  it('keyspace ops on row-stored keys: expire/persist/rename/copy/move/swapdb/flushdb', async () => {
    await h.run([
      ['hset', 'kh', ...range(0, 45, (i) => [`f${i}`, `v${i}`]).flat()],
      ['expire', 'kh', 5000],
      ['hset', 'kh', 'f0', 'after expire'],
      ['rename', 'kh', 'kh2'],
      ['copy', 'kh2', 'kh3'],
      ['persist', 'kh3'],
      ['move', 'kh3', 1],
      ['sadd', 'ks', ...range(0, 45, (i) => [`m${i}`]).flat()],
      ['swapdb', 0, 1],
    ]);
    let r = await h.verify();
    expect(r.differences.length, describeDiffs(r)).toBe(0);
    expect(await rowsConsistent(h.schema)).toEqual([]);
    await h.run([['swapdb', 0, 1], ['flushdb']]);
    r = await h.verify();
    expect(r.differences.length, describeDiffs(r)).toBe(0);
    expect(await rowsConsistent(h.schema)).toEqual([]);
  });

  it('a randomized member workload over big collections agrees after every round', async () => {
    const rand = rng(1313);
    const m = () => `m${Math.floor(rand() * 120)}`;
    const n = () => Math.floor(rand() * 20) - 5;
    const key = (t: string) => `${t}${Math.floor(rand() * 3)}`;
    const gens: Array<() => Array<string | number>> = [
      () => ['hset', key('rh'), m(), `${n()}`, m(), 'x'],
      () => ['hdel', key('rh'), m(), m()],
      () => ['hincrby', key('rh'), `c${m()}`, n()],
      () => ['sadd', key('rs'), m(), m(), m()],
      () => ['srem', key('rs'), m()],
      () => ['smove', key('rs'), key('rs'), m()],
      () => ['zadd', key('rz'), n(), m(), n(), m()],
      () => ['zincrby', key('rz'), n(), m()],
      () => ['zrem', key('rz'), m()],
      () => ['rpush', key('rl'), m(), m()],
      () => ['lpush', key('rl'), m()],
      () => ['lpop', key('rl')],
      () => ['rpop', key('rl'), 2],
      () => ['lmove', key('rl'), key('rl'), 'right', 'left'],
    ];
    for (let round = 0; round < 4; round++) {
      const cmds: Array<Array<string | number>> = [];
      for (let i = 0; i < 800; i++) cmds.push(gens[Math.floor(rand() * gens.length)]!());
      await h.run(cmds, 97);
      const r = await h.verify();
      expect(r.differences.length, describeDiffs(r)).toBe(0);
      expect(await rowsConsistent(h.schema)).toEqual([]);
    }
    const big = await pgQuery<{ n: string }>(
      `SELECT count(*) AS n FROM "${h.schema}".keys WHERE member_rows IS NOT NULL`,
    );
    expect(Number(big[0]!.n)).toBeGreaterThan(0);
  });

  it('verify catches a tampered, a lost and an extra member of row-stored collections', async () => {
    await h.run([
      ['hset', 'th', ...range(0, 50, (i) => [`f${i}`, `v${i}`]).flat()],
      ['sadd', 'ts', ...range(0, 50, (i) => [`m${i}`]).flat()],
      ['zadd', 'tz', ...range(0, 50, (i) => [i, `m${i}`]).flat()],
      ['rpush', 'tl', ...range(0, 50, (i) => [`e${i}`]).flat()],
      ['hset', 'tok', ...range(0, 50, (i) => [`f${i}`, `v${i}`]).flat()],
    ]);
    const s = `"${h.schema}"`;
    await pgQuery(
      `UPDATE ${s}.hash_fields SET value = '"tampered"' WHERE key = 'th'::bytea AND field = 'f17'::bytea`,
    );
    await pgQuery(`DELETE FROM ${s}.set_members WHERE key = 'ts'::bytea AND member = 'm33'::bytea`);
    await pgQuery(
      `INSERT INTO ${s}.zset_members (db, key, h, member, member_j, score) VALUES (0, 'tz'::bytea, '\\x00657874'::bytea, 'ext'::bytea, '"ext"', 7)`,
    );
    await pgQuery(
      `UPDATE ${s}.list_items SET value = '"moved"' WHERE key = 'tl'::bytea AND pos = (SELECT min(pos) + 20 FROM ${s}.list_items WHERE key = 'tl'::bytea)`,
    );
    const r = await h.verify();
    expect(r.differences.map((d) => d.key.toString()).sort()).toEqual(['th', 'tl', 'ts', 'tz']);
    await h.run([['del', 'th', 'ts', 'tz', 'tl', 'tok']]);
    expect((await h.verify()).differences).toEqual([]);
    expect(await rowsConsistent(h.schema)).toEqual([]);
  });
});

describe('snapshot collections in parts (values above the parser streamThreshold)', () => {
  it('parts after the first append to member rows; a value reaching the threshold in its parts moves to rows', async () => {
    const schema = uniqueSchema('bigparts');
    scope.defer(() => dropSchema(schema));
    const sink = sinkFor(schema, { bigCollectionMembers: BIG });
    scope.defer(() => sink.close());
    await sink.open();
    const part = (key: string, type: string, value: unknown, n: number, last: boolean, seq: number) =>
      ({
        v: 1,
        op: 'snapshot',
        db: 0,
        key: Buffer.from(key),
        type,
        value,
        expireAt: null,
        part: n,
        last,
        source: { replid: TEST_REPLID, offset: 0, seq, snapshot: true },
        ts: Date.now(),
      }) as SnapshotEvent;
    const els = (p: string, from: number, to: number) =>
      Array.from({ length: to - from }, (_, i) => Buffer.from(`${p}${from + i}`));
    let seq = 1;
    const batches: ChangeEvent[][] = [
      [controlEvent('snapshot-begin', 0)],
      // 50 members in part 0: rows at once; then parts of 30 appended.
      [
        part('ps', 'set', els('m', 0, 50), 0, false, seq++),
        part('pl', 'list', els('e', 0, 50), 0, false, seq++),
      ],
      [
        part('ps', 'set', els('m', 50, 80), 1, false, seq++),
        part('pl', 'list', els('e', 50, 80), 1, false, seq++),
      ],
      [
        part('ps', 'set', els('m', 80, 90), 2, true, seq++),
        part('pl', 'list', els('e', 80, 90), 2, true, seq++),
      ],
      // 20 + 15 inline, then the third part takes it past 40 in the same transaction as a whole key.
      [
        part(
          'ph',
          'hash',
          els('f', 0, 20).map((f) => [f, Buffer.from('v')]),
          0,
          false,
          seq++,
        ),
        part(
          'ph',
          'hash',
          els('f', 20, 35).map((f) => [f, Buffer.from('v')]),
          1,
          false,
          seq++,
        ),
      ],
      [
        part(
          'ph',
          'hash',
          els('f', 35, 45).map((f) => [f, Buffer.from('v')]),
          2,
          true,
          seq++,
        ),
      ],
      [controlEvent('snapshot-end', 0)],
    ];
    for (const events of batches) await sink.write({ events, checkpoint: null });
    expect(await memberRows(schema, 'ps')).toBe(90);
    expect(await memberRows(schema, 'pl')).toBe(90);
    expect(await memberRows(schema, 'ph')).toBe(45);
    expect(await rowsConsistent(schema)).toEqual([]);
    const list = await pgQuery<{ v: string }>(
      `SELECT value #>> '{}' AS v FROM "${schema}".live_list_items WHERE key_text = 'pl' ORDER BY idx`,
    );
    expect(list.map((r) => r.v)).toEqual(els('e', 0, 90).map(String));
    const set = await pgQuery<{ v: unknown }>(
      `SELECT value AS v FROM "${schema}".live_keys WHERE key_text = 'ps'`,
    );
    expect(set[0]!.v).toEqual(
      els('m', 0, 90)
        .map(String)
        .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
    );
    const hash = await pgQuery<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${schema}".live_hash_fields WHERE key_text = 'ph'`,
    );
    expect(hash).toEqual([{ n: 45 }]);
  });
});

describe('migration 3 (big collections)', () => {
  it('a mirror created by schema version 2 migrates on start, verifies clean, and its big hash moves to rows', async () => {
    const fields = Array.from({ length: 60 }, (_, i) => [`f${String(i).padStart(2, '0')}`, `v${i}`]);
    const h = await MirrorHarness.start({}, { bigCollectionMembers: BIG }, async (h) => {
      // The master's keys, and the rows a version-2 redtail wrote for them (inline jsonb, fields sorted by bytes).
      await h.master.client().hset('old', ...fields.flat());
      await h.master.client().set('str', 'v');
      await h.tap.waitForOffset(Number((await h.master.info('replication')).master_repl_offset));
      h.tap.drain();
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      try {
        expect(await migrate(c, h.schema, 2)).toBe(2);
        await c.query(
          `INSERT INTO "${h.schema}".keys (db, key, key_text, type, value, updated_offset, snapshot_gen)
           VALUES (0, 'old'::bytea, 'old', 'hash', $1, 1, 1), (0, 'str'::bytea, 'str', 'string', '"v"', 1, 1)`,
          [JSON.stringify(fields)],
        );
      } finally {
        await c.end();
      }
    });
    try {
      const versions = await pgQuery(`SELECT version FROM "${h.schema}".schema_migrations ORDER BY version`);
      expect(versions).toEqual([{ version: 1 }, { version: 2 }, { version: 3 }]);
      expect(await memberRows(h.schema, 'old')).toBeNull();
      let r = await h.verify();
      expect(r.differences.length, describeDiffs(r)).toBe(0);
      const inline = await pgQuery(
        `SELECT count(*)::int AS n FROM "${h.schema}".live_hash_fields WHERE key = 'old'`,
      );
      expect(inline).toEqual([{ n: 60 }]);
      await h.run([['hset', 'old', 'f99', 'new']]);
      expect(await memberRows(h.schema, 'old')).toBe(61);
      r = await h.verify();
      expect(r.differences.length, describeDiffs(r)).toBe(0);
      expect(await rowsConsistent(h.schema)).toEqual([]);
    } finally {
      await h.stop();
    }
  });
});

describe('big collections through redtail run: snapshot into rows, kill -9 mid-batch, exactly once', () => {
  it('the mirror equals the master after a kill -9 during member updates, and no change row is doubled', async () => {
    const master = await scope.server();
    const c: Redis = master.client();
    // Above verify's chunk size (5,000 members, compared in HSCAN/ZRANGE/... chunks on the master's side).
    const N = 6_000;
    for (let i = 0; i < N; i += 500) {
      const p = c.pipeline();
      p.hset('bh', ...Array.from({ length: 500 }, (_, j) => [`f${i + j}`, `v${i + j}`]).flat());
      p.zadd('bz', ...Array.from({ length: 500 }, (_, j) => [0, `m${i + j}`]).flat());
      p.sadd('bs', ...Array.from({ length: 500 }, (_, j) => `m${i + j}`));
      p.rpush('bl', ...Array.from({ length: 500 }, (_, j) => `e${i + j}`));
      await p.exec();
    }
    const { schema, start } = mirrorRun(scope, master, 'bigkill', '&bigCollectionMembers=1000');
    let rt = start();
    await mirrorCaughtUp(master, schema);
    // The snapshot wrote them straight into member rows.
    for (const k of ['bh', 'bz', 'bs', 'bl']) expect(await memberRows(schema, k)).toBe(N);
    const rand = rng(99);
    const burst = async (count: number) => {
      for (let done = 0; done < count; done += 200) {
        const p = c.pipeline();
        for (let i = 0; i < 200; i++) {
          const m = Math.floor(rand() * N);
          p.hset('bh', `f${m}`, `u${done + i}`);
          p.zincrby('bz', 1, `m${m}`);
          if (rand() < 0.5) p.srem('bs', `m${m}`);
          else p.sadd('bs', `m${m}`);
          p.lmove('bl', 'bl', 'RIGHT', 'LEFT');
        }
        await p.exec();
      }
    };
    await burst(2_000);
    const inFlight = burst(6_000);
    await sleep(150);
    rt.proc.kill('SIGKILL');
    await rt.exited;
    await inFlight;
    rt = start();
    await mirrorCaughtUp(master, schema);
    const verify = await verifyMirror({ master: master.url(), postgres: PG_URL, schema, timeoutMs: 60_000 });
    expect(verify.differences.length, describeDiffs(verify)).toBe(0);
    expect(await rowsConsistent(schema)).toEqual([]);
    const dup = await pgQuery<{ n: string }>(
      `SELECT count(*) AS n FROM (SELECT 1 FROM "${schema}".changes GROUP BY replid, "offset", seq HAVING count(*) > 1) d`,
    );
    expect(Number(dup[0]!.n)).toBe(0);
    // Every HSET, ZINCRBY and LMOVE after the snapshot is in the change log once (SADD/SREM of a member already
    // there/absent are not propagated, so they are not counted): 8,000 of each.
    const logged = await pgQuery<{ op: string; n: string }>(
      `SELECT op, count(*) AS n FROM "${schema}".changes WHERE op IN ('hset', 'zadd', 'lmove') GROUP BY op ORDER BY op`,
    );
    expect(logged.map((r) => [r.op, Number(r.n)])).toEqual([
      ['hset', 8_000],
      ['lmove', 8_000],
      ['zadd', 8_000],
    ]);
    await rt.stop('SIGTERM');
    // Verify reads row-stored collections through their member rows: one tampered, lost or extra member deep in each
    // is reported on its key.
    await pgQuery(
      `UPDATE "${schema}".hash_fields SET value = '"x"' WHERE key = 'bh'::bytea AND field = 'f4321'::bytea`,
    );
    await pgQuery(
      `UPDATE "${schema}".zset_members SET score = score + 1 WHERE key = 'bz'::bytea AND member = 'm5555'::bytea`,
    );
    await pgQuery(
      `INSERT INTO "${schema}".set_members (db, key, h, member, member_j) VALUES (0, 'bs'::bytea, '\\x00787878'::bytea, 'xxx'::bytea, '"xxx"')`,
    );
    await pgQuery(
      `DELETE FROM "${schema}".list_items WHERE key = 'bl'::bytea AND pos = (SELECT min(pos) + 4000 FROM "${schema}".list_items WHERE key = 'bl'::bytea)`,
    );
    const tampered = await verifyMirror({
      master: master.url(),
      postgres: PG_URL,
      schema,
      timeoutMs: 60_000,
    });
    expect(tampered.differences.map((d) => d.key.toString()).sort()).toEqual(['bh', 'bl', 'bs', 'bz']);
  });
});
