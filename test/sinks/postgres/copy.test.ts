import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CopyEncodeError,
  type CopyType,
  type CopyValue,
  copyBinary,
  encodeCopyBinary,
} from '../../../sinks/postgres/copy.js';
import { encodeBytes } from '../../../sinks/postgres/model/encoding.js';
import { verifyMirror } from '../../../sinks/postgres/verify.js';
import type { ChangeEvent, ControlEvent, SnapshotEvent } from '../../../src/events/ChangeEvent.js';
import { rdbSnapshot } from '../../../src/pipeline/RdbSnapshot.js';
import { RedisServer } from '../../harness/RedisServer.js';
import { describeDiffs, dropSchema, PG_URL, pgQuery, rng, sinkFor, uniqueSchema } from './helpers.js';

const TYPES: CopyType[] = ['int4', 'bytea', 'text', 'jsonb', 'int8', 'timestamptz'];
const COLUMNS = ['db', 'key', 't', 'j', 'n', 'ts'];

/** Byte strings that break naive COPY encoders: text-format escapes, the end-of-data marker, invalid UTF-8. */
const HOSTILE: Buffer[] = [
  Buffer.from([0]),
  Buffer.from('a\0b'),
  Buffer.from('\\'),
  Buffer.from('\\.'),
  Buffer.from('\\.\n'),
  Buffer.from('\\N'),
  Buffer.from('tab\there'),
  Buffer.from('new\nline\r\n'),
  Buffer.from('"quoted",comma'),
  Buffer.from([0xff, 0xfe]),
  Buffer.from([0xc3, 0x28]),
  Buffer.from([0xed, 0xa0, 0x80]), // an encoded UTF-16 surrogate: not UTF-8
  Buffer.from([0xf0, 0x9f, 0x98]), // truncated 4-byte sequence
  Buffer.from('emoji 😀 and \u2028 and é'),
  Buffer.alloc(0),
  Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
];

function concat(it: Iterable<Buffer>): Buffer {
  return Buffer.concat([...it]);
}

describe('binary COPY encoder', () => {
  it('writes the documented format byte for byte', () => {
    const out = concat(
      encodeCopyBinary(TYPES, [
        [7, Buffer.from([0, 0x5c, 0xff]), 'a\tb', '"x"', -2, 946_684_800_001],
        [null, null, null, null, null, null],
      ]),
    );
    const expected = Buffer.concat([
      Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'),
      Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]),
      Buffer.from([0, 6]),
      Buffer.from([0, 0, 0, 4, 0, 0, 0, 7]),
      Buffer.from([0, 0, 0, 3, 0, 0x5c, 0xff]),
      Buffer.from([0, 0, 0, 3, 0x61, 0x09, 0x62]),
      Buffer.from([0, 0, 0, 4, 1, 0x22, 0x78, 0x22]),
      Buffer.from([0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]),
      Buffer.from([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x03, 0xe8]), // 1 ms after 2000-01-01 = 1000 us
      Buffer.from([0, 6]),
      Buffer.alloc(6 * 4, 0xff), // six NULLs: length -1 each
      Buffer.from([0xff, 0xff]),
    ]);
    expect(out.toString('hex')).toBe(expected.toString('hex'));
  });

  it('rejects what Postgres would reject or silently corrupt, before sending it', () => {
    const bad: Array<[CopyType, CopyValue]> = [
      ['text', 'a\0b'],
      ['jsonb', '"\0"'],
      ['int8', 2 ** 53],
      ['int8', 1.5],
      ['int4', 2 ** 31],
      ['timestamptz', 1.5],
      ['bytea', 'not a buffer'],
      ['text', Buffer.from('x')],
    ];
    for (const [t, v] of bad) expect(() => concat(encodeCopyBinary([t], [[v]]))).toThrow(CopyEncodeError);
    expect(() => concat(encodeCopyBinary(['int4', 'int4'], [[1]]))).toThrow(/1 fields/);
  });

  it('splits large fields into chunks of at most 1 MB and keeps them intact', () => {
    const big = randomBytes(3 * 1024 * 1024 + 17);
    const chunks = [...encodeCopyBinary(['bytea'], [[big], [big.subarray(0, 10)]])];
    expect(chunks.length).toBeGreaterThan(3);
    for (const c of chunks) expect(c.length).toBeLessThanOrEqual(1024 * 1024);
    const all = Buffer.concat(chunks);
    expect(all.readInt32BE(19 + 2)).toBe(big.length);
    expect(all.subarray(19 + 6, 19 + 6 + big.length).equals(big)).toBe(true);
  });
});

describe('binary COPY into PostgreSQL', () => {
  const schema = uniqueSchema('copy');
  let client: pg.Client;
  beforeAll(async () => {
    client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    await client.query(`CREATE SCHEMA "${schema}"`);
    await client.query(
      `CREATE TABLE "${schema}".t (i serial, db int, key bytea, t text, j jsonb, n bigint, ts timestamptz, PRIMARY KEY (i))`,
    );
  });
  afterAll(async () => {
    await client?.end();
    await dropSchema(schema);
  });

  it('round-trips hostile bytes, all int8 edges and huge values exactly', async () => {
    const r = rng(7);
    const rows: CopyValue[][] = [];
    const ints = [0, -1, 1, 2 ** 31, -(2 ** 31) - 1, 2 ** 32, -(2 ** 32), 2 ** 53 - 1, -(2 ** 53 - 1)];
    // Unix epoch, before it, Postgres's epoch, now, 9999-12-31T23:59:59.999Z.
    const times = [0, -1, -86_400_000 * 365, 946_684_800_000, Date.now(), 253_402_300_799_999];
    for (let i = 0; i < 6_000; i++) {
      const key = i < HOSTILE.length ? HOSTILE[i]! : randomBytes(Math.floor(r() * 40));
      const text = key.includes(0) ? key.toString('latin1').replaceAll('\0', '') : key.toString('utf8');
      rows.push([
        i % 3 === 0 ? null : i - 3_000,
        key,
        i % 5 === 0 ? null : text,
        JSON.stringify({ v: encodeBytes(key), s: text, q: '"\\\t\n\u0001' }),
        i % 7 === 0 ? null : ints[i % ints.length]! * (i % 2 ? 1 : -1) || i,
        i % 11 === 0 ? null : times[i % times.length]!,
      ]);
    }
    // Huge values: 20 MB of random bytes, and a 12 MB string full of characters text-format COPY must escape.
    const hugeBytes = randomBytes(20 * 1024 * 1024);
    const hugeText = 'a\\b\tc\nd\re"f😀'.repeat(1_000_000);
    rows.push([0, hugeBytes, hugeText, JSON.stringify([encodeBytes(hugeBytes), hugeText]), 1, 1]);
    await client.query('BEGIN');
    const n = await copyBinary(client as unknown as pg.PoolClient, `"${schema}".t`, COLUMNS, TYPES, rows);
    await client.query('COMMIT');
    expect(n).toBe(rows.length);
    const back = await client.query<{
      db: number | null;
      key: Buffer;
      t: string | null;
      j: unknown;
      n: string | null;
      ms: string | null;
    }>(
      `SELECT db, key, t, j, n, (extract(epoch FROM ts) * 1000)::bigint AS ms FROM "${schema}".t ORDER BY i`,
    );
    expect(back.rows.length).toBe(rows.length);
    back.rows.forEach((got, i) => {
      const want = rows[i]!;
      const ctx = `row ${i}`;
      expect(got.db, ctx).toBe(want[0]);
      expect((got.key as Buffer).equals(want[1] as Buffer), ctx).toBe(true);
      expect(got.t, ctx).toBe(want[2]);
      expect(got.j, ctx).toEqual(JSON.parse(want[3] as string));
      expect(got.n === null ? null : Number(got.n), ctx).toBe(want[4]);
      expect(got.ms === null ? null : Number(got.ms), ctx).toBe(want[5]);
    });
  }, 60_000);

  it('an encoding error midway aborts the COPY; the connection stays usable', async () => {
    await client.query('BEGIN');
    function* rows(): Generator<CopyValue[]> {
      for (let i = 0; i < 50_000; i++)
        yield [i, Buffer.from('copy-abort'), i === 40_000 ? 'bad\0' : 'ok', '1', i, i];
    }
    await expect(
      copyBinary(client as unknown as pg.PoolClient, `"${schema}".t`, COLUMNS, TYPES, rows()),
    ).rejects.toThrow(CopyEncodeError);
    await client.query('ROLLBACK');
    const { rows: r } = await client.query(
      `SELECT count(*)::int AS n FROM "${schema}".t WHERE key = 'copy-abort'::bytea`,
    );
    expect(r).toEqual([{ n: 0 }]);
  });

  it('a row Postgres rejects fails the COPY with its SQLSTATE', async () => {
    await client.query('BEGIN');
    await expect(
      copyBinary(client as unknown as pg.PoolClient, `"${schema}".t`, COLUMNS, TYPES, [
        [1, Buffer.from('k'), 'x', '{not json', 1, 1],
      ]),
    ).rejects.toMatchObject({ code: '22P02' });
    await client.query('ROLLBACK');
    expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });
});

/** The master's dataset as snapshot events, decoded by the RDB parser from a `SAVE` of it. */
function snapshotOf(
  master: RedisServer,
  replid: string,
  offset: number,
  streamThreshold?: number,
): ChangeEvent[] {
  const events: ChangeEvent[] = [];
  const decoder = rdbSnapshot(streamThreshold ? { streamThreshold } : {})({
    replid,
    offset,
    emit: (evs) => events.push(...evs),
  });
  decoder.write(readFileSync(join(master.dir, 'dump.rdb')));
  decoder.end();
  return events;
}

describe('snapshot load through COPY vs redis-server', () => {
  let master: RedisServer;
  const schema = uniqueSchema('copysnap');
  beforeAll(async () => {
    master = await RedisServer.start();
  });
  afterAll(async () => {
    await master?.stop();
    await dropSchema(schema);
  });

  function control(op: ControlEvent['op'], replid: string, offset: number): ChangeEvent {
    return { v: 1, op, db: 0, source: { replid, offset, seq: 0, snapshot: true }, ts: Date.now() };
  }

  async function load(
    sink: ReturnType<typeof sinkFor>,
    batch: number,
    streamThreshold?: number,
  ): Promise<{ replid: string; offset: number; keys: number }> {
    const c = master.client();
    await c.call('save');
    const info = await master.info('replication');
    const replid = info.master_replid!;
    const offset = Number(info.master_repl_offset);
    const events = snapshotOf(master, replid, offset, streamThreshold);
    await sink.write({ events: [control('snapshot-begin', replid, offset)], checkpoint: null });
    for (let i = 0; i < events.length; i += batch)
      await sink.write({ events: events.slice(i, i + batch), checkpoint: null });
    await sink.write({
      events: [control('snapshot-end', replid, offset)],
      checkpoint: { replid, offset, db: 0 },
    });
    const parts = events as SnapshotEvent[];
    return { replid, offset, keys: parts.filter((e) => e.part === undefined || e.part === 0).length };
  }

  it('loads hostile keys and values of every type; a second snapshot replaces and deletes through the upsert', async () => {
    const dbs = [0, 3];
    const r = rng(11);
    for (const db of dbs) {
      const c = master.client({ db });
      const p = c.pipeline();
      HOSTILE.forEach((k, i) => {
        const key = Buffer.concat([k, Buffer.from(`#${i}`)]);
        p.set(Buffer.concat([Buffer.from('s:'), key]), Buffer.concat([k, k]));
        p.rpush(Buffer.concat([Buffer.from('l:'), key]), k, Buffer.from('x'), k);
        p.sadd(Buffer.concat([Buffer.from('t:'), key]), k, Buffer.from('\\t'));
        p.zadd(Buffer.concat([Buffer.from('z:'), key]), i - 3.5, k, '+inf', Buffer.from('top'));
        p.hset(Buffer.concat([Buffer.from('h:'), key]), k, k, Buffer.from('\n'), Buffer.from('\t'));
        p.xadd(Buffer.concat([Buffer.from('x:'), key]), '*', k, k);
        p.pexpireat(Buffer.concat([Buffer.from('s:'), key]), Date.now() + 3_600_000 + i);
      });
      for (let i = 0; i < 3_000; i++) p.set(`plain:${i}`, randomBytes(Math.floor(r() * 64)));
      p.set('huge:bytes', randomBytes(6 * 1024 * 1024));
      p.set('huge:text', 'line\\\t\n'.repeat(500_000));
      p.rpush('huge:list', ...Array.from({ length: 20_000 }, (_, i) => `e${i}\t\\`));
      p.call(
        'xgroup',
        'CREATE',
        Buffer.concat([Buffer.from('x:'), HOSTILE[3]!, Buffer.from('#3')]),
        'g\\1',
        '0',
      );
      await p.exec();
    }
    const sink = sinkFor(schema, { master: master.url() });
    try {
      await sink.open();
      const first = await load(sink, 2_000);
      expect(sink.applier.stats.copiedRows).toBe(first.keys);
      let v = await verifyMirror({ master: master.url(), postgres: PG_URL, schema, timeoutMs: 10_000 });
      expect(v.differences.length, describeDiffs(v)).toBe(0);
      expect(v.keys).toBe(first.keys);
      const rows = await pgQuery<{ n: number; gens: number }>(
        `SELECT count(*)::int AS n, count(DISTINCT snapshot_gen)::int AS gens FROM "${schema}".keys`,
      );
      expect(rows).toEqual([{ n: first.keys, gens: 1 }]);

      // The master changes; a full resync must upsert changed keys over the old rows and delete vanished ones.
      // With a small streaming threshold the huge values arrive in parts, which split one batch into several
      // COPY loads inside one transaction.
      const c = master.client();
      await c.del('plain:1', 'plain:2', 'huge:list');
      await c.set('plain:3', Buffer.from([0xff, 0, 0x5c]));
      await c.hset(Buffer.from([0xc3, 0x28]), 'f', 'v');
      await master.client({ db: 3 }).flushdb();
      const before = { ...sink.applier.stats };
      const second = await load(sink, 100_000, 64 * 1024);
      expect(sink.applier.stats.copiedRows - before.copiedRows).toBeGreaterThan(second.keys - 10);
      expect(sink.applier.stats.copies - before.copies).toBeGreaterThan(1);
      v = await verifyMirror({ master: master.url(), postgres: PG_URL, schema, timeoutMs: 10_000 });
      expect(v.differences.length, describeDiffs(v)).toBe(0);
      expect(v.keys).toBe(second.keys);
      const after = await pgQuery<{ n: number; gens: number }>(
        `SELECT count(*)::int AS n, count(DISTINCT snapshot_gen)::int AS gens FROM "${schema}".keys`,
      );
      expect(after).toEqual([{ n: second.keys, gens: 1 }]);
    } finally {
      await sink.close();
    }
  }, 120_000);
});
