import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { redtailArgv, repoRoot } from './benchProcs.js';
import { startBenchRedis } from './rdbFixture.js';

/**
 * The live-master mode of bench:postgres (issue 13): a redis-server master on a free port driven by
 * `redis-benchmark -P 32`, and the real binary (`bin/redtail.js run`) following it into the Postgres sink. Reports
 * events/s from the burst's start until the sink's committed checkpoint reached the master's offset, the catch-up
 * time after the burst, CPU seconds per million events of redtail and of its Postgres backends (utime+stime from
 * /proc; Postgres runs on this machine), and whether `redtail verify` finds the mirror equal to the master.
 */

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((res, rej) => {
    const p = spawn(cmd, args, { stdio: 'ignore' });
    p.once('error', rej);
    p.once('exit', (code) => (code === 0 ? res() : rej(new Error(`${cmd} exited with ${code}`))));
  });
}

export interface LiveResult {
  load: string;
  commands: number;
  events: number;
  burstS: number;
  /** From redtail's start until its checkpoint reached the master's offset before the burst (snapshot load). */
  syncS: number;
  eventsPerSec: number;
  catchUpS: number;
  redtailCpuPerM: number;
  pgCpuPerM: number;
  verify: string;
  /** Rows/s of a plain binary COPY of the run's `changes` rows into a table like it, in one transaction. */
  changesCeiling: number;
  /** The sink's stats from redtail's `stopped` log line (batches, ms per phase). */
  sinkStats: string;
  /**
   * Events/s over redtail's own window: drain mode, from SIGCONT until the checkpoint reached the master's offset;
   * live mode, from the first committed checkpoint past the pre-burst offset until the last.
   */
  ownRate: number;
  /** Seconds of that window. */
  ownS: number;
  drain: boolean;
  /** WAL bytes Postgres wrote per event from the burst's start until caught up (the whole server's: others' too). */
  walPerEvent: number;
}

export interface LiveOptions {
  pg: string;
  /** redis-benchmark -n per test. */
  n: number;
  /** redis-benchmark -r (0: no random keys, as in the issue: each test hits one key). */
  random: number;
  /** Directory for `node --cpu-prof` of redtail, or undefined. */
  profileDir?: string;
  /**
   * Members of each big collection: when set, the load is issue 13's big-collection one instead of the mixed one: a
   * hash, a zset and a list of this many members each, loaded before redtail starts (so they arrive in its
   * snapshot), then `n` member updates of each at full speed (`bigCollectionLoad`).
   */
  bigMembers?: number;
  /**
   * Drain mode (as bench/stream.ts): redtail is SIGSTOPped during the burst and SIGCONTed after it, so the rate is
   * redtail's own, from a backlog, and not the master's burst (which under load can take longer than redtail's apply).
   */
  drain?: boolean;
}

const TESTS = 'set,hset,lpush,sadd,zadd,incr';

/**
 * redis-benchmark's `__rand_int__` is 12 digits, zero-padded, below `-r`: the big hash's fields and the zset's
 * members are named the same way, so every update hits an existing member. Lists have no such handle (LSET rejects
 * a zero-padded index: string2ll refuses leading zeros), so the list's update is a rotation, `LMOVE big:list big:list
 * RIGHT LEFT`: one element leaves the tail and enters the head, the length stays the same.
 */
const BIG_UPDATES: string[][] = [
  ['HSET', 'big:hash', 'f__rand_int__', 'v__rand_int__'],
  ['ZINCRBY', 'big:zset', '1', 'm__rand_int__'],
  ['LMOVE', 'big:list', 'big:list', 'RIGHT', 'LEFT'],
];

const pad12 = (i: number) => String(i).padStart(12, '0');

/** The three big collections, written as RESP through `redis-cli --pipe` (1,000 members per command). */
function loadBigCollections(port: number, members: number, dir: string): void {
  const resp = (args: string[]) =>
    `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
  const parts: string[] = [];
  for (let i = 0; i < members; i += 1000) {
    const h = ['HSET', 'big:hash'];
    const z = ['ZADD', 'big:zset'];
    const l = ['RPUSH', 'big:list'];
    for (let j = i; j < Math.min(members, i + 1000); j++) {
      h.push(`f${pad12(j)}`, `v${j}`);
      z.push(String(j), `m${pad12(j)}`);
      l.push(`e${j}`);
    }
    parts.push(resp(h), resp(z), resp(l));
  }
  const file = join(dir, 'big.resp');
  writeFileSync(file, parts.join(''));
  execFileSync('sh', ['-c', `redis-cli -p ${port} --pipe < '${file}' > /dev/null`]);
}

export async function liveBench(opts: LiveOptions): Promise<LiveResult> {
  const dir = mkdtempSync(join(tmpdir(), 'redtail-bench-pglive-'));
  const schema = `bench_live_${process.pid}_${Date.now() % 1e6}`;
  const master = await startBenchRedis(dir, [
    'client-output-buffer-limit replica 0 0 0',
    'repl-backlog-size 256mb',
  ]);
  const admin = new pg.Client({ connectionString: opts.pg });
  await admin.connect();
  let redtail: ChildProcess | undefined;
  try {
    if (opts.bigMembers) loadBigCollections(master.port, opts.bigMembers, dir);
    const cfg = join(dir, 'redtail.json');
    const inFlight = process.env.REDTAIL_BENCH_INFLIGHT;
    writeFileSync(
      cfg,
      JSON.stringify({
        link: { ackIntervalMs: 10 },
        statsIntervalMs: 0,
        ...(inFlight ? { pipeline: { maxInFlightBatches: Number(inFlight) } } : {}),
      }),
    );
    const url = `${opts.pg}${opts.pg.includes('?') ? '&' : '?'}schema=${schema}`;
    // REDTAIL_BENCH_SINK_PARAMS: more of the sink's query parameters (e.g. maxGroupEvents=60000), for A/B runs of one build.
    const more = process.env.REDTAIL_BENCH_SINK_PARAMS;
    const sinkUrl = more ? `${url}&${more}` : url;
    const env = { ...process.env, REDTAIL_LOG_FORMAT: 'json' };
    const stderr: string[] = [];
    redtail = spawn(
      process.execPath,
      redtailArgv(
        [
          'run',
          '--master',
          `redis://127.0.0.1:${master.port}`,
          '--sink',
          sinkUrl,
          '--checkpoint',
          join(dir, 'checkpoint.json'),
          '--config',
          cfg,
          '--log-level',
          'info',
        ],
        opts.profileDir,
      ),
      { stdio: ['ignore', 'ignore', 'pipe'], env },
    );
    redtail.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.push(d));
    const checkpoint = async (): Promise<number> => {
      try {
        const r = await admin.query<{ offset: string }>(`SELECT "offset" FROM "${schema}".checkpoints`);
        return Number(r.rows[0]?.offset ?? -1);
      } catch {
        return -1;
      }
    };
    const masterOffset = () =>
      Number(/master_repl_offset:(\d+)/.exec(master.cli(['INFO', 'replication']))?.[1]);
    const waitCaughtUp = async (what: string, timeoutMs: number): Promise<number> => {
      const target = masterOffset();
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (redtail!.exitCode !== null) throw new Error(`redtail exited: ${stderr.join('')}`);
        if ((await checkpoint()) >= target) return performance.now();
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${stderr.join('')}`);
        await sleep(5);
      }
    };
    // The snapshot of three 1M-member collections is 3M member rows when they are stored in rows (docs/postgres.md,
    // "Big collections"); on a shared, loaded machine that takes more than a minute.
    const syncStart = performance.now();
    await waitCaughtUp('redtail to sync', 600_000);
    const syncS = (performance.now() - syncStart) / 1000;
    // redtail's pooled backends: those open now, and (read again at the end) any the pool opened during the window,
    // whose CPU then counts from 0.
    const redtailBackends = async () =>
      (
        await admin.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity WHERE application_name = 'redtail' AND datname = current_database()`,
        )
      ).rows.map((r) => r.pid);
    const backends = await redtailBackends();
    const cpu = (pids: number[]) => ({
      redtail: cpuSeconds(redtail!.pid!),
      pg: pids.reduce((a, p) => a + cpuSeconds(p), 0),
    });
    const changes0 = Number((await admin.query(`SELECT count(*) AS n FROM "${schema}".changes`)).rows[0].n);
    const wal = async () =>
      (await admin.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
    const wal0 = await wal();
    const cpu0 = cpu(backends);
    const offset0 = masterOffset();
    // The first commit past the pre-burst offset (live mode: when redtail's own window starts).
    let firstApplied = 0;
    let watching = !opts.drain;
    const watcher = (async () => {
      while (watching) {
        if ((await checkpoint()) > offset0) {
          firstApplied = performance.now();
          return;
        }
        await sleep(2);
      }
    })();
    if (opts.drain) process.kill(redtail.pid!, 'SIGSTOP');
    const t0 = performance.now();
    const rnd = opts.random > 0 ? ['-r', String(opts.random)] : [];
    const base = ['-p', String(master.port), '-P', '32', '-q', '-n', String(opts.n)];
    if (opts.bigMembers) {
      // The three updates at once, as three clients of one busy master would send them.
      const r = ['-r', String(opts.bigMembers)];
      await Promise.all(BIG_UPDATES.map((cmd) => run('redis-benchmark', [...base, ...r, ...cmd])));
    } else await run('redis-benchmark', [...base, ...rnd, '-t', TESTS]);
    const t1 = performance.now();
    if (opts.drain) {
      process.kill(redtail.pid!, 'SIGCONT');
      firstApplied = performance.now();
    }
    const t2 = await waitCaughtUp('redtail to catch up', 600_000);
    watching = false;
    await watcher;
    const cpu1 = cpu([...new Set([...backends, ...(await redtailBackends())])]);
    const walBytes = Number(
      (await admin.query<{ n: string }>('SELECT pg_wal_lsn_diff($1, $2) AS n', [await wal(), wal0])).rows[0]!
        .n,
    );
    const events =
      Number((await admin.query(`SELECT count(*) AS n FROM "${schema}".changes`)).rows[0].n) - changes0;
    const verify = await verifyMirror(master.port, url);
    const ceiling = await changesCeiling(admin, schema);
    const done = new Promise((r) => redtail!.once('exit', r));
    redtail.kill('SIGTERM');
    await Promise.race([done, sleep(30_000)]);
    const stopped = stderr
      .join('')
      .split('\n')
      .find((l) => l.includes('"msg":"stopped"'));
    const sinkStats = stopped ? JSON.stringify((JSON.parse(stopped) as { sinks?: unknown }).sinks) : '?';
    const perM = (s: number) => s / (events / 1e6);
    return {
      load: '',
      commands: opts.n * (opts.bigMembers ? BIG_UPDATES.length : TESTS.split(',').length),
      events,
      burstS: (t1 - t0) / 1000,
      syncS,
      eventsPerSec: events / ((t2 - t0) / 1000),
      catchUpS: (t2 - t1) / 1000,
      redtailCpuPerM: perM(cpu1.redtail - cpu0.redtail),
      pgCpuPerM: perM(cpu1.pg - cpu0.pg),
      verify,
      sinkStats,
      changesCeiling: ceiling,
      ownRate: events / ((t2 - (firstApplied || t0)) / 1000),
      ownS: (t2 - (firstApplied || t0)) / 1000,
      drain: opts.drain === true,
      walPerEvent: walBytes / events,
    };
  } finally {
    if (redtail && redtail.exitCode === null && redtail.signalCode === null) {
      if (opts.drain) redtail.kill('SIGCONT');
      redtail.kill('SIGKILL');
    }
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await admin.end();
    master.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The same-run reference for the change log: the run's `changes` rows, read back in binary COPY format, copied in one
 * statement and one transaction into a table like `changes` (same primary key and indexes). The sink cannot write
 * its change log faster than this, whatever it does around it.
 */
async function changesCeiling(admin: pg.Client, schema: string): Promise<number> {
  const chunks: Buffer[] = [];
  const out = admin.query(copyStreams.to(`COPY "${schema}".changes TO STDOUT (FORMAT binary)`));
  for await (const c of out) chunks.push(c as Buffer);
  await admin.query(`CREATE TABLE "${schema}".changes_ceiling (LIKE "${schema}".changes INCLUDING ALL)`);
  const t = performance.now();
  await admin.query('BEGIN');
  const into = admin.query(copyStreams.from(`COPY "${schema}".changes_ceiling FROM STDIN (FORMAT binary)`));
  await pipeline(Readable.from(chunks), into);
  await admin.query('COMMIT');
  return (into.rowCount / (performance.now() - t)) * 1000;
}

/** `redtail verify`'s verdict: its last output line and exit status. */
function verifyMirror(port: number, url: string): Promise<string> {
  return new Promise((res) => {
    const out: string[] = [];
    const p = spawn(
      process.execPath,
      [
        join(repoRoot, 'bin', 'redtail.js'),
        'verify',
        '--master',
        `redis://127.0.0.1:${port}`,
        '--postgres',
        url,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    p.stdout!.setEncoding('utf8').on('data', (d: string) => out.push(d));
    p.stderr!.setEncoding('utf8').on('data', (d: string) => out.push(d));
    p.once('exit', (code) => {
      const lines = out.join('').trim().split('\n');
      res(`exit ${code}: ${lines[lines.length - 1] ?? ''}`);
    });
  });
}
