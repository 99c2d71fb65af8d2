import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { verifyMirror } from '../../../sinks/postgres/verify.js';
import type { RedisServer } from '../../harness/RedisServer.js';
import { redisBinaryInfo } from '../../harness/redisVersions.js';
import { useTestScope } from '../../harness/TestScope.js';
import { describeDiffs, mirrorCaughtUp, mirrorRun, PG_URL, pgQuery, rng } from './helpers.js';

/**
 * Hash field expiry end to end: the real `redtail run` binary replicating a Redis 8.0 master into the Postgres
 * mirror, under a workload of HSETEX/HGETEX/HGETDEL/HEXPIRE.../HPERSIST mixed with 7.0's hash commands, where many
 * fields get TTLs of a few ms and expire while redtail streams (actively, and lazily with active expiry switched off
 * for a while). Once the master has deleted every expired field, the mirror must hold exactly the master's hashes:
 * fields, values, key TTLs and field TTLs, as verifyMirror compares them, and again by an independent comparison
 * here (HKEYS/HMGET/HPEXPIRETIME against the `value` and `field_expire_at` columns), so a blind spot in verify does
 * not hide a mirror bug.
 */
const scope = useTestScope();
const info = await redisBinaryInfo('8.0');

const KEYS = 24;
const FUTURE_MS = 4_102_444_800_000;

/** One random command of the workload; short TTLs are a few ms to a few hundred, long ones far away. */
function workload(seed: number) {
  const r = rng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const pick = <T>(a: T[]): T => a[int(a.length)]!;
  const key = () => `h:${int(KEYS)}`;
  // n0..n2 also get integer values, so HINCRBY/HINCRBYFLOAT find fields with TTLs.
  const field = () => (r() < 0.3 ? `n${int(3)}` : `f${int(8)}`);
  const fields = () => {
    const n = 1 + int(3);
    return [n, ...Array.from({ length: n }, field)];
  };
  const short = () => 5 + int(300);
  const cond = (): string[] => (r() < 0.4 ? [pick(['NX', 'XX', 'GT', 'LT'])] : []);
  let latestShort = 0;
  const shortMs = () => {
    const ms = short();
    latestShort = Math.max(latestShort, Date.now() + ms);
    return ms;
  };
  const one = (): Array<string | number> => {
    switch (int(22)) {
      case 0:
      case 1:
        return ['HSET', key(), field(), `v${int(100)}`, field(), `w${int(100)}`];
      case 2:
        return ['HSETEX', key(), 'PX', shortMs(), 'FIELDS', 2, field(), `s${int(100)}`, field(), 'x'];
      case 3:
        return ['HSETEX', key(), 'EX', 1000 + int(9000), 'FIELDS', 1, field(), `l${int(100)}`];
      case 4:
        return [
          'HSETEX',
          key(),
          ...(r() < 0.5 ? [pick(['FNX', 'FXX'])] : []),
          ...pick([['KEEPTTL'], [], ['PXAT', FUTURE_MS + int(1000)]]),
          'FIELDS',
          1,
          field(),
          `k${int(100)}`,
        ];
      case 5:
        return ['HPEXPIRE', key(), shortMs(), ...cond(), 'FIELDS', ...fields()];
      case 6:
        return ['HEXPIRE', key(), 1000 + int(9000), ...cond(), 'FIELDS', ...fields()];
      case 7:
        return ['HPEXPIREAT', key(), FUTURE_MS + int(100_000), ...cond(), 'FIELDS', ...fields()];
      case 8:
        // A time already past: the master deletes the fields (HDEL).
        return [pick(['HEXPIRE', 'HPEXPIREAT']), key(), pick([0, 1000]), 'FIELDS', ...fields()];
      case 9:
        return ['HPERSIST', key(), 'FIELDS', ...fields()];
      case 10:
        return ['HGETEX', key(), 'PX', shortMs(), 'FIELDS', ...fields()];
      case 11:
        return [
          'HGETEX',
          key(),
          ...pick([['EX', 5000], ['PERSIST'], ['PX', 0], ['EXAT', 1]]),
          'FIELDS',
          ...fields(),
        ];
      case 12:
        return ['HGETDEL', key(), 'FIELDS', ...fields()];
      case 13:
        return ['HDEL', key(), field()];
      case 14:
        return ['HINCRBY', key(), `n${int(3)}`, int(20) - 5];
      case 15:
        // On a field with a TTL the master keeps it, but propagates HSET, which drops it.
        return ['HINCRBYFLOAT', key(), `n${int(3)}`, '0.5'];
      case 16:
        return ['HSETEX', key(), 'PX', shortMs(), 'FIELDS', 1, `n${int(3)}`, String(int(9))];
      case 17:
        // Reads expire fields lazily (HDEL) when active expiry is off.
        return ['HGET', key(), field()];
      case 18:
        return ['HSETNX', key(), field(), 'nx'];
      case 19:
        return pick([
          ['EXPIRE', key(), 1000 + int(1000)],
          ['PERSIST', key()],
          ['RENAME', key(), key()],
          ['COPY', key(), key(), 'REPLACE'],
        ]);
      case 20:
        return ['DEL', key()];
      default:
        return ['HMSET', key(), field(), `m${int(100)}`];
    }
  };
  return { one, latestShort: () => latestShort, r };
}

async function runWorkload(c: Redis, w: ReturnType<typeof workload>, commands: number): Promise<void> {
  for (let done = 0; done < commands; ) {
    const p = c.pipeline();
    for (let i = 0; i < 40; i++, done++) {
      if (w.r() < 0.05) {
        p.call('multi');
        for (let j = 0; j < 3; j++) {
          const cmd = w.one();
          p.call(String(cmd[0]), ...cmd.slice(1));
        }
        p.call('exec');
      } else {
        const cmd = w.one();
        p.call(String(cmd[0]), ...cmd.slice(1));
      }
    }
    // Errors (a HINCRBY on a non-integer, RENAME of a missing key) are not propagated and are fine here.
    await p.exec();
    // Let short TTLs pass while the stream flows.
    await sleep(w.r() * 20);
  }
}

/** Every hash of the master, read with its fields' TTLs: [key, [[field, value, ttl ms or -1]...]] sorted. */
async function masterHashes(c: Redis): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const key of (await c.keys('*')).sort()) {
    if ((await c.type(key)) !== 'hash') continue;
    const fields = (await c.hkeys(key)).sort();
    if (fields.length === 0) continue;
    const values = await c.hmget(key, ...fields);
    const times = (await c.call('HPEXPIRETIME', key, 'FIELDS', fields.length, ...fields)) as number[];
    out.set(key, JSON.stringify(fields.map((f, i) => [f, values[i], times[i]])));
  }
  return out;
}

/** The same from the mirror's `keys` table: value pairs and `field_expire_at`. */
async function mirrorHashes(schema: string): Promise<Map<string, string>> {
  const rows = await pgQuery<{
    key: string;
    value: Array<[string, string]>;
    fttl: Array<[string, number]> | null;
  }>(
    // A hash stored one row per field (docs/postgres.md, "Big collections") has its fields aggregated as live_keys does.
    `SELECT key_text AS key,
            CASE WHEN member_rows IS NULL THEN value ELSE "${schema}".redtail_rows_value(db, key, type) END AS value,
            CASE WHEN member_rows IS NULL THEN field_expire_at ELSE "${schema}".redtail_rows_field_ttl(db, key) END AS fttl
     FROM "${schema}".keys WHERE db = 0 AND type = 'hash' ORDER BY key_text`,
  );
  const out = new Map<string, string>();
  for (const row of rows) {
    const ttl = new Map((row.fttl ?? []).map(([f, ms]) => [f, Number(ms)]));
    const fields = [...row.value].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    out.set(row.key, JSON.stringify(fields.map(([f, v]) => [f, v, ttl.get(f) ?? -1])));
  }
  return out;
}

/** Waits until the master holds no expired field (HLEN counts them, HKEYS hides them; neither deletes). */
async function masterSettled(c: Redis, after: number): Promise<void> {
  while (Date.now() <= after) await sleep(20);
  const deadline = Date.now() + 60_000;
  for (;;) {
    let stale = 0;
    for (const key of await c.keys('*'))
      if ((await c.type(key)) === 'hash' && (await c.hlen(key)) !== (await c.hkeys(key)).length) stale++;
    if (stale === 0) return;
    if (Date.now() > deadline) throw new Error(`${stale} hashes still hold expired fields`);
    await sleep(50);
  }
}

/** An 8.0 master and `redtail run` mirroring it into a fresh schema (both stopped, the schema dropped, at teardown). */
async function mirrored(params = ''): Promise<{
  master: RedisServer;
  c: Redis;
  schema: string;
  start: () => ReturnType<typeof scope.redtail>;
}> {
  const master = await scope.server({
    binary: info.path!,
    config: { 'enable-debug-command': 'local', hz: '50' },
  });
  const { schema, start } = mirrorRun(scope, master, 'hfe', params);
  return { master, c: master.client(), schema, start };
}

async function compareHashes(
  c: Redis,
  schema: string,
): Promise<{ diffs: string[]; onMaster: Map<string, string> }> {
  const onMaster = await masterHashes(c);
  const inMirror = await mirrorHashes(schema);
  const diffs = [...new Set([...onMaster.keys(), ...inMirror.keys()])]
    .filter((k) => onMaster.get(k) !== inMirror.get(k))
    .map((k) => `${k}: master ${onMaster.get(k) ?? '(none)'} mirror ${inMirror.get(k) ?? '(none)'}`);
  return { diffs, onMaster };
}

const SEED = Number(process.env.REDTAIL_HFE_SEED ?? 7);

describe.skipIf(info.path === null)(
  `hash field expiry through the Postgres mirror (${info.path === null ? info.reason : `Redis ${info.exact}`})`,
  () => {
    it('HINCRBYFLOAT on a field with a TTL: the master keeps the TTL, and so does the mirror', async () => {
      const { master, c, schema, start } = await mirrored();
      const rt = start();
      await mirrorCaughtUp(master, schema);
      await c.call('HSETEX', 'h', 'PXAT', FUTURE_MS, 'FIELDS', 2, 'n', '1', 'm', '1');
      await c.hincrbyfloat('h', 'n', '0.5');
      // A plain HSET of one field drops its TTL, on the master too.
      await c.hset('h', 'm', '2');
      await mirrorCaughtUp(master, schema);
      const verify = await verifyMirror({
        master: master.url(),
        postgres: PG_URL,
        schema,
        timeoutMs: 60_000,
      });
      expect(verify.differences.length, describeDiffs(verify)).toBe(0);
      const { diffs, onMaster } = await compareHashes(c, schema);
      expect(onMaster.get('h')).toBe(
        JSON.stringify([
          ['m', '2', -1],
          ['n', '1.5', FUTURE_MS],
        ]),
      );
      expect(diffs).toEqual([]);
      await rt.stop('SIGTERM');
    });

    // Twice: hashes inline, and every hash of 3 fields or more stored one row per field (field TTLs in `expire_ms`).
    it.each([
      ['inline', ''],
      ['hashes in member rows', '&bigCollectionMembers=3'],
    ])(
      'a field-expiry workload with a snapshot, fields expiring actively and lazily, and a kill -9: the mirror equals the master (%s)',
      async (_label, params) => {
        const { master, c, schema, start } = await mirrored(params);
        const w = workload(SEED);

        // Hashes with field TTLs (far and near) before redtail starts arrive through the snapshot.
        await runWorkload(c, w, 400);
        let rt = start();
        // Streaming from here on: the snapshot is in and the mirror follows the stream.
        await mirrorCaughtUp(master, schema);
        await runWorkload(c, w, 1500);

        // kill -9 while commands are in flight; the restart resumes from the mirror's checkpoint.
        const burst = runWorkload(c, w, 300);
        await sleep(20);
        rt.proc.kill('SIGKILL');
        await rt.exited;
        await burst;
        rt = start();
        await mirrorCaughtUp(master, schema);

        // Lazy expiry: expired fields stay stored until a command touches them, which deletes them (HDEL).
        await c.call('DEBUG', 'SET-ACTIVE-EXPIRE', '0');
        await runWorkload(c, w, 1500);
        await c.call('DEBUG', 'SET-ACTIVE-EXPIRE', '1');
        await runWorkload(c, w, 500);

        await masterSettled(c, w.latestShort());
        await mirrorCaughtUp(master, schema);

        const verify = await verifyMirror({
          master: master.url(),
          postgres: PG_URL,
          schema,
          timeoutMs: 60_000,
        });
        expect(verify.caughtUp).toBe(true);
        expect(verify.differences.length, describeDiffs(verify)).toBe(0);
        const { diffs, onMaster } = await compareHashes(c, schema);
        expect(diffs).toEqual([]);
        const inRows = await pgQuery<{ n: number; ttls: number }>(
          `SELECT count(DISTINCT (db, key))::int AS n, count(expire_ms)::int AS ttls FROM "${schema}".hash_fields`,
        );
        if (params) {
          expect(inRows[0]!.n).toBeGreaterThan(KEYS / 4);
          expect(inRows[0]!.ttls).toBeGreaterThan(0);
        } else expect(inRows[0]!.n).toBe(0);

        // The workload really exercised field TTLs: most hashes exist at the end, some fields still have a TTL, and the
        // stream carried field expiries, persists and deletions.
        expect(onMaster.size).toBeGreaterThan(KEYS / 2);
        expect([...onMaster.values()].some((v) => /,\d{13}\]/.test(v))).toBe(true);
        const ops = await pgQuery<{ op: string; n: string }>(
          `SELECT op, count(*) AS n FROM "${schema}".changes GROUP BY op`,
        );
        const count = (op: string) => Number(ops.find((o) => o.op === op)?.n ?? 0);
        for (const op of ['hset', 'hexpire', 'hpersist', 'hdel', 'hincrby'])
          expect(count(op), op).toBeGreaterThan(10);

        await rt.stop('SIGTERM');
        expect(rt.stderr).not.toMatch(/"level":(50|60)/);
      },
      600_000,
    );
  },
);
