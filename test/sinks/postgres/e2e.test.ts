import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRedisKey, verifyCommand, verifyMirror } from '../../../sinks/postgres/verify.js';
import { RedisServer } from '../../harness/RedisServer.js';
import { repoRoot } from '../../harness/RedtailProcess.js';
import { dropSchema, PG_URL, pgQuery, rng, uniqueSchema } from './helpers.js';

/** Another build of redtail to run (e.g. one with the sink wired before the CLI is). */
const bin = process.env.REDTAIL_E2E_BIN ?? join(repoRoot, 'bin', 'redtail.js');
const COMMANDS = Number(process.env.REDTAIL_PG_E2E_COMMANDS ?? 200_000);

/** Every redtail this file started, killed at teardown even when a test fails half-way. */
const started: ChildProcess[] = [];

function startRedtail(master: RedisServer, schema: string): { proc: ChildProcess; log: () => string } {
  let stderr = '';
  const proc = spawn(
    process.execPath,
    [
      bin,
      'run',
      '--master',
      master.url(),
      '--sink',
      `${PG_URL}?schema=${schema}&master=${encodeURIComponent(master.url())}`,
      // Kept across the kill -9 restarts, as a deployment's volume would be.
      '--spool',
      join(tmpdir(), `redtail-e2e-${schema}.spool`),
    ],
    {
      cwd: repoRoot,
      env: { ...process.env, REDTAIL_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  started.push(proc);
  proc.stderr!.setEncoding('utf8');
  proc.stderr!.on('data', (d: string) => {
    stderr += d;
  });
  return { proc, log: () => stderr };
}

/** One random command (or MULTI/EXEC, or script) over every type, with expiries, renames and the odd flush. */
function workload(seed: number) {
  const r = rng(seed);
  const pick = <T>(a: T[]): T => a[Math.floor(r() * a.length)]!;
  const k = (t: string) => `${t}:${Math.floor(r() * 200)}`;
  const m = () => `m${Math.floor(r() * 40)}`;
  const n = () => Math.floor(r() * 100) - 20;
  const one = (): Array<string | number> => {
    switch (Math.floor(r() * 34)) {
      case 0:
        return ['set', k('s'), `v${n()}`];
      case 1:
        return ['set', k('s'), 'x', 'px', 5 + Math.floor(r() * 3000)];
      case 2:
        return ['append', k('s'), 'ab'];
      case 3:
        return ['incrby', k('n'), n()];
      case 4:
        return ['incrbyfloat', k('f'), '0.5'];
      case 5:
        return ['setrange', k('s'), Math.floor(r() * 10), 'zz'];
      case 6:
        return ['setbit', k('b'), Math.floor(r() * 64), Math.floor(r() * 2)];
      case 7:
        return ['rpush', k('l'), m(), m()];
      case 8:
        return ['lpop', k('l'), 1 + Math.floor(r() * 2)];
      case 9:
        return ['lrem', k('l'), Math.floor(r() * 5) - 2, m()];
      case 10:
        return ['ltrim', k('l'), Math.floor(r() * 4), Math.floor(r() * 10) - 3];
      case 11:
        return ['lmove', k('l'), k('l'), pick(['left', 'right']), pick(['left', 'right'])];
      case 12:
        return ['sadd', k('t'), m(), m()];
      case 13:
        return ['srem', k('t'), m()];
      case 14:
        return ['spop', k('t')];
      case 15:
        return ['sunionstore', k('t'), k('t'), k('t')];
      case 16:
        return ['zadd', k('z'), ...(r() < 0.4 ? [pick(['nx', 'xx', 'gt', 'lt'])] : []), n(), m(), n(), m()];
      case 17:
        return ['zincrby', k('z'), n(), m()];
      case 18:
        return ['zremrangebyscore', k('z'), n(), n() + 30];
      case 19:
        return ['zpopmax', k('z')];
      case 20:
        return ['zunionstore', k('z'), 2, k('z'), k('z'), 'weights', 2, 1];
      case 21:
        return ['hset', k('h'), m(), `${n()}`, m(), 'x'];
      case 22:
        return ['hincrby', k('h'), m(), n()];
      case 23:
        return ['hdel', k('h'), m()];
      case 24:
        return ['hincrbyfloat', k('h'), 'fl', '1.25'];
      case 25:
        return ['xadd', k('x'), 'maxlen', '~', 20, '*', m(), 'v'];
      case 26:
        return ['xadd', k('x'), '*', m(), 'v'];
      case 27:
        return ['expire', pick([k('s'), k('l'), k('h'), k('z')]), 1 + Math.floor(r() * 5)];
      case 28:
        return ['persist', pick([k('s'), k('l')])];
      case 29:
        return ['rename', k('s'), k('s')];
      case 30:
        return ['copy', k('l'), k('l'), 'replace'];
      case 31:
        return ['del', pick([k('s'), k('l'), k('t'), k('z'), k('h')])];
      case 32:
        return ['pfadd', k('p'), m(), m()];
      default:
        return ['getdel', k('s')];
    }
  };
  return { r, one, k, m };
}

async function runWorkload(
  clients: Redis[],
  total: number,
  seed: number,
  onProgress?: (done: number) => Promise<void>,
) {
  const w = workload(seed);
  let done = 0;
  while (done < total) {
    const c = clients[Math.floor(w.r() * clients.length)]!;
    const p = c.pipeline();
    for (let i = 0; i < 500; i++) {
      const roll = w.r();
      if (roll < 0.02) {
        p.call('multi');
        for (let j = 0; j < 3; j++) {
          const cmd = w.one();
          p.call(String(cmd[0]), ...cmd.slice(1));
        }
        p.call('exec');
        done += 3;
      } else if (roll < 0.03) {
        p.eval(
          "redis.call('rpush', KEYS[1], ARGV[1]); redis.call('zadd', KEYS[2], 1, ARGV[1]); return redis.call('incr', KEYS[3])",
          3,
          w.k('l'),
          w.k('z'),
          w.k('n'),
          w.m(),
        );
        done += 3;
      } else {
        const cmd = w.one();
        p.call(String(cmd[0]), ...cmd.slice(1));
        done++;
      }
    }
    await p.exec();
    if (w.r() < 0.004) await c.flushdb();
    await onProgress?.(done);
  }
}

/** Reads every key of a db from Redis and from `keys`, independently of verify's reconciliation loop. */
async function independentCompare(master: RedisServer, schema: string, dbs: number[]): Promise<string[]> {
  const diffs: string[] = [];
  for (const db of dbs) {
    const c = master.client({ db });
    const keys = new Set<string>();
    let cursor = '0';
    do {
      const [next, batch] = await c.scanBuffer(cursor, 'COUNT', 1000);
      cursor = next.toString();
      for (const b of batch) keys.add(b.toString('latin1'));
    } while (cursor !== '0');
    const rows = await pgQuery<{ key: Buffer; type: string; value: unknown; expire_ms: string | null }>(
      `SELECT key, type, value, (extract(epoch FROM expire_at) * 1000)::bigint AS expire_ms FROM "${schema}".live_keys WHERE db = $1`,
      [db],
    );
    const mirror = new Map(rows.map((r) => [r.key.toString('latin1'), r]));
    for (const key of keys) {
      const redisValue = await readRedisKey(c, Buffer.from(key, 'latin1'));
      const row = mirror.get(key);
      if (!redisValue) continue;
      if (!row) {
        diffs.push(`db${db} ${key}: missing in the mirror`);
        continue;
      }
      const { comparableFromRow } = await import('../../../sinks/postgres/verify.js');
      if (JSON.stringify(comparableFromRow(row)) !== JSON.stringify(redisValue))
        diffs.push(
          `db${db} ${key}: redis=${JSON.stringify(redisValue)} mirror=${JSON.stringify(comparableFromRow(row))}`,
        );
    }
    for (const key of mirror.keys()) if (!keys.has(key)) diffs.push(`db${db} ${key}: only in the mirror`);
  }
  return diffs;
}

describe('redtail run --sink postgres:// end to end', () => {
  let master: RedisServer;
  const schema = uniqueSchema('e2e');
  beforeAll(async () => {
    master = await RedisServer.start({ config: { 'repl-backlog-size': '64mb', hz: '50' } });
  });
  afterAll(async () => {
    for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await master?.stop();
    if (!process.env.REDTAIL_KEEP_SCHEMA) await dropSchema(schema);
  });

  it(`${COMMANDS} random commands with a snapshot, kill -9 restarts, then verify reports zero differences`, async () => {
    const dbs = [0, 1, 2];
    const clients = dbs.map((db) => master.client({ db }));
    // Data before redtail starts arrives through the snapshot.
    await runWorkload(clients, Math.min(20_000, COMMANDS / 10), 1);
    let rt = startRedtail(master, schema);
    let kills = 0;
    const killEvery = Math.floor(COMMANDS / 4);
    // Each kill lands while redtail is streaming (its checkpoint has moved since it started) and a burst of
    // commands is in flight, so batches are cut mid-way.
    const checkpoint = async () =>
      Number(
        (await pgQuery<{ offset: string }>(`SELECT "offset" FROM "${schema}".checkpoints`).catch(() => []))[0]
          ?.offset ?? -1,
      );
    await runWorkload(clients, COMMANDS, 2, async (done) => {
      if (done >= (kills + 1) * killEvery && kills < 3) {
        kills++;
        const before = await checkpoint();
        const deadline = Date.now() + 120_000;
        while ((await checkpoint()) <= before && Date.now() < deadline) await sleep(20);
        const burst = runWorkload(clients, 2_000, 100 + kills);
        await sleep(30);
        rt.proc.kill('SIGKILL');
        await new Promise((r) => rt.proc.once('exit', r));
        await burst;
        rt = startRedtail(master, schema);
      }
    });
    // Catching up after the last restart can take long on a loaded machine; only a checkpoint that stopped moving
    // is a failure. verifyMirror then gets the usual time for the last batches.
    const end = Number((await master.info('replication')).master_repl_offset);
    let seen = -1;
    let movedAt = Date.now();
    for (let at = await checkpoint(); at < end; at = await checkpoint()) {
      if (at !== seen) {
        seen = at;
        movedAt = Date.now();
      } else if (Date.now() - movedAt > 120_000) break; // verifyMirror reports it, with redtail's log
      await sleep(100);
    }
    const verify = await verifyMirror({ master: master.url(), postgres: PG_URL, schema, timeoutMs: 120_000 });
    expect(verify.caughtUp, rt.log().slice(-2000)).toBe(true);
    expect(
      verify.differences
        .slice(0, 5)
        .map((d) => `${d.db} ${d.key} ${JSON.stringify(d.redis)} ${JSON.stringify(d.mirror)}`),
    ).toEqual([]);
    expect(verify.keys).toBeGreaterThan(500);
    expect(await independentCompare(master, schema, dbs)).toEqual([]);
    const dup = await pgQuery<{ n: string; d: string }>(
      `SELECT count(*) AS n, count(DISTINCT (replid, "offset", seq)) AS d FROM "${schema}".changes`,
    );
    expect(dup[0]!.n).toBe(dup[0]!.d);
    // Most commands change something (pops of missing keys and the like do not and are not propagated).
    expect(Number(dup[0]!.n)).toBeGreaterThan(COMMANDS / 3);
    writeFileSync(
      join(repoRoot, 'dist', 'postgres-e2e.txt'),
      `${verify.keys} keys compared, ${dup[0]!.n} change rows, ${kills} kill -9 restarts\n`,
    );
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => out.push(s) > 0) as typeof process.stdout.write;
    let code: number;
    try {
      code = await verifyCommand(['--master', master.url(), '--postgres', `${PG_URL}?schema=${schema}`]);
    } finally {
      process.stdout.write = write;
    }
    expect(out.join(''), out.join('')).toMatch(/ 0 differences/);
    expect(code).toBe(0);
    rt.proc.kill('SIGTERM');
    await new Promise((r) => rt.proc.once('exit', r));
  }, 900_000);
});
