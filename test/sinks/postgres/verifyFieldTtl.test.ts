import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeBytes } from '../../../sinks/postgres/model/encoding.js';
import { describeDifference, masterHasFieldTtl, type VerifyResult } from '../../../sinks/postgres/verify.js';
import { redisBinaryInfo } from '../../harness/redisVersions.js';
import { describeDiffs, MirrorHarness, pgQuery } from './helpers.js';

/**
 * `redtail verify` compares hash field TTLs (Redis 7.4+): a mirror whose `field_expire_at` differs from the master's
 * `HPEXPIRETIME` is reported, field by field; fields whose TTL has passed but that the master has not deleted yet
 * (its reads hide them, HLEN still counts them) are not a difference. Masters without field expiry (Redis 7.0,
 * Valkey 8.1) are verified as before, and a field TTL only the mirror has is reported there too.
 *
 * The mirror is filled by the sink from each master's real replication stream (MirrorHarness); expected TTLs are
 * read from the live master.
 */
const r80 = await redisBinaryInfo('8.0');
const r70 = await redisBinaryInfo('7.0');
const valkey = await redisBinaryInfo('valkey-8.1');

const FUTURE_MS = 4_102_444_800_000;
const BIN = Buffer.from([0xff, 0x00, 0x41]);

let h: MirrorHarness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

/** The mirror's `field_expire_at` of one key of db 0, as stored. */
async function storedFieldTtls(schema: string, key: string): Promise<Array<[unknown, number]> | null> {
  const rows = await pgQuery<{ f: Array<[unknown, number]> | null }>(
    `SELECT field_expire_at AS f FROM "${schema}".keys WHERE db = 0 AND key = $1`,
    [Buffer.from(key)],
  );
  expect(rows).toHaveLength(1);
  return rows[0]!.f;
}

async function setStoredFieldTtls(schema: string, key: string, v: unknown): Promise<void> {
  await pgQuery(`UPDATE "${schema}".keys SET field_expire_at = $2::jsonb WHERE db = 0 AND key = $1`, [
    Buffer.from(key),
    v === null ? null : JSON.stringify(v),
  ]);
}

async function masterFieldTtl(c: Redis, key: string, field: string | Buffer): Promise<number> {
  const [t] = (await c.call('HPEXPIRETIME', key, 'FIELDS', '1', field)) as number[];
  return Number(t);
}

function noDifferences(v: VerifyResult): void {
  expect(v.caughtUp).toBe(true);
  expect(v.differences.length, describeDiffs(v)).toBe(0);
}

describe.skipIf(r80.path === null)(
  `verify compares hash field TTLs (${r80.path === null ? r80.reason : `Redis ${r80.exact}`})`,
  () => {
    it('a tampered or lost field TTL in the mirror is reported as exactly that field, with both times', async () => {
      h = await MirrorHarness.start({ binary: r80.path! });
      const c = h.redis;
      expect(await masterHasFieldTtl(c)).toBe(true);
      await h.run([
        ['HSET', 'h', 'a', '1', 'b', '2', 'c', '3', BIN, 'bin'],
        ['HPEXPIREAT', 'h', String(FUTURE_MS), 'FIELDS', '1', 'a'],
        ['HEXPIRE', 'h', '100000', 'FIELDS', '2', 'b', BIN],
        ['HSET', 'plain', 'x', '1'],
        ['SET', 's', 'v'],
      ]);
      noDifferences(await h.verify());

      const stored = await storedFieldTtls(h.schema, 'h');
      // Sorted by field bytes: 0xff comes after 'b'.
      expect(stored?.map(([f]) => f)).toEqual(['a', 'b', encodeBytes(BIN)]);

      // One field's time changed in the mirror.
      const onMasterA = await masterFieldTtl(c, 'h', 'a');
      expect(onMasterA).toBe(FUTURE_MS);
      await setStoredFieldTtls(
        h.schema,
        'h',
        stored!.map(([f, ms]) => [f, f === 'a' ? onMasterA + 1234 : ms]),
      );
      let v = await h.verify();
      expect(v.differences).toHaveLength(1);
      let d = v.differences[0]!;
      expect(d.key.toString()).toBe('h');
      expect(d.redis?.value).toEqual(d.mirror?.value);
      expect(d.fieldTtls).toEqual([{ field: 'a', redis: onMasterA, mirror: onMasterA + 1234 }]);
      expect(describeDifference(d)).toContain(
        `field "a" expireAt: redis ${onMasterA}, mirror ${onMasterA + 1234}`,
      );

      // Back to the right times: no difference.
      await setStoredFieldTtls(h.schema, 'h', stored);
      noDifferences(await h.verify());

      // A lost TTL (what the HINCRBYFLOAT bug did), on the binary field name.
      const onMasterBin = await masterFieldTtl(c, 'h', BIN);
      expect(onMasterBin).toBeGreaterThan(0);
      await setStoredFieldTtls(
        h.schema,
        'h',
        stored!.filter(([f]) => JSON.stringify(f) !== JSON.stringify(encodeBytes(BIN))),
      );
      v = await h.verify();
      expect(v.differences.map((x) => x.key.toString())).toEqual(['h']);
      expect(v.differences[0]!.fieldTtls).toEqual([
        { field: encodeBytes(BIN), redis: onMasterBin, mirror: null },
      ]);

      // A TTL only the mirror has, on a hash without any on the master.
      await setStoredFieldTtls(h.schema, 'h', stored);
      await setStoredFieldTtls(h.schema, 'plain', [['x', FUTURE_MS]]);
      v = await h.verify();
      expect(v.differences.map((x) => x.key.toString())).toEqual(['plain']);
      d = v.differences[0]!;
      expect(d.fieldTtls).toEqual([{ field: 'x', redis: null, mirror: FUTURE_MS }]);
      expect(describeDifference(d)).toContain(`field "x" expireAt: redis none, mirror ${FUTURE_MS}`);

      await setStoredFieldTtls(h.schema, 'plain', null);
      noDifferences(await h.verify());
    });

    it('a field missing from the mirror: the master is read with its own field list, TTL included', async () => {
      h = await MirrorHarness.start({ binary: r80.path! });
      const c = h.redis;
      await h.run([
        ['HSET', 'h', 'a', '1', 'b', '2'],
        ['HPEXPIREAT', 'h', String(FUTURE_MS + 7), 'FIELDS', '1', 'b'],
      ]);
      noDifferences(await h.verify());
      await pgQuery(
        `UPDATE "${h.schema}".keys SET value = '[["a", "1"]]'::jsonb, field_expire_at = NULL WHERE db = 0 AND key = $1`,
        [Buffer.from('h')],
      );
      const v = await h.verify();
      expect(v.differences).toHaveLength(1);
      const d = v.differences[0]!;
      expect(d.redis?.value).toEqual([
        ['a', '1'],
        ['b', '2'],
      ]);
      expect(d.redis?.fieldExpireAt).toEqual([['b', await masterFieldTtl(c, 'h', 'b')]]);
      expect(d.mirror?.value).toEqual([['a', '1']]);
      expect(d.mirror?.fieldExpireAt).toEqual([]);
    });

    it('a hash of 2,500 fields (several HPEXPIRETIME per read): one tampered TTL among hundreds', async () => {
      // Kept inline (the test tampers `keys.field_expire_at`): above `bigCollectionMembers` (2,000) the hash would be
      // stored one row per field; tampered member rows are covered by bigCollections.test.ts.
      h = await MirrorHarness.start({ binary: r80.path! }, { bigCollectionMembers: 1_000_000 });
      const c = h.redis;
      const fields = Array.from({ length: 2500 }, (_, i) => `f${i}`);
      const cmds: Array<Array<string>> = [['HSET', 'big', ...fields.flatMap((f, i) => [f, `v${i}`])]];
      const withTtl = fields.filter((_, i) => i % 7 === 0);
      for (let i = 0; i < withTtl.length; i += 50) {
        const chunk = withTtl.slice(i, i + 50);
        cmds.push(['HPEXPIREAT', 'big', String(FUTURE_MS + i), 'FIELDS', String(chunk.length), ...chunk]);
      }
      await h.run(cmds);
      noDifferences(await h.verify());
      const stored = (await storedFieldTtls(h.schema, 'big'))!;
      expect(stored).toHaveLength(withTtl.length);
      const victim = 'f2100';
      const onMaster = await masterFieldTtl(c, 'big', victim);
      expect(onMaster).toBeGreaterThan(0);
      await setStoredFieldTtls(
        h.schema,
        'big',
        stored.map(([f, ms]) => [f, f === victim ? ms - 1 : ms]),
      );
      const v = await h.verify();
      expect(v.differences).toHaveLength(1);
      expect(v.differences[0]!.fieldTtls).toEqual([{ field: victim, redis: onMaster, mirror: onMaster - 1 }]);
      await setStoredFieldTtls(h.schema, 'big', stored);
      noDifferences(await h.verify());
    });

    it('fields whose TTL has passed but that the master has not deleted yet are no difference', async () => {
      h = await MirrorHarness.start({ binary: r80.path!, config: { 'enable-debug-command': 'local' } });
      const c = h.redis;
      await c.call('DEBUG', 'SET-ACTIVE-EXPIRE', '0');
      await h.run([
        ['HSET', 'h', 'gone', '1', 'stays', '2', 'long', '3'],
        ['HPEXPIRE', 'h', '30', 'FIELDS', '1', 'gone'],
        ['HPEXPIREAT', 'h', String(FUTURE_MS), 'FIELDS', '1', 'long'],
        ['HSET', 'all', 'x', '1'],
        ['HPEXPIRE', 'all', '30', 'FIELDS', '1', 'x'],
      ]);
      // Until the master's reads hide the expired fields (its own clock decides): HKEYS without them, HLEN with.
      const deadline = Date.now() + 10_000;
      while ((await c.hkeys('h')).includes('gone') || (await c.hkeys('all')).length > 0) {
        if (Date.now() > deadline) throw new Error('the fields did not expire on the master');
        await sleep(10);
      }
      expect(await c.hlen('h')).toBe(3);
      expect(await c.hlen('all')).toBe(1);
      expect(await c.type('all')).toBe('hash');
      await h.sync();
      // The master propagated no HDEL, so the mirror still stores them, with their (passed) TTLs.
      const rows = await pgQuery<{ key: string; value: Array<[string, string]> }>(
        `SELECT key_text AS key, value FROM "${h.schema}".keys WHERE db = 0 ORDER BY key_text`,
      );
      expect(rows.map((r) => [r.key, r.value.map(([f]) => f)])).toEqual([
        ['all', ['x']],
        ['h', ['gone', 'long', 'stays']],
      ]);
      noDifferences(await h.verify());

      // Touching them makes the master delete them (HDEL); the mirror follows, and still agrees.
      expect(await c.hget('h', 'gone')).toBeNull();
      expect(await c.hget('all', 'x')).toBeNull();
      expect(await c.exists('all')).toBe(0);
      await h.sync();
      const after = await pgQuery<{ key: string; value: Array<[string, string]> }>(
        `SELECT key_text AS key, value FROM "${h.schema}".keys WHERE db = 0 ORDER BY key_text`,
      );
      expect(after.map((r) => [r.key, r.value.map(([f]) => f)])).toEqual([['h', ['long', 'stays']]]);
      noDifferences(await h.verify());

      // A passed TTL in the mirror on a field the master still shows is a difference (the field is missing there).
      const stored = (await storedFieldTtls(h.schema, 'h'))!;
      await setStoredFieldTtls(h.schema, 'h', [...stored, ['stays', 1]]);
      const v = await h.verify();
      expect(v.differences).toHaveLength(1);
      expect(v.differences[0]!.redis?.value).toEqual([
        ['long', '3'],
        ['stays', '2'],
      ]);
      expect(v.differences[0]!.mirror?.value).toEqual([['long', '3']]);
    });
  },
);

for (const [name, info] of [
  ['Redis 7.0', r70],
  ['Valkey 8.1', valkey],
] as const)
  describe.skipIf(info.path === null)(
    `verify on a master without hash field expiry (${name} ${info.path === null ? info.reason : info.exact})`,
    () => {
      it('hashes compare as before; a field TTL only in the mirror is reported', async () => {
        h = await MirrorHarness.start({ binary: info.path! });
        const c = h.redis;
        expect(await masterHasFieldTtl(c)).toBe(false);
        await h.run([
          ['HSET', 'h', 'a', '1', 'b', '2', BIN, 'bin'],
          ['HINCRBYFLOAT', 'h', 'a', '0.5'],
          ['HDEL', 'h', 'b'],
          ['HSET', 'h2', 'x', '1'],
          ['EXPIRE', 'h2', '1000'],
          ['RPUSH', 'l', 'a', 'b'],
        ]);
        noDifferences(await h.verify());
        await setStoredFieldTtls(h.schema, 'h', [['a', FUTURE_MS]]);
        const v = await h.verify();
        expect(v.differences.map((x) => x.key.toString())).toEqual(['h']);
        expect(v.differences[0]!.fieldTtls).toEqual([{ field: 'a', redis: null, mirror: FUTURE_MS }]);
        await setStoredFieldTtls(h.schema, 'h', null);
        noDifferences(await h.verify());
      });
    },
  );
