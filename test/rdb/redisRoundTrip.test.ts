import { describe, expect, it } from 'vitest';
import type { StreamValue } from '../../src/rdb/records.js';
import { useTestScope } from '../harness/TestScope.js';
import {
  encodingOf,
  expectPartsMatch,
  expectSame,
  id,
  kv,
  parseRdb,
  recordOf,
  roundTrip,
  roundTripServers,
  startServer,
  TRAITS,
} from './roundTrip.js';

/**
 * Round trips through real servers of every version in ROUND_TRIP_VERSIONS: populate with each encoding forced by
 * config (OBJECT ENCODING confirms it), take the RDB by SAVE, BGSAVE, both kinds of full resync and as an AOF base
 * file, parse each whole, in small chunks, with `values: false` and with a tiny `streamThreshold`, and compare every
 * key with what the server itself returns; DUMP every key too (see roundTrip.ts).
 */

const infos = await roundTripServers();
// A version this machine cannot have is skipped locally; CI must have every one of them.
const inCI = process.env.CI === 'true';

for (const info of infos) {
  const traits = TRAITS[info.version];
  const name = info.path === null ? info.version : `${info.version} (${info.exact})`;

  describe.skipIf(info.path === null && !inCI)(`RDBs written by ${name}`, () => {
    const scope = useTestScope();
    const exact = info.path === null ? '' : info.exact;

    const start = (config: Record<string, string> = {}) => startServer(scope, info, config);

    it('compact encodings: listpack hash/zset/list/set, intset, int/embstr/raw/LZF strings, HLL', async () => {
      const { server, c } = await start({
        rdbcompression: 'yes',
        'list-max-listpack-size': '-5',
        'hash-max-listpack-value': '30000',
        'zset-max-listpack-value': '30000',
      });
      await c.set('int', '12345');
      await c.set('neg', '-9000000000');
      for (const n of ['127', '-128', '32767', '-32768', '2147483647', '-2147483648', '2147483648', '007'])
        await c.set(`n${n}`, n);
      await c.set('i64max', '9223372036854775807');
      await c.set('embstr', 'hello');
      await c.set('raw', Buffer.from([0, 1, 2, 255, 254, 0x80]));
      await c.set('lzf', 'abcabcabc'.repeat(200));
      await c.set('empty', '');
      await c.set(Buffer.from([0, 0xff, 0x0a, 0x0d]), 'binary key');
      await c.pfadd('hll', 'a', 'b', 'c');
      await c.rpush('list', 'a', 'b', '1', '-5', '70000', Buffer.from([0xff, 0]));
      // Every listpack entry encoding: 7-bit uint, 13/16/24/32/64-bit ints, 6/12/32-bit strings, and entries long
      // enough for 2- and 3-byte back-lengths.
      const lpItems = [
        '0',
        '127',
        '128',
        '-4096',
        '4095',
        '-32768',
        '32767',
        '8388607',
        '-8388608',
        '2147483647',
        '-2147483648',
        '9223372036854775807',
        '-9223372036854775808',
        'x'.repeat(63),
        'y'.repeat(64),
        'z'.repeat(4095),
        'w'.repeat(4096),
        'v'.repeat(20000),
      ];
      await c.rpush('lplist', ...lpItems);
      await c.hset('lphash', ...lpItems.flatMap((v, i) => [`f${i}`, v]));
      await c.zadd('lpzset', ...lpItems.flatMap((v, i) => [String(i), v]));
      await c.hset('hash', 'f1', 'v1', 'n', '42', Buffer.from([0xc3, 0x28]), Buffer.from([0xff]));
      await c.zadd(
        'zset',
        '1.5',
        'a',
        '-2',
        'b',
        'inf',
        'c',
        '-inf',
        'd',
        '0',
        'e',
        '0.1',
        'f',
        '1e-300',
        'g',
      );
      await c.zadd('zset', '9007199254740993', 'h', '-0', 'i', '3.141592653589793', 'j', '123456789', 'k');
      await c.sadd('intset', 1, -2, 70000, 5000000000);
      await c.sadd('intset16', 1, -2, 300);
      await c.sadd('intset32', 1, -2, 70000);
      await c.sadd('strset', 'x', 'y', 'z', Buffer.from([0xfe]), '12', '-7');
      await c.pexpireat('lzf', Date.now() + 3_600_000);
      await c.expire('hash', 1000);
      await c.expireat('embstr', Math.floor(Date.now() / 1000) + 7200);

      expect(await encodingOf(c, 'int')).toBe('int');
      expect(await encodingOf(c, 'embstr')).toBe('embstr');
      expect(await encodingOf(c, 'lzf')).toBe('raw');
      expect(await encodingOf(c, 'hash')).toBe('listpack');
      expect(await encodingOf(c, 'lphash')).toBe('listpack');
      expect(await encodingOf(c, 'zset')).toBe('listpack');
      expect(await encodingOf(c, 'lpzset')).toBe('listpack');
      expect(await encodingOf(c, 'list')).toBe(traits.listpackLists ? 'listpack' : 'quicklist');
      expect(await encodingOf(c, 'lplist')).toBe(traits.listpackLists ? 'listpack' : 'quicklist');
      for (const k of ['intset', 'intset16', 'intset32']) expect(await encodingOf(c, k)).toBe('intset');
      expect(await encodingOf(c, 'strset')).toBe(traits.listpackSets ? 'listpack' : 'hashtable');

      const { snapshots, parsed } = await roundTrip(server, c, traits, { exact });
      // The RDB really held this string LZF-compressed.
      expect(snapshots[0]!.rdb.includes(Buffer.from('abcabcabc'.repeat(200)))).toBe(false);
      expectSame(
        recordOf(parsed[0]!, 0, 'lplist').value,
        lpItems.map((s) => Buffer.from(s)),
        'lplist',
      );
      expect(parsed[0]!.records.length).toBe(27);
    });

    it('hashtable, skiplist, plain quicklist nodes and compressed quicklists; rdbcompression no', async () => {
      const { server, c } = await start({
        'hash-max-listpack-entries': '0',
        'zset-max-listpack-entries': '0',
        'set-max-intset-entries': '0',
        ...(traits.listpackSets ? { 'set-max-listpack-entries': '0' } : {}),
        'list-max-listpack-size': '4',
        'list-compress-depth': '1',
        rdbcompression: 'no',
      });
      await c.call('DEBUG', 'QUICKLIST-PACKED-THRESHOLD', '100');
      await c.hset('hash', 'a', '1', 'b', 'two', Buffer.from([0xfe]), Buffer.from([0]));
      await c.zadd(
        'zset',
        '3',
        'c',
        '1',
        'a',
        '2',
        'b',
        '2',
        'bb',
        'inf',
        'top',
        '-inf',
        'bottom',
        '-0',
        'z',
      );
      await c.zadd('zset', '0.1', 'tenth', '1e300', 'huge', '-1e-300', 'tiny');
      await c.sadd('set', '1', '2', 'three');
      await c.sadd('intset-too-big', ...Array.from({ length: 10 }, (_, i) => String(i)));
      await c.rpush('list', ...Array.from({ length: 50 }, (_, i) => `item-${i}-${'x'.repeat(i % 7)}`));
      await c.rpush('plain', 'small', 'P'.repeat(500), 'small2', 'Q'.repeat(1000), 'small3', 'small4');
      await c.rpush('one-plain', 'R'.repeat(300));
      expect(await encodingOf(c, 'hash')).toBe('hashtable');
      expect(await encodingOf(c, 'zset')).toBe('skiplist');
      expect(await encodingOf(c, 'set')).toBe('hashtable');
      expect(await encodingOf(c, 'intset-too-big')).toBe('hashtable');
      expect(await encodingOf(c, 'list')).toBe('quicklist');
      expect(await encodingOf(c, 'plain')).toBe('quicklist');
      await roundTrip(server, c, traits, { exact });
    });

    it('listpacks of more than 65535 entries (the header count saturates) and a 100k-member intset', async () => {
      // Growing a listpack one insert at a time is quadratic (every insert scans it), so the values are built as
      // hashtables/skiplists and DEBUG RELOAD turns them into listpacks (the loader appends in one pass).
      // (Listpack sets are left out: even the loader checks every member against the whole listpack.)
      const { server, c } = await start({
        'hash-max-listpack-entries': '0',
        'zset-max-listpack-entries': '0',
        'set-max-intset-entries': '200000',
      });
      const p = c.pipeline();
      for (let i = 0; i < 40_000; i += 1000) {
        p.hset('lphash', ...Array.from({ length: 1000 }, (_, k) => [`f${i + k}`, String(i + k)]).flat());
        p.zadd('lpzset', ...Array.from({ length: 1000 }, (_, k) => [String(i + k), `m${i + k}`]).flat());
      }
      for (let i = 0; i < 100_000; i += 1000) {
        p.sadd('intset', ...Array.from({ length: 1000 }, (_, k) => String((i + k) * 3 - 150_000)));
      }
      await p.exec();
      for (const k of ['hash', 'zset']) await c.config('SET', `${k}-max-listpack-entries`, '100000');
      await c.call('DEBUG', 'RELOAD');
      expect(await encodingOf(c, 'lphash')).toBe('listpack');
      expect(await encodingOf(c, 'lpzset')).toBe('listpack');
      expect(await encodingOf(c, 'intset')).toBe('intset');
      await roundTrip(server, c, traits, { exact, chunks: [0, 4096] });
    });

    it('LZF-compressed quicklist nodes (list-compress-depth with rdbcompression)', async () => {
      const { server, c } = await start({ 'list-max-listpack-size': '8', 'list-compress-depth': '1' });
      await c.rpush(
        'clist',
        ...Array.from({ length: 200 }, (_, i) => `compressible-value-${i % 3}-aaaaaaaaaaaa`),
      );
      expect(await encodingOf(c, 'clist')).toBe('quicklist');
      const { snapshots } = await roundTrip(server, c, traits, { exact });
      expect(snapshots[0]!.rdb.includes(Buffer.from('compressible-value-0-aaaaaaaaaaaa'))).toBe(false);
    });

    it('big values, 20 databases up to db 129 and expiries; streamed parts reassemble to the server values', async () => {
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
      const { server, c } = await start({ 'list-max-listpack-size': '128', databases: '130' });
      await c.set('big', big);
      const p = c.pipeline();
      for (let i = 0; i < 100_000; i += 1000)
        p.rpush('biglist', ...Array.from({ length: 1000 }, (_, k) => `e${i + k}`));
      for (let i = 0; i < 20_000; i += 1000) {
        p.hset(
          'bighash',
          ...Array.from({ length: 1000 }, (_, k) => [`field${i + k}`, `value${i + k}`]).flat(),
        );
        p.zadd(
          'bigzset',
          ...Array.from({ length: 1000 }, (_, k) => [String((i + k) / 7), `m${i + k}`]).flat(),
        );
        p.sadd('bigset', ...Array.from({ length: 1000 }, (_, k) => `member${i + k}`));
      }
      await p.exec();
      await c.pexpireat('bighash', expiry - 1);
      const dbs = [...Array.from({ length: 16 }, (_, i) => i), 63, 64, 100, 129];
      for (const db of dbs) {
        await c.select(db);
        await c.set(`k${db}`, `v${db}`);
        await c.pexpireat(`k${db}`, expiry + db);
      }
      await c.select(0);
      expect(await encodingOf(c, 'bighash')).toBe('hashtable');
      expect(await encodingOf(c, 'bigzset')).toBe('skiplist');
      expect(await encodingOf(c, 'bigset')).toBe('hashtable');
      const { snapshots, truth } = await roundTrip(server, c, traits, { exact, chunks: [0, 1000] });
      for (const db of dbs) expect(truth.get(id(db, `k${db}`))!.expireAt).toBe(expiry + db);

      for (const snap of snapshots) {
        const streamed = parseRdb(snap.rdb, 100_000, { streamThreshold: 64 * 1024 });
        expect(streamed.summary.keys).toBe(truth.size);
        expect(expectPartsMatch(streamed, truth.get(id(0, 'big'))!, `${snap.how} big`)).toBe(16);
        for (const key of ['biglist', 'bighash', 'bigzset', 'bigset'])
          expectPartsMatch(streamed, truth.get(id(0, key))!, `${snap.how} ${key}`);
      }
    });

    it('streams: several nodes, deleted entries, trims, consumer groups, PELs, consumers, big IDs', async () => {
      const { server, c } = await start({ 'stream-node-max-entries': '10' });
      for (let i = 1; i <= 30; i++) await c.xadd('s', `${1000 + i}-${i % 3}`, 'f', `v${i}`, 'n', String(i));
      await c.xadd('s', '2000-0', 'other', 'shape');
      await c.xdel('s', '1005-2', '1010-1');
      await c.xgroup('CREATE', 's', 'g1', '0');
      await c.xgroup('CREATE', 's', 'g2', '$');
      await c.xreadgroup('GROUP', 'g1', 'alice', 'COUNT', '3', 'STREAMS', 's', '>');
      await c.xreadgroup('GROUP', 'g1', 'bob', 'COUNT', '2', 'STREAMS', 's', '>');
      await c.xack('s', 'g1', '1001-1');
      await c.xclaim('s', 'g1', 'carol', 0, '1002-2', '1003-0');
      await c.xgroup('CREATECONSUMER', 's', 'g2', 'idle');
      // A pending entry deleted from the stream stays in the PELs; a group created mid-stream after deletions
      // does not know its entries-read (XINFO: nil).
      await c.xdel('s', '1003-0');
      await c.xgroup('CREATE', 's', 'mid', '1012-0');
      await c.xadd('empty-stream', '5-5', 'a', 'b');
      await c.xdel('empty-stream', '5-5');
      await c.xgroup('CREATE', 'empty-stream', 'g', '$');

      // Many nodes, fields that change shape (so not every entry uses the master entry's fields), a trim that
      // drops whole nodes, an ENTRIESREAD group and XSETID bookkeeping.
      for (let i = 0; i < 500; i++) {
        const fields = i % 4 === 0 ? ['a', `${i}`, 'b', 'x'.repeat(i % 50)] : ['a', `${i}`, 'c', `${-i}`];
        await c.xadd('long', `${1_700_000_000_000 + i * 1000}-${i}`, ...fields);
      }
      for (let i = 0; i < 500; i += 7) await c.xdel('long', `${1_700_000_000_000 + i * 1000}-${i}`);
      await c.xtrim('long', 'MINID', `${1_700_000_000_000 + 95_000}-0`);
      await c.xgroup('CREATE', 'long', 'reader', '0', 'ENTRIESREAD', '3');
      await c.xreadgroup('GROUP', 'reader', 'r1', 'COUNT', '25', 'STREAMS', 'long', '>');
      await c.call(
        'XSETID',
        'long',
        '1800000000000-5',
        'ENTRIESADDED',
        '900',
        'MAXDELETEDID',
        '1700000600000-0',
      );

      // IDs past 2^53 in both halves.
      await c.xadd('bigids', '9007199254740993-18446744073709551614', 'k', 'v');
      await c.xadd('bigids', '18446744073709551615-3', 'k2', 'v2');
      await c.xgroup('CREATE', 'bigids', 'g', '0');
      await c.xreadgroup('GROUP', 'g', 'c', 'STREAMS', 'bigids', '>');

      const { parsed, truth } = await roundTrip(server, c, traits, { exact });
      const groups = (truth.get(id(0, 's'))!.stream!.info.groups as unknown[]).map(kv);
      expect(groups.find((g) => g.name === 'mid')!['entries-read']).toBeNull();
      for (const p of parsed) {
        expect(
          (recordOf(p, 0, 's').value as StreamValue).groups.find((g) => g.name.toString() === 'mid')!
            .entriesRead,
        ).toBeNull();
        const s = recordOf(p, 0, 's').value as StreamValue;
        expect(s.deleted).toEqual(['1003-0', '1005-2', '1010-1']);
        const long = recordOf(p, 0, 'long').value as StreamValue;
        const added = new Set(Array.from({ length: 500 }, (_, i) => `${1_700_000_000_000 + i * 1000}-${i}`));
        for (const d of long.deleted) expect(added.has(d)).toBe(true);
      }
      const info = kv(await c.call('XINFO', 'STREAM', 'long'));
      expect(info['radix-tree-keys']).toBeGreaterThan(5);
    });

    it('function libraries', async () => {
      const { server, c } = await start();
      const code = "#!lua name=mylib\nredis.register_function('hello', function() return 'hi' end)";
      const code2 = "#!lua name=other\nredis.register_function('bye', function() return 'bye' end)";
      await c.call('FUNCTION', 'LOAD', code);
      await c.call('FUNCTION', 'LOAD', code2);
      await c.set('k', 'v');
      const { parsed } = await roundTrip(server, c, traits, { exact });
      const libs = ((await c.call('FUNCTION', 'LIST', 'WITHCODE')) as unknown[]).map(kv);
      const listed = libs.map((l) => String(l.library_code)).sort();
      expect(listed).toEqual([code, code2].sort());
      for (const p of parsed) {
        expect(p.functions.map((f) => f.toString()).sort()).toEqual(listed);
        expect(p.summary.functions).toBe(2);
      }
    });

    it('rdbchecksum no: a zero CRC64, in files and replication snapshots alike', async () => {
      const { server, c } = await start({ rdbchecksum: 'no' });
      await c.set('k', 'v');
      await c.rpush('l', 'a', 'b');
      const { snapshots } = await roundTrip(server, c, traits, { exact, checksum: 'disabled' });
      for (const snap of snapshots) expect(snap.rdb.subarray(-8)).toEqual(Buffer.alloc(8));
    });

    it('an empty dataset', async () => {
      const { server, c } = await start();
      const { parsed } = await roundTrip(server, c, traits, { exact });
      for (const p of parsed) expect(p.summary.keys).toBe(0);
    });
  });
}
