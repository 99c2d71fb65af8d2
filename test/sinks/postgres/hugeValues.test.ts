import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { migrate } from '../../../sinks/postgres/migrations.js';
import { verifyMirror } from '../../../sinks/postgres/verify.js';
import type { ChangeEvent, ControlEvent, SnapshotEvent } from '../../../src/events/ChangeEvent.js';
import { rdbSnapshot } from '../../../src/pipeline/RdbSnapshot.js';
import type { RedisServer } from '../../harness/RedisServer.js';
import { useTestScope } from '../../harness/TestScope.js';
import {
  describeDiffs,
  dropSchema,
  mirrorCaughtUp,
  PG_URL,
  pgQuery,
  sinkFor,
  uniqueSchema,
} from './helpers.js';

/*
 * Issue 16 in the Postgres sink: byte strings of 1 MB or more are stored as content-addressed bytea chunk rows
 * (`blobs`, `blob_chunks`) referenced from the jsonb by {"blob": {"bytes", "sha256"}} (docs/postgres.md, "Huge
 * values"), against a real redis-server and a real PostgreSQL. Values of 8–24 MB keep the suite fast; full size is
 * `npm run bench:huge` with REDTAIL_HUGE_SINKS=postgres.
 */

const MB = 1024 * 1024;
const scope = useTestScope();

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** Valid UTF-8 full of characters JSON escapes, and multi-byte ones. */
const text = (n: number) => {
  const unit = Buffer.from('line "q" \\ \t\n é 日本 😀 \u0001\u001f/', 'utf8');
  return Buffer.concat(Array.from({ length: Math.ceil(n / unit.length) }, () => unit));
};
/** Binary, never valid UTF-8. */
const binary = (n: number) => {
  const b = randomBytes(n);
  b[0] = 0xff;
  return b;
};

/** The huge values of the tests, by role, made once per test file. */
const V = {
  bin: binary(16 * MB),
  text: text(12 * MB),
  elem: binary(8 * MB),
  field: text(2 * MB),
  fieldValue: binary(3 * MB),
  member: binary(4 * MB),
  zmember: text(5 * MB),
  streamValue: binary(2 * MB),
};

/** Writes one of every kind of huge byte string: a string value, list, hash, set, zset and stream elements. */
async function writeAll(master: RedisServer, prefix = ''): Promise<void> {
  const c = master.client();
  await c.set(`${prefix}s:bin`, V.bin);
  await c.set(`${prefix}s:text`, V.text, 'PX', 3_600_000);
  await c.rpush(`${prefix}l`, 'a', V.elem, 'b');
  await c.hset(`${prefix}h`, 'small', 'v', V.field, 'x', 'big', V.fieldValue);
  await c.sadd(`${prefix}t`, 'm1', V.member, 'm2');
  // A tie on score 1 between a huge member and small ones: the mirror orders ties with huge members its own way.
  await c.zadd(`${prefix}z`, 1, 'a', 1, V.zmember, 2, 'c');
  await c.xadd(`${prefix}x`, '*', 'f', V.streamValue, 'g', 'small');
}

async function verify(master: RedisServer, schema: string) {
  return verifyMirror({ master: master.url(), postgres: PG_URL, schema, timeoutMs: 60_000 });
}

/** `redtail run` into a fresh schema; `query` is appended to the sink URL (e.g. `&changes=false`). */
function run(master: RedisServer, prefix: string, query = '') {
  const schema = uniqueSchema(prefix);
  scope.defer(() => dropSchema(schema));
  const checkpoint = join(mkdtempSync(join(tmpdir(), `redtail-${prefix}-`)), 'cp.json');
  const args = ['run', '--log-level', 'warn', '--master', master.url()];
  args.push('--sink', `${PG_URL}?schema=${schema}${query}`, '--checkpoint', checkpoint);
  return { schema, start: () => scope.redtail(args) };
}

async function blobCounts(schema: string): Promise<{ blobs: number; chunks: number; parts: number }> {
  const [r] = await pgQuery<{ blobs: number; chunks: number; parts: number }>(
    `SELECT (SELECT count(*) FROM "${schema}".blobs)::int AS blobs, (SELECT count(*) FROM "${schema}".blob_chunks)::int AS chunks,
            (SELECT count(*) FROM "${schema}".blob_parts)::int AS parts`,
  );
  return r!;
}

/** SHA-256 of a blob assembled by the documented SQL function, computed by Postgres. */
async function sqlSha(schema: string, where: string): Promise<string | null> {
  const [r] = await pgQuery<{ h: string | null }>(
    `SELECT encode(sha256("${schema}".redtail_value(value)), 'hex') AS h FROM "${schema}".keys WHERE ${where}`,
  );
  return r?.h ?? null;
}

describe('huge values in the Postgres sink (issue 16)', () => {
  it('through the stream: every kind of element stored as a blob, exact, verify clean; a tampered chunk is reported', async () => {
    const master = await scope.server();
    const { schema, start } = run(master, 'hugest');
    start();
    await sleep(500);
    await mirrorCaughtUp(master, schema);
    await writeAll(master);
    await mirrorCaughtUp(master, schema);
    let v = await verify(master, schema);
    expect(v.differences.length, describeDiffs(v)).toBe(0);
    expect(v.keys).toBe(7);

    // The jsonb holds references, not the bytes: every row stays small.
    const rows = await pgQuery<{ k: string; size: number; value: unknown; blobs: string[] | null }>(
      `SELECT key_text AS k, pg_column_size(value) AS size, value, blobs FROM "${schema}".keys ORDER BY key`,
    );
    for (const r of rows) expect(r.size, r.k).toBeLessThan(2048);
    const byKey = new Map(rows.map((r) => [r.k, r]));
    expect(byKey.get('s:bin')!.value).toEqual({ blob: { bytes: V.bin.length, sha256: sha(V.bin) } });
    expect(byKey.get('l')!.value).toEqual([
      'a',
      { blob: { bytes: V.elem.length, sha256: sha(V.elem) } },
      'b',
    ]);
    expect(byKey.get('h')!.blobs?.sort()).toEqual([sha(V.field), sha(V.fieldValue)].sort());
    // Users' SQL: the documented function assembles the value; Postgres's own SHA-256 of it matches.
    expect(await sqlSha(schema, `key_text = 's:bin'`)).toBe(sha(V.bin));
    expect(await sqlSha(schema, `key_text = 's:text'`)).toBe(sha(V.text));
    const [el] = await pgQuery<{ h: string }>(
      `SELECT encode(sha256("${schema}".redtail_value(value->1)), 'hex') AS h FROM "${schema}".keys WHERE key_text = 'l'`,
    );
    expect(el!.h).toBe(sha(V.elem));
    // Chunk rows of at most 1 MB.
    const [c] = await pgQuery<{ n: number; max: number }>(
      `SELECT count(*)::int AS n, max(octet_length(chunk))::int AS max FROM "${schema}".blob_chunks WHERE sha256 = $1`,
      [sha(V.bin)],
    );
    expect(c).toEqual({ n: 16, max: MB });
    // The change log references the blobs too: no payload holds the bytes (or their base64).
    const changes = await pgQuery<{ size: number; blobs: string[] | null; op: string }>(
      `SELECT octet_length(payload::text) AS size, blobs, op FROM "${schema}".changes`,
    );
    expect(changes.length).toBeGreaterThanOrEqual(7);
    for (const ch of changes) expect(ch.size, ch.op).toBeLessThan(4096);
    expect(changes.filter((ch) => ch.blobs !== null).length).toBe(7);

    // A flipped byte deep in a chunk: the mirror's value no longer hashes to its reference.
    await pgQuery(
      `UPDATE "${schema}".blob_chunks SET chunk = overlay(chunk placing '\\x00'::bytea from 1000 for 1) WHERE sha256 = $1 AND n = 9`,
      [sha(V.bin)],
    );
    v = await verify(master, schema);
    expect(v.differences.map((d) => d.key.toString())).toEqual(['s:bin']);
    const d = v.differences[0]!;
    expect(d.redis?.value).toEqual({ blob: { bytes: V.bin.length, sha256: sha(V.bin) } });
    expect((d.mirror!.value as { blob: { sha256: string } }).blob.sha256).not.toBe(sha(V.bin));
  }, 240_000);

  it('overwritten, deleted, shared, renamed and appended huge values: blob rows follow the keys', async () => {
    const master = await scope.server();
    const { schema, start } = run(master, 'hugedel', '&changes=false');
    start();
    await sleep(500);
    await mirrorCaughtUp(master, schema);
    const c = master.client();
    const big = binary(8 * MB);
    const other = text(3 * MB);
    await c.set('a', big);
    await c.set('b', big); // the same bytes: one blob for both keys
    await c.rpush('l', big, 'x', other);
    await mirrorCaughtUp(master, schema);
    expect(await blobCounts(schema)).toEqual({ blobs: 2, chunks: 8 + 3, parts: 0 });
    await c.del('a');
    await c.lrem('l', 1, big); // found by its placeholder (the SHA-256), not its bytes
    await mirrorCaughtUp(master, schema);
    expect(await blobCounts(schema)).toEqual({ blobs: 2, chunks: 11, parts: 0 });
    await c.set('b', 'small now');
    await mirrorCaughtUp(master, schema);
    // `big` has no key left; `other` is still the list's element.
    expect(await blobCounts(schema)).toEqual({ blobs: 1, chunks: 3, parts: 0 });
    await c.rename('l', 'l2');
    await c.hset('h', 'f', big);
    await c.hdel('h', 'f');
    await c.sadd('t', big, 'm');
    await c.srem('t', big);
    await mirrorCaughtUp(master, schema);
    expect(await blobCounts(schema)).toEqual({ blobs: 1, chunks: 3, parts: 0 });
    // APPEND needs the bytes, which the mirror keeps only as a blob: the exact value is read from the master.
    await c.set('s', other);
    await c.append('s', 'tail');
    await c.zadd('z', 1, big, 1, 'a', 1, 'zz');
    await c.zpopmin('z'); // Redis orders the tie by bytes: 'a' goes, which the mirror cannot tell without them
    await mirrorCaughtUp(master, schema);
    const v = await verify(master, schema);
    expect(v.differences.length, describeDiffs(v)).toBe(0);
    const [s] = await pgQuery<{ value: unknown }>(`SELECT value FROM "${schema}".keys WHERE key_text = 's'`);
    const appended = Buffer.concat([other, Buffer.from('tail')]);
    expect(s!.value).toEqual({ blob: { bytes: appended.length, sha256: sha(appended) } });
    await c.flushall();
    await mirrorCaughtUp(master, schema);
    expect(await blobCounts(schema)).toEqual({ blobs: 0, chunks: 0, parts: 0 });
  }, 240_000);

  it('kill -9 while a huge value is half-written: the restart stores it exactly once', async () => {
    const master = await scope.server();
    const { schema, start } = run(master, 'hugekill');
    let redtail = start();
    await sleep(500);
    await mirrorCaughtUp(master, schema);
    const value = binary(24 * MB);
    const sent = master.client().set('huge:kill', value);
    // Killed while its transaction is copying the value's chunks: some, not all, are in.
    const pgc = new pg.Client({ connectionString: PG_URL });
    await pgc.connect();
    try {
      const deadline = Date.now() + 120_000;
      for (;;) {
        const { rows } = await pgc.query<{ b: string }>(
          `SELECT bytes_processed AS b FROM pg_stat_progress_copy WHERE relid = $1::regclass`,
          [`"${schema}".blob_chunks`],
        );
        if (rows.length > 0 && Number(rows[0]!.b) > 2 * MB) break;
        if (Date.now() > deadline) throw new Error('never saw the COPY of the chunks');
        await sleep(2);
      }
    } finally {
      await pgc.end();
    }
    await redtail.stop('SIGKILL');
    await sent;
    expect(await blobCounts(schema)).toEqual({ blobs: 0, chunks: 0, parts: 0 });
    redtail = start();
    await master.client().set('after', '1');
    await mirrorCaughtUp(master, schema);
    expect(await blobCounts(schema)).toEqual({ blobs: 1, chunks: 24, parts: 0 });
    const changes = await pgQuery<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${schema}".changes WHERE key = 'huge:kill'::bytea`,
    );
    expect(changes).toEqual([{ n: 1 }]);
    expect(await sqlSha(schema, `key_text = 'huge:kill'`)).toBe(sha(value));
    const v = await verify(master, schema);
    expect(v.differences.length, describeDiffs(v)).toBe(0);
  }, 240_000);
});

describe('huge values in a snapshot (issue 16)', () => {
  function control(op: ControlEvent['op'], replid: string, offset: number): ChangeEvent {
    return { v: 1, op, db: 0, source: { replid, offset, seq: 0, snapshot: true }, ts: Date.now() };
  }

  /** The master's SAVE decoded by the RDB parser (`streamThreshold` cuts raw strings in parts), loaded in batches. */
  async function load(
    master: RedisServer,
    sink: ReturnType<typeof sinkFor>,
    batch: number,
    streamThreshold?: number,
  ): Promise<SnapshotEvent[]> {
    await master.client().call('save');
    const info = await master.info('replication');
    const replid = info.master_replid!;
    const offset = Number(info.master_repl_offset);
    const events: ChangeEvent[] = [];
    const decoder = rdbSnapshot(streamThreshold ? { streamThreshold } : {})({
      replid,
      offset,
      emit: (evs) => events.push(...evs),
    });
    decoder.write(readFileSync(join(master.dir, 'dump.rdb')));
    decoder.end();
    await sink.write({ events: [control('snapshot-begin', replid, offset)], checkpoint: null });
    for (let i = 0; i < events.length; i += batch)
      await sink.write({ events: events.slice(i, i + batch), checkpoint: null });
    await sink.write({
      events: [control('snapshot-end', replid, offset)],
      checkpoint: { replid, offset, db: 0 },
    });
    return events as SnapshotEvent[];
  }

  it('whole values (bulk COPY), then a resync with strings in parts across transactions (staged upsert)', async () => {
    const master = await scope.server();
    await writeAll(master);
    const schema = uniqueSchema('hugesnap');
    scope.defer(() => dropSchema(schema));
    const sink = sinkFor(schema, { master: master.url(), changesSnapshot: true });
    scope.defer(() => sink.close());
    await sink.open();
    const first = await load(master, sink, 3);
    expect(first.every((e) => e.part === undefined)).toBe(true);
    let v = await verify(master, schema);
    expect(v.differences.length, describeDiffs(v)).toBe(0);
    expect(v.keys).toBe(7);
    expect(await sqlSha(schema, `key_text = 's:bin'`)).toBe(sha(V.bin));
    const blobsBefore = await blobCounts(schema);

    // The master changes; the resync cuts raw strings in parts of 3 MB, one event per transaction.
    const c = master.client();
    const grown = binary(10 * MB);
    await c.set('s:new', grown);
    await c.del('t');
    const second = await load(master, sink, 1, 3 * MB);
    const parts = second.filter((e) => e.part !== undefined && e.key.toString() === 's:new');
    expect(parts.length).toBeGreaterThanOrEqual(4);
    v = await verify(master, schema);
    expect(v.differences.length, describeDiffs(v)).toBe(0);
    expect(await sqlSha(schema, `key_text = 's:new'`)).toBe(sha(grown));
    expect(await sqlSha(schema, `key_text = 's:bin'`)).toBe(sha(V.bin));
    const after = await blobCounts(schema);
    // No parts left over; `s:new` added one blob, and the deleted set's member is still referenced by `changes`.
    expect(after.parts).toBe(0);
    expect(after.blobs).toBeGreaterThanOrEqual(blobsBefore.blobs + 1);
    const orphans = await pgQuery<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${schema}".blobs b
       WHERE NOT EXISTS (SELECT 1 FROM "${schema}".keys k WHERE k.blobs @> ARRAY[b.sha256])
         AND NOT EXISTS (SELECT 1 FROM "${schema}".changes c WHERE c.blobs @> ARRAY[b.sha256])`,
    );
    expect(orphans).toEqual([{ n: 0 }]);
  }, 240_000);
});

describe('huge values and the change log (issue 16)', () => {
  it('a blob lives while a changes row references it; changesRetention deleting that row collects it', async () => {
    const schema = uniqueSchema('hugeret');
    scope.defer(() => dropSchema(schema));
    const sink = sinkFor(schema, { changesRetention: '1h' });
    scope.defer(() => sink.close());
    await sink.open();
    const big = binary(3 * MB);
    const replid = 'r'.repeat(40);
    const set = (offset: number, value: Buffer, ts: number): ChangeEvent => ({
      v: 1,
      op: 'set',
      db: 0,
      key: Buffer.from('k'),
      type: 'string',
      value,
      source: { replid, offset, seq: 0, snapshot: false },
      ts,
    });
    const write = (ev: ChangeEvent) =>
      sink.write({ events: [ev], checkpoint: { replid, offset: ev.source.offset, db: 0 } });
    await write(set(10, big, Date.now()));
    await write(set(20, Buffer.from('small'), Date.now()));
    // The key no longer references the blob, its changes row still does.
    expect(await blobCounts(schema)).toEqual({ blobs: 1, chunks: 3, parts: 0 });
    // That row ages past the retention, which runs at most once a minute: let the next transaction run it now.
    await pgQuery(
      `UPDATE "${schema}".changes SET received_at = now() - interval '2 hours' WHERE "offset" = 10`,
    );
    Reflect.set(sink, 'lastRetention', 0);
    await write(set(30, Buffer.from('smaller'), Date.now()));
    expect(await pgQuery(`SELECT "offset" FROM "${schema}".changes ORDER BY 1`)).toEqual([
      { offset: '20' },
      { offset: '30' },
    ]);
    expect(await blobCounts(schema)).toEqual({ blobs: 0, chunks: 0, parts: 0 });
  });
});

describe('migration 2 (huge values)', () => {
  it('upgrades a mirror created by schema version 1 on start, keeping its rows', async () => {
    const schema = uniqueSchema('hugemig');
    scope.defer(() => dropSchema(schema));
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      expect(await migrate(c, schema, 1)).toBe(1);
      await c.query(
        `INSERT INTO "${schema}".keys (db, key, key_text, type, value, updated_offset, snapshot_gen) VALUES (0, 'old'::bytea, 'old', 'string', '"v"', 10, 1)`,
      );
      const cols = await c.query(
        `SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND column_name = 'blobs'`,
        [schema],
      );
      expect(cols.rowCount).toBe(0);
    } finally {
      await c.end();
    }
    const sink = sinkFor(schema);
    scope.defer(() => sink.close());
    await sink.open();
    const versions = await pgQuery(`SELECT version FROM "${schema}".schema_migrations ORDER BY version`);
    expect(versions).toEqual([{ version: 1 }, { version: 2 }, { version: 3 }]);
    const big = binary(2 * MB);
    const source = { replid: 'r'.repeat(40), offset: 20, seq: 0, snapshot: false };
    await sink.write({
      events: [
        {
          v: 1,
          op: 'set',
          db: 0,
          key: Buffer.from('new'),
          type: 'string',
          value: big,
          source,
          ts: Date.now(),
        },
      ],
      checkpoint: { replid: source.replid, offset: 20, db: 0 },
    });
    const rows = await pgQuery<{ k: string; value: unknown }>(
      `SELECT key_text AS k, value FROM "${schema}".keys ORDER BY key`,
    );
    expect(rows).toEqual([
      { k: 'new', value: { blob: { bytes: big.length, sha256: sha(big) } } },
      { k: 'old', value: 'v' },
    ]);
    expect(await sqlSha(schema, `key_text = 'new'`)).toBe(sha(big));
  });
});
