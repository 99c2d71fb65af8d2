import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeDumpPayload } from '../../src/rdb/dump.js';
import { RdbParser } from '../../src/rdb/RdbParser.js';
import type { RdbKeyRecord, Score, StreamValue } from '../../src/rdb/records.js';
import { RedisServer } from '../harness/RedisServer.js';

/**
 * Round trips through a real redis-server: populate with each encoding forced by config, SAVE, parse dump.rdb,
 * and compare every key with what the server itself returns (binary-safe *Buffer replies). OBJECT ENCODING checks
 * that the config really forced the encoding under test.
 */

const servers: RedisServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
});

interface Saved {
  server: RedisServer;
  client: Redis;
  records: Map<string, RdbKeyRecord>;
  functions: Buffer[];
  rdb: Buffer;
}

const id = (db: number, key: Buffer | string) => `${db}:${Buffer.from(key).toString('hex')}`;

function parseAll(rdb: Buffer, chunk: number, opts: { streamThreshold?: number } = {}) {
  const records: RdbKeyRecord[] = [];
  const functions: Buffer[] = [];
  const parser = new RdbParser({
    onKey: (r) => records.push(r),
    onFunction: (c) => functions.push(c),
    ...opts,
  });
  for (let i = 0; i < rdb.length; i += chunk) parser.write(rdb.subarray(i, i + chunk));
  return { records, functions, summary: parser.end() };
}

async function saveWith(
  config: Record<string, string>,
  populate: (c: Redis) => Promise<void>,
): Promise<Saved> {
  const server = await RedisServer.start({ config: { 'enable-debug-command': 'yes', ...config } });
  servers.push(server);
  const client = server.client();
  await populate(client);
  await client.save();
  const rdb = readFileSync(path.join(server.dir, 'dump.rdb'));
  const { records, functions, summary } = parseAll(rdb, 64 * 1024);
  expect(summary.checksum).toBe('ok');
  expect(summary.keys).toBe(records.length);
  return { server, client, records: new Map(records.map((r) => [id(r.db, r.key), r])), functions, rdb };
}

function pairs(flat: Buffer[]): Array<[Buffer, Buffer]> {
  const out: Array<[Buffer, Buffer]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

const byField = (a: [Buffer, unknown], b: [Buffer, unknown]) => Buffer.compare(a[0], b[0]);

function redisScore(s: Buffer): Score {
  const t = s.toString();
  return t === 'inf' ? 'inf' : t === '-inf' ? '-inf' : Number(t);
}

/** Compares one parsed key with the server's view of it. */
async function expectKeyMatches(c: Redis, db: number, rec: RdbKeyRecord): Promise<void> {
  await c.select(db);
  const key = rec.key;
  const type = await c.type(key);
  expect(rec.type, key.toString()).toBe(type);
  const pexpiretime = Number(await c.call('PEXPIRETIME', key));
  expect(rec.expireAt).toBe(pexpiretime < 0 ? null : pexpiretime);
  switch (type) {
    case 'string':
      expect(rec.value).toEqual(await c.getBuffer(key));
      break;
    case 'list':
      expect(rec.value).toEqual(await c.lrangeBuffer(key, 0, -1));
      break;
    case 'set':
      expect([...(rec.value as Buffer[])].sort(Buffer.compare)).toEqual(
        (await c.smembersBuffer(key)).sort(Buffer.compare),
      );
      break;
    case 'zset': {
      const flat = (await c.callBuffer('ZRANGE', key, 0, -1, 'WITHSCORES')) as Buffer[];
      expect(rec.value).toEqual(pairs(flat).map(([m, s]) => [m, redisScore(s)]));
      break;
    }
    case 'hash': {
      const flat = (await c.callBuffer('HGETALL', key)) as Buffer[];
      expect([...(rec.value as Array<[Buffer, Buffer]>)].sort(byField)).toEqual(pairs(flat).sort(byField));
      break;
    }
    case 'stream':
      await expectStreamMatches(c, rec);
      break;
    default:
      throw new Error(`unexpected type ${type}`);
  }
}

async function expectStreamMatches(c: Redis, rec: RdbKeyRecord): Promise<void> {
  const s = rec.value as StreamValue;
  const range = (await c.xrangeBuffer(rec.key, '-', '+')) as Array<[Buffer, Buffer[]]>;
  expect(s.entries.map((e) => e.id)).toEqual(range.map(([i]) => i.toString()));
  expect(s.entries.map((e) => e.fields)).toEqual(range.map(([, f]) => pairs(f)));
  const info = (await c.call('XINFO', 'STREAM', rec.key, 'FULL')) as unknown[];
  const get = (arr: unknown[], name: string) => arr[arr.indexOf(name) + 1];
  expect(s.length).toBe(get(info, 'length'));
  expect(s.lastId).toBe(get(info, 'last-generated-id'));
  expect(s.maxDeletedEntryId).toBe(get(info, 'max-deleted-entry-id'));
  expect(s.entriesAdded).toBe(get(info, 'entries-added'));
  const groups = get(info, 'groups') as unknown[][];
  expect(s.groups.length).toBe(groups.length);
  for (const g of groups) {
    const mine = s.groups.find((x) => x.name.toString() === get(g, 'name'))!;
    expect(mine).toBeDefined();
    expect(mine.lastId).toBe(get(g, 'last-delivered-id'));
    expect(mine.entriesRead).toBe(get(g, 'entries-read'));
    const pel = get(g, 'pending') as Array<[string, string, number, number]>;
    expect(mine.pending.map((p) => [p.id, p.consumer?.toString(), p.deliveryTime, p.deliveryCount])).toEqual(
      pel,
    );
    const consumers = get(g, 'consumers') as unknown[][];
    expect(mine.consumers.map((x) => x.name.toString()).sort()).toEqual(
      consumers.map((x) => get(x, 'name')).sort(),
    );
    for (const cons of consumers) {
      const m = mine.consumers.find((x) => x.name.toString() === get(cons, 'name'))!;
      expect(m.seenTime).toBe(get(cons, 'seen-time'));
      expect(m.pending).toEqual((get(cons, 'pending') as Array<[string]>).map((p) => p[0]));
    }
  }
}

async function expectAllMatch(saved: Saved, expectedKeys: number): Promise<void> {
  expect(saved.records.size).toBe(expectedKeys);
  for (const rec of saved.records.values()) await expectKeyMatches(saved.client, rec.db, rec);
}

/** DUMP every key and check the payload decodes to the same value as the RDB record. */
async function expectDumpsMatch(saved: Saved): Promise<void> {
  const c = saved.client;
  for (const rec of saved.records.values()) {
    await c.select(rec.db);
    const payload = await c.dumpBuffer(rec.key);
    const d = decodeDumpPayload(payload);
    expect(d.type).toBe(rec.type);
    expect(d.rdbType).toBe(rec.rdbType);
    expect(d.value).toEqual(rec.value);
  }
}

async function encodingOf(c: Redis, key: string): Promise<string> {
  return (await c.object('ENCODING', key)) as string;
}

describe('RDBs written by redis-server', () => {
  it('compact encodings: listpack hash/zset/list, intset, int/raw/LZF strings', async () => {
    const saved = await saveWith({ rdbcompression: 'yes' }, async (c) => {
      await c.set('int', '12345');
      await c.set('neg', '-9000000000');
      await c.set('raw', Buffer.from([0, 1, 2, 255, 254, 0x80]));
      await c.set('lzf', 'abcabcabc'.repeat(200));
      await c.set('empty', '');
      await c.rpush('list', 'a', 'b', '1', '-5', '70000', Buffer.from([0xff, 0]));
      await c.hset('hash', 'f1', 'v1', 'n', '42', Buffer.from([0xc3, 0x28]), Buffer.from([0xff]));
      await c.zadd('zset', '1.5', 'a', '-2', 'b', 'inf', 'c', '-inf', 'd', '0', 'e');
      await c.sadd('intset', 1, -2, 70000, 5000000000);
      await c.sadd('strset', 'x', 'y', 'z');
      await c.pexpireat('lzf', Date.now() + 3_600_000);
      await c.expire('hash', 1000);
    });
    const c = saved.client;
    expect(await encodingOf(c, 'hash')).toBe('listpack');
    expect(await encodingOf(c, 'zset')).toBe('listpack');
    expect(await encodingOf(c, 'list')).toBe('quicklist');
    expect(await encodingOf(c, 'intset')).toBe('intset');
    expect(saved.records.get(id(0, 'list'))!.encoding).toBe('list-quicklist2');
    expect(saved.records.get(id(0, 'hash'))!.encoding).toBe('hash-listpack');
    expect(saved.records.get(id(0, 'intset'))!.encoding).toBe('set-intset');
    // The RDB really held this string LZF-compressed.
    expect(saved.rdb.includes(Buffer.from('abcabcabc'.repeat(200)))).toBe(false);
    await expectAllMatch(saved, 10);
    await expectDumpsMatch(saved);
  });

  it('hashtable, skiplist, plain quicklist nodes and compressed quicklists; rdbcompression no', async () => {
    const saved = await saveWith(
      {
        'hash-max-listpack-entries': '0',
        'zset-max-listpack-entries': '0',
        'set-max-intset-entries': '0',
        'list-max-listpack-size': '4',
        'list-compress-depth': '1',
        rdbcompression: 'no',
      },
      async (c) => {
        await c.call('DEBUG', 'QUICKLIST-PACKED-THRESHOLD', '100');
        await c.hset('hash', 'a', '1', 'b', 'two', Buffer.from([0xfe]), Buffer.from([0]));
        await c.zadd('zset', '3', 'c', '1', 'a', '2', 'b', '2', 'bb', 'inf', 'top', '-inf', 'bottom');
        await c.sadd('set', '1', '2', 'three');
        const items = Array.from({ length: 50 }, (_, i) => `item-${i}-${'x'.repeat(i % 7)}`);
        await c.rpush('list', ...items);
        await c.rpush('plain', 'small', 'P'.repeat(500), 'small2', 'Q'.repeat(1000));
      },
    );
    const c = saved.client;
    expect(await encodingOf(c, 'hash')).toBe('hashtable');
    expect(await encodingOf(c, 'zset')).toBe('skiplist');
    expect(await encodingOf(c, 'set')).toBe('hashtable');
    expect(saved.records.get(id(0, 'zset'))!.encoding).toBe('zset2-skiplist');
    await expectAllMatch(saved, 5);
    await expectDumpsMatch(saved);
  });

  it('LZF-compressed quicklist nodes (list-compress-depth with rdbcompression)', async () => {
    const saved = await saveWith({ 'list-max-listpack-size': '8', 'list-compress-depth': '1' }, async (c) => {
      await c.rpush(
        'clist',
        ...Array.from({ length: 200 }, (_, i) => `compressible-value-${i % 3}-aaaaaaaaaaaa`),
      );
    });
    await expectAllMatch(saved, 1);
    await expectDumpsMatch(saved);
  });

  it('big values, 16 databases and expiries; streamed parts reassemble to the same values', async () => {
    const big = Buffer.alloc(1024 * 1024);
    // xorshift noise: LZF cannot compress it, so the RDB stores it raw and streaming mode must split it.
    let x = 2463534242;
    for (let i = 0; i < big.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      big[i] = x & 0xff;
    }
    const expiry = Date.now() + 86_400_000;
    const saved = await saveWith({ 'list-max-listpack-size': '128' }, async (c) => {
      await c.set('big', big);
      const p = c.pipeline();
      for (let i = 0; i < 100_000; i += 1000)
        p.rpush('biglist', ...Array.from({ length: 1000 }, (_, k) => `e${i + k}`));
      await p.exec();
      for (let db = 0; db < 16; db++) {
        await c.select(db);
        await c.set(`k${db}`, `v${db}`);
        await c.pexpireat(`k${db}`, expiry + db);
      }
      await c.select(0);
    });
    expect(saved.records.get(id(0, 'big'))!.value).toEqual(big);
    expect((saved.records.get(id(0, 'biglist'))!.value as Buffer[]).length).toBe(100_000);
    for (let db = 0; db < 16; db++) expect(saved.records.get(id(db, `k${db}`))!.expireAt).toBe(expiry + db);
    await expectAllMatch(saved, 18);

    const streamed = parseAll(saved.rdb, 100_000, { streamThreshold: 64 * 1024 });
    const parts = streamed.records.filter((r) => r.part !== undefined);
    const bigParts = parts.filter((r) => r.key.toString() === 'big');
    expect(bigParts.length).toBe(16);
    expect(Buffer.concat(bigParts.map((r) => r.value as Buffer))).toEqual(big);
    expect(bigParts.at(-1)!.last).toBe(true);
    const listParts = parts.filter((r) => r.key.toString() === 'biglist');
    expect(listParts.length).toBeGreaterThan(1);
    expect(listParts.flatMap((r) => r.value as Buffer[])).toEqual(saved.records.get(id(0, 'biglist'))!.value);
    expect(streamed.summary.keys).toBe(18);
  });

  it('streams with deleted entries, consumer groups, PEL and consumers', async () => {
    const saved = await saveWith({}, async (c) => {
      for (let i = 1; i <= 30; i++) await c.xadd('s', `${1000 + i}-${i % 3}`, 'f', `v${i}`, 'n', String(i));
      await c.xadd('s', '2000-0', 'other', 'shape');
      await c.xdel('s', '1005-2', '1010-1');
      await c.xgroup('CREATE', 's', 'g1', '0');
      await c.xgroup('CREATE', 's', 'g2', '$');
      await c.xreadgroup('GROUP', 'g1', 'alice', 'COUNT', '3', 'STREAMS', 's', '>');
      await c.xreadgroup('GROUP', 'g1', 'bob', 'COUNT', '2', 'STREAMS', 's', '>');
      await c.xack('s', 'g1', '1001-1');
      await c.xadd('empty-stream', '5-5', 'a', 'b');
      await c.xdel('empty-stream', '5-5');
    });
    const s = saved.records.get(id(0, 's'))!.value as StreamValue;
    expect(s.deleted).toEqual(['1005-2', '1010-1']);
    expect(saved.records.get(id(0, 's'))!.encoding).toBe('stream-listpacks-2');
    await expectAllMatch(saved, 2);
    await expectDumpsMatch(saved);
  });

  it('function libraries', async () => {
    const code = "#!lua name=mylib\nredis.register_function('hello', function() return 'hi' end)";
    const saved = await saveWith({}, async (c) => {
      await c.call('FUNCTION', 'LOAD', code);
      await c.set('k', 'v');
    });
    expect(saved.functions.map((f) => f.toString())).toEqual([code]);
    await expectAllMatch(saved, 1);
  });
});
