import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { useTestScope } from '../harness/TestScope.js';
import {
  encodingOf,
  expectPartsMatch,
  expectSnapshotsMatch,
  id,
  parseRdb,
  recordOf,
  roundTrip,
  roundTripServers,
  serverTruth,
  startServer,
  TRAITS,
  takeSnapshots,
} from './roundTrip.js';

/**
 * Round trips of what only some servers write, or only under some settings: hash field expiry (Redis 7.4+:
 * listpackex and hashtable hashes with per-field TTLs), LFU/LRU metadata (maxmemory-policy), module values (the
 * vectorset module built into Redis 8.0) and cluster-mode slot information. Same method as redisRoundTrip.test.ts:
 * every way of taking the RDB, parsed whole and in chunks, held to the live server's answers.
 */

const infos = await roundTripServers();
const inCI = process.env.CI === 'true';

for (const info of infos) {
  const traits = TRAITS[info.version];
  const name = info.path === null ? info.version : `${info.version} (${info.exact})`;

  describe.skipIf(info.path === null && !inCI)(`RDBs written by ${name}`, () => {
    const scope = useTestScope();
    const exact = info.path === null ? '' : info.exact;

    const start = (config: Record<string, string> = {}) => startServer(scope, info, config);

    it.skipIf(!traits.fieldExpiry)(
      'hash field expiry: listpackex (type 25) and hashtable (24, or 4 once no field has a TTL)',
      async () => {
        const { server, c } = await start({ 'hash-max-listpack-entries': '64' });
        const now = Date.now();
        // The largest field expiry HPEXPIREAT accepts (HFE_MAX_ABS_TIME_MSEC = EB_EXPIRE_TIME_MAX >> 2).
        const maxTtl = 2 ** 46 - 1;
        const populate = async (p: string) => {
          await c.hset(`${p}`, 'a', '1', 'b', 'two', 'c', '3', Buffer.from([0xff, 0]), 'bin');
          await c.call('HPEXPIREAT', p, now + 3_600_000, 'FIELDS', 1, 'a');
          await c.call('HEXPIRE', p, 7200, 'FIELDS', 2, 'b', Buffer.from([0xff, 0]));
          await c.hset(`${p}-persisted`, 'x', '1', 'y', '2');
          await c.call('HEXPIRE', `${p}-persisted`, 100, 'FIELDS', 2, 'x', 'y');
          await c.call('HPERSIST', `${p}-persisted`, 'FIELDS', 2, 'x', 'y');
          // TTLs far apart: relative to the minimum they need more than 32 bits.
          await c.hset(`${p}-wide`, 'near', '1', 'far', '2', 'none', '3');
          await c.call('HPEXPIREAT', `${p}-wide`, now + 600_000, 'FIELDS', 1, 'near');
          await c.call('HPEXPIREAT', `${p}-wide`, maxTtl, 'FIELDS', 1, 'far');
          await c.call('HSETEX', `${p}-hsetex`, 'PX', 600_000, 'FIELDS', 2, 'x', '1', 'y', '2');
          await c.call('HGETEX', `${p}-hsetex`, 'PERSIST', 'FIELDS', 1, 'x');
          await c.hset(`${p}-keyttl`, 'f', 'v', 'g', 'w');
          await c.call('HEXPIRE', `${p}-keyttl`, 500, 'FIELDS', 1, 'f');
          await c.pexpireat(`${p}-keyttl`, now + 86_400_000);
        };
        await populate('lp');
        // A listpackex hash that outgrows the listpack keeps its TTLs in the hashtable.
        await c.hset('grown', 'ttl', 'x');
        await c.call('HEXPIRE', 'grown', 900, 'FIELDS', 1, 'ttl');
        await c.hset('grown', ...Array.from({ length: 100 }, (_, i) => [`f${i}`, `v${i}`]).flat());
        await c.config('SET', 'hash-max-listpack-entries', '0');
        await populate('ht');
        const fields = Array.from({ length: 5000 }, (_, i) => [`field-${i}`, `value-${i}`.repeat(3)]).flat();
        await c.hset('ht-big', ...fields);
        for (let i = 0; i < 5000; i += 3)
          await c.call('HPEXPIREAT', 'ht-big', now + 3_600_000 + i * 997, 'FIELDS', 1, `field-${i}`);

        for (const p of ['lp', 'lp-persisted', 'lp-wide', 'lp-hsetex', 'lp-keyttl'])
          expect(await encodingOf(c, p), p).toBe('listpackex');
        for (const p of ['ht', 'ht-persisted', 'ht-wide', 'ht-hsetex', 'ht-keyttl', 'ht-big', 'grown'])
          expect(await encodingOf(c, p), p).toBe('hashtable');

        const { snapshots, truth, parsed } = await roundTrip(server, c, traits, { exact });
        const rdbType = (k: string) => recordOf(parsed[0]!, 0, k).rdbType;
        for (const k of ['lp', 'lp-persisted', 'lp-wide', 'lp-hsetex', 'lp-keyttl'])
          expect(rdbType(k), k).toBe(25);
        for (const k of ['ht', 'ht-wide', 'ht-hsetex', 'ht-keyttl', 'ht-big', 'grown'])
          expect(rdbType(k), k).toBe(24);
        expect(rdbType('ht-persisted')).toBe(4);
        expect(truth.get(id(0, 'lp-wide'))!.fieldExpireAt!.map(([, t]) => t)).toContain(maxTtl);
        expect(truth.get(id(0, 'ht-big'))!.fieldExpireAt!.length).toBe(1667);

        // A hash with field TTLs streamed in parts: each part carries the expiries of its own fields.
        for (const snap of snapshots) {
          const streamed = parseRdb(snap.rdb, 50_000, { streamThreshold: 4096 });
          expect(streamed.summary.keys).toBe(truth.size);
          expectPartsMatch(streamed, truth.get(id(0, 'ht-big'))!, `${snap.how} ht-big`);
        }
      },
    );

    it('LFU counters (allkeys-lfu) come as FREQ, equal to OBJECT FREQ', async () => {
      // lfu-decay-time 0: counters never decay, so OBJECT FREQ and the saved counter are the same number.
      const { server, c } = await start({ 'maxmemory-policy': 'allkeys-lfu', 'lfu-decay-time': '0' });
      const keys = await populateTypes(c);
      for (const [i, k] of keys.entries()) {
        await restore(c, k, 'FREQ', (i * 37 + 3) % 256);
      }
      const freq = async () =>
        Object.fromEntries(await Promise.all(keys.map(async (k) => [k, await c.object('FREQ', k)])));
      const before = await freq();
      const snapshots = await takeSnapshots(server, c);
      expect(await freq()).toEqual(before);
      const truth = await serverTruth(c, traits);
      const parsed = expectSnapshotsMatch(snapshots, truth, traits, { exact, evictionMeta: true });
      for (const p of parsed)
        for (const rec of p.records) {
          expect(rec.freq).toBe(before[rec.key.toString()]);
          expect(rec.idle).toBeUndefined();
        }
      expect(new Set(Object.values(before)).size).toBe(keys.length);
    });

    it('LRU idle times (allkeys-lru) come as IDLE, between OBJECT IDLETIME before and after', async () => {
      const { server, c } = await start({ 'maxmemory-policy': 'allkeys-lru' });
      const keys = await populateTypes(c);
      for (const [i, k] of keys.entries()) {
        await restore(c, k, 'IDLETIME', 1000 + i * 3600);
      }
      const idle = async () =>
        Object.fromEntries(
          await Promise.all(keys.map(async (k) => [k, (await c.object('IDLETIME', k)) as number])),
        );
      const before = await idle();
      const snapshots = await takeSnapshots(server, c);
      const after = await idle();
      const truth = await serverTruth(c, traits);
      const parsed = expectSnapshotsMatch(snapshots, truth, traits, { exact, evictionMeta: true });
      for (const p of parsed)
        for (const rec of p.records) {
          const k = rec.key.toString();
          expect(rec.idle).toBeGreaterThanOrEqual(before[k]!);
          expect(rec.idle).toBeLessThanOrEqual(after[k]!);
          expect(rec.freq).toBeUndefined();
        }
      expect(before.s).toBeGreaterThanOrEqual(1000);
    });

    it.skipIf(!traits.vectorSets)('module values: vector sets (module2 framing)', async () => {
      const { server, c } = await start();
      await c.call('VADD', 'vs', 'VALUES', 3, 1, 2, 3, 'e1');
      await c.call('VADD', 'vs', 'VALUES', 3, 1, 5, 3, 'e2', 'SETATTR', '{"color":"red"}');
      await c.call('VADD', 'vs', 'VALUES', 3, -1, 0.5, 3, 'e3');
      await c.call('VADD', 'vs-noquant', 'VALUES', 4, 0.1, 0.2, 0.3, 0.4, 'a', 'NOQUANT');
      await c.call('VADD', 'vs-bin', 'VALUES', 4, 1, -1, 1, -1, 'b', 'BIN');
      await c.call('VADD', 'vs-reduced', 'REDUCE', 2, 'VALUES', 4, 1, 2, 3, 4, 'r');
      for (let i = 0; i < 300; i++)
        await c.call('VADD', 'vs-many', 'VALUES', 3, Math.sin(i), Math.cos(i), i / 300, `el${i}`);
      await c.expire('vs', 10_000);
      await c.set('plain', 'string');
      const { parsed } = await roundTrip(server, c, traits, { exact });
      for (const k of ['vs', 'vs-noquant', 'vs-bin', 'vs-reduced', 'vs-many']) {
        expect(await c.type(k)).toBe('vectorset');
        const rec = recordOf(parsed[0]!, 0, k);
        expect(rec.rdbType).toBe(7);
        expect(rec.module!.name).toBe('vectorset');
      }
    });

    it('cluster mode: per-slot key counts', async () => {
      const { server, c } = await start({ 'cluster-enabled': 'yes', 'cluster-config-file': 'nodes.conf' });
      await c.call('CLUSTER', 'ADDSLOTSRANGE', 0, 16383);
      for (;;) {
        if (/cluster_state:ok/.test((await c.call('CLUSTER', 'INFO')) as string)) break;
        await sleep(20);
      }
      const keys = ['{a}1', '{a}2', '{a}3', '{b}1', '{c}1', '{c}2', 'x', 'y', 'z'];
      for (const k of keys) await c.set(k, k);
      await c.hset('{b}h', 'f', 'v');
      await c.expire('{a}2', 1000);
      await c.expire('{a}3', 1000);
      await c.pexpireat('{c}1', Date.now() + 5000);
      const { truth, parsed } = await roundTrip(server, c, traits, { exact });
      const bySlot = new Map<number, [number, number]>();
      for (const t of truth.values()) {
        const slot = (await c.call('CLUSTER', 'KEYSLOT', t.key)) as number;
        const e = bySlot.get(slot) ?? [0, 0];
        bySlot.set(slot, [e[0] + 1, e[1] + (t.expireAt === null ? 0 : 1)]);
      }
      for (const [slot, [n]] of bySlot) expect(await c.call('CLUSTER', 'COUNTKEYSINSLOT', slot)).toBe(n);
      const want = [...bySlot].map(([slot, [n, e]]) => [slot, n, e]).sort((a, b) => a[0]! - b[0]!);
      for (const p of parsed) {
        if (traits.slotInfo === 'none') expect(p.slotInfo).toEqual([]);
        else expect(p.slotInfo).toEqual(want);
      }
    });
  });
}

/** DEL and RESTORE a key (keeping its expiry) with an LFU/LRU option. */
async function restore(c: Redis, key: string, ...option: Array<string | number>): Promise<void> {
  const dump = (await c.dumpBuffer(key))!;
  const at = Number(await c.call('PEXPIRETIME', key));
  await c.del(key);
  await c.call('RESTORE', key, Math.max(at, 0), dump, ...(at > 0 ? ['ABSTTL'] : []), ...option);
}

/** One key of every core type (and a key expiry); returns the key names. */
async function populateTypes(c: Redis): Promise<string[]> {
  await c.set('str', 'value');
  await c.set('int', '42');
  await c.rpush('list', 'a', 'b');
  await c.sadd('set', 'a', 'b');
  await c.sadd('intset', '1', '2');
  await c.zadd('zset', '1', 'a');
  await c.hset('hash', 'f', 'v');
  await c.xadd('s', '1-1', 'f', 'v');
  await c.expire('hash', 5000);
  return ['str', 'int', 'list', 'set', 'intset', 'zset', 'hash', 's'];
}
