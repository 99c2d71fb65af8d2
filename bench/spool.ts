import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { verifyMirror } from '../sinks/postgres/verify.js';
import { fmt, mb, Redtail, repoRoot } from './benchProcs.js';
import { mixedRdb, startBenchRedis } from './rdbFixture.js';

/**
 * `npm run bench:spool`: issue 10's scenario as a user met it. A master holding the 2.2M-key mixed RDB of bench:rdb,
 * `redtail run` loading it into Postgres while `redis-benchmark -d 100 -P 8 -c 4 -t set` writes for WRITE_S
 * seconds (default 100), with the spool on and off, under the issue's master limits (`client-output-buffer-limit
 * replica 64mb 32mb 10`, `repl-backlog-size 64mb`) and under Redis's defaults (`replica 256mb 64mb 60`, 1 MB
 * backlog). Per run, over the first WINDOW_S seconds (default 120): full syncs (redtail's handshakes), output-buffer
 * drops (the master's log), whether the snapshot completed in Postgres, the spool's peak bytes and redtail's peak
 * RSS (/proc, every second). The runs in BENCH_VERIFY_RUNS (default 64mb-on) then wait (up to CATCHUP_S, default
 * 1800) for the mirror to reach the master's last write and run `redtail verify` (verifyMirror) against it.
 *
 * The writes start once the master has saved its snapshot and is sending it (the replica's state leaves
 * wait_bgsave): until then the stream can only pile up in the master whatever the replica does, and no replica
 * avoids a drop if a burst passes the limit then (see bench/NOTES.md).
 *
 * Env: REDTAIL_BENCH_PG (default postgres://postgres@127.0.0.1:5432/test), BENCH_SPOOL_RUNS (comma separated of
 * 64mb-on, 64mb-off, default-on, default-off; all by default), BENCH_WRITE_S, BENCH_WINDOW_S, BENCH_CATCHUP_S,
 * BENCH_VERIFY_RUNS (comma separated; empty: none). Results are appended to bench/results.md.
 */

const PG = process.env.REDTAIL_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const WRITE_S = Number(process.env.BENCH_WRITE_S ?? 100);
const WINDOW_S = Number(process.env.BENCH_WINDOW_S ?? 120);
const CATCHUP_S = Number(process.env.BENCH_CATCHUP_S ?? 1800);
/** Runs that wait for the mirror to catch up and are verified (each costs minutes per million events and keys). */
const VERIFY_RUNS = (process.env.BENCH_VERIFY_RUNS ?? '64mb-on').split(',');
const RUNS = (process.env.BENCH_SPOOL_RUNS ?? '64mb-on,64mb-off,default-on,default-off').split(',');

const LIMITS: Record<string, string[]> = {
  '64mb': ['client-output-buffer-limit replica 64mb 32mb 10', 'repl-backlog-size 64mb'],
  default: [],
};

interface Master {
  port: number;
  dir: string;
  proc: ChildProcess;
  log: () => string;
  cli: (args: string[]) => string;
}

async function startMaster(limits: string[]): Promise<Master> {
  const dir = mkdtempSync(join(tmpdir(), 'redtail-bench-spool-'));
  copyFileSync(await mixedRdb(), join(dir, 'dump.rdb'));
  const { port, proc, cli } = await startBenchRedis(dir, [
    `logfile ${join(dir, 'redis.log')}`,
    'dbfilename dump.rdb',
    'repl-diskless-sync no',
    ...limits,
  ]);
  while (/loading:1/.test(cli(['INFO', 'persistence']))) await sleep(200);
  return { port, dir, proc, cli, log: () => readFileSync(join(dir, 'redis.log'), 'utf8') };
}

async function stopMaster(m: Master): Promise<void> {
  m.proc.kill('SIGKILL');
  await new Promise((r) => m.proc.once('exit', r));
  rmSync(m.dir, { recursive: true, force: true });
}

async function sql<T extends pg.QueryResultRow>(q: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: PG });
  await c.connect();
  try {
    return (await c.query<T>(q)).rows;
  } catch {
    return [];
  } finally {
    await c.end();
  }
}

/** The sink's state: its checkpoint offset (-1 without one) and whether a snapshot load is under way. */
async function sinkState(schema: string): Promise<{ offset: number; loading: boolean }> {
  const st = await sql<{ snapshot_loading: boolean }>(`SELECT snapshot_loading FROM "${schema}".sink_state`);
  const cp = await sql<{ offset: string }>(`SELECT "offset" FROM "${schema}".checkpoints`);
  return { offset: cp[0] ? Number(cp[0].offset) : -1, loading: st[0]?.snapshot_loading ?? true };
}

const drops = (m: Master) => m.log().split('overcoming of output buffer limits').length - 1;
const masterOffset = (m: Master) =>
  Number(/master_repl_offset:(\d+)/.exec(m.cli(['INFO', 'replication']))?.[1]);
const replicaState = (m: Master) => /slave0:.*?state=(\w+)/.exec(m.cli(['INFO', 'replication']))?.[1] ?? null;

interface Result {
  run: string;
  keys: number;
  writes: number;
  writeMBs: number;
  fullSyncs: number;
  drops: number;
  snapshotDone: boolean;
  snapshotS: number | null;
  peakSpool: number;
  peakRss: number;
  catchUpS: number | null;
  differences: number | null;
  verifiedKeys: number | null;
  diagnosis: string;
}

async function scenario(name: string): Promise<Result> {
  const [limitName, spool] = name.split('-') as [string, string];
  const master = await startMaster(LIMITS[limitName]!);
  const keys = Number(/keys=(\d+)/.exec(master.cli(['INFO', 'keyspace']))?.[1] ?? 0);
  const schema = `bench_spool_${randomBytes(4).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'redtail-bench-spool-rt-'));
  const config = join(dir, 'redtail.json');
  writeFileSync(config, JSON.stringify({ statsIntervalMs: 1000 }));
  process.stdout.write(`\n[${name}] master :${master.port} with ${fmt(keys)} keys; schema ${schema}\n`);
  const t0 = Date.now();
  const elapsed = () => (Date.now() - t0) / 1000;
  const redtail = new Redtail([
    '--master',
    `redis://127.0.0.1:${master.port}`,
    '--sink',
    `${PG}?schema=${schema}`,
    '--checkpoint',
    join(dir, 'cp.json'),
    '--config',
    config,
    ...(spool === 'off' ? ['--spool', 'off'] : []),
  ]);
  let snapshotS: number | null = null;
  const watchSnapshot = async () => {
    if (snapshotS !== null) return;
    const s = await sinkState(schema);
    if (s.offset >= 0 && !s.loading) snapshotS = elapsed();
  };
  try {
    // Writes begin once the master is sending its saved snapshot (see the header).
    while (['wait_bgsave', null].includes(replicaState(master)) && elapsed() < 120) {
      if (redtail.exited) throw new Error(`redtail exited: ${JSON.stringify(redtail.lines.slice(-2))}`);
      await sleep(100);
    }
    const startOffset = masterOffset(master);
    process.stdout.write(`[${name}] writes start at ${elapsed().toFixed(1)} s\n`);
    const bench = spawn(
      'redis-benchmark',
      ['-p', String(master.port), '-d', '100', '-P', '8', '-c', '4', '-t', 'set', '-n', '2000000000', '-q'],
      { stdio: 'ignore' },
    );
    const writesFrom = Date.now();
    while ((Date.now() - writesFrom) / 1000 < WRITE_S) {
      await watchSnapshot();
      await sleep(1000);
    }
    bench.kill('SIGINT');
    await new Promise((r) => bench.once('exit', r));
    const writesS = (Date.now() - writesFrom) / 1000;
    const endOffset = masterOffset(master);
    const writes = Number(/total_commands_processed:(\d+)/.exec(master.cli(['INFO', 'stats']))?.[1] ?? 0);
    while (elapsed() < WINDOW_S) {
      await watchSnapshot();
      await sleep(1000);
    }
    if (redtail.exited)
      process.stdout.write(
        `[${name}] redtail exited (${redtail.proc.exitCode ?? redtail.proc.signalCode}): ${JSON.stringify(redtail.lines.slice(-3))}\n`,
      );
    const fullSyncs = redtail.fullSyncs();
    const dropped = drops(master);
    const snapshotDone = snapshotS !== null;
    process.stdout.write(
      `[${name}] window ${WINDOW_S} s: ${fullSyncs} full syncs, ${dropped} drops, snapshot ${snapshotDone ? `done at ${snapshotS} s` : 'not done'}\n`,
    );
    const diagnosis =
      redtail.lines
        .filter((l) => (l.level ?? 0) >= 40 && /master closed the link/.test(String(l.msg)))
        .map((l) => String(l.msg).slice(0, 60))[0] ?? '';
    let catchUpS: number | null = null;
    let differences: number | null = null;
    let verifiedKeys: number | null = null;
    if (VERIFY_RUNS.includes(name)) {
      const from = Date.now();
      while ((await sinkState(schema)).offset < endOffset && (Date.now() - from) / 1000 < CATCHUP_S) {
        if (redtail.exited) break;
        await watchSnapshot();
        await sleep(2000);
      }
      if ((await sinkState(schema)).offset >= endOffset) {
        catchUpS = elapsed();
        process.stdout.write(`[${name}] mirror caught up at ${catchUpS.toFixed(0)} s\n`);
        {
          const v = await verifyMirror({
            master: `redis://127.0.0.1:${master.port}`,
            postgres: PG,
            schema,
            timeoutMs: 600_000,
          });
          differences = v.differences.length;
          verifiedKeys = v.keys;
          process.stdout.write(`[${name}] verify: ${fmt(v.keys)} keys, ${differences} differences\n`);
        }
      } else process.stdout.write(`[${name}] mirror not caught up after ${CATCHUP_S} s\n`);
    }
    return {
      run: name,
      keys,
      writes,
      writeMBs: (endOffset - startOffset) / 1e6 / writesS,
      fullSyncs: redtail.fullSyncs(),
      drops: drops(master),
      snapshotDone,
      snapshotS,
      peakSpool: redtail.peakSpoolBytes(),
      peakRss: redtail.peakRss,
      catchUpS,
      differences,
      verifiedKeys,
      diagnosis,
    };
  } finally {
    await redtail.stop();
    await stopMaster(master);
    await sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const load0 = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const results: Result[] = [];
  for (const name of RUNS) results.push(await scenario(name));
  const load1 = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const header =
    '| run | keys | master commands | stream MB/s | full syncs | output-buffer drops | snapshot complete | peak spool | peak RSS | caught up at | verify |';
  const rows = results.map(
    (r) =>
      `| ${r.run} | ${fmt(r.keys)} | ${fmt(r.writes)} | ${r.writeMBs.toFixed(1)} | ${r.fullSyncs} | ${r.drops} | ${r.snapshotDone ? `yes (${r.snapshotS?.toFixed(0)} s)` : r.snapshotS !== null ? `after the window (${r.snapshotS.toFixed(0)} s)` : 'no'} | ${mb(r.peakSpool)} | ${mb(r.peakRss)} | ${r.catchUpS === null ? '-' : `${r.catchUpS.toFixed(0)} s`} | ${r.differences === null ? '-' : `${r.differences} differences in ${fmt(r.verifiedKeys ?? 0)} keys`} |`,
  );
  const redis = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();
  const section = [
    `## bench:spool ${new Date().toISOString()}`,
    '',
    `- machine: load average at start ${load0}, at end ${load1} (2 shared cores: figures under load are noisy)`,
    `- ${redis}; Node ${process.version}; redis-benchmark -d 100 -P 8 -c 4 -t set for ${WRITE_S} s from the start of the snapshot transfer; counts over the first ${WINDOW_S} s (drops and full syncs: whole run)`,
    '- 64mb: client-output-buffer-limit replica 64mb 32mb 10, repl-backlog-size 64mb; default: replica 256mb 64mb 60, 1 MB backlog',
    '',
    header,
    `|${' --- |'.repeat(11)}`,
    ...rows,
    '',
  ].join('\n');
  process.stdout.write(`\n${section}\n`);
  for (const r of results)
    if (r.diagnosis) process.stdout.write(`${r.run}: redtail said "${r.diagnosis}..."\n`);
  appendFileSync(join(repoRoot, 'bench', 'results.md'), `\n${section}`);
}

await main();
