/**
 * `npm run bench:verify`: `redtail verify` at scale. Loads the mixed RDB of bench:rdb (2.25M keys: strings, small
 * and 300-member hashes, lists, sets, zsets, streams; bench/rdbFixture.ts) into a master, mirrors it into Postgres
 * with `redtail run` (snapshot), then times, in the same run and one after the other:
 *   - `redtail verify` (the real binary, its own process, under /usr/bin/time for CPU and peak RSS),
 *   - `redis-cli --scan` (only listing the keys: the master's side of any full comparison),
 *   - `psql -c "COPY (SELECT key, type, value, expire_at FROM keys) TO STDOUT"` (only reading the mirror).
 * and prints keys/s with the ratios, and the load average (the machine is shared).
 *
 * The mirroring itself is timed too (issue 13's snapshot criterion: ≥ 0.8× a plain `COPY` of the same rows in the
 * same run): the sink's snapshot phase runs from redtail's "loading the snapshot" log line to the commit that ends
 * it (`sink_state.snapshot_loading` false, the checkpoint at the master's offset); the ceiling is the mirror's own
 * `keys` rows, copied out in binary and loaded by one `psql \copy ... (FORMAT binary)` in one transaction into a
 * table `LIKE keys INCLUDING ALL` (so it maintains the same indexes row by row, where the sink builds its
 * secondary indexes once at the end of the load).
 *
 * Env: REDTAIL_BENCH_PG (default postgres://postgres@127.0.0.1:5432/test). To time verify against a mirror that
 * already exists: BENCH_VERIFY_MASTER=redis://host:port BENCH_VERIFY_SCHEMA=name (nothing is started or dropped).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, copyFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { fmt, Redtail, repoRoot } from './benchProcs.js';
import { mixedRdb, startBenchRedis } from './rdbFixture.js';

const PG = process.env.REDTAIL_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

async function sql<T extends pg.QueryResultRow>(q: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: PG });
  await c.connect();
  try {
    return (await c.query<T>(q)).rows;
  } finally {
    await c.end();
  }
}

interface Timed {
  seconds: number;
  cpuSeconds: number;
  peakRssMB: number;
  stdout: string;
  status: number | null;
}

/** Runs a command under /usr/bin/time: wall seconds, user+system CPU seconds, peak RSS. */
function timed(cmd: string, args: string[], shell = false): Timed {
  const r = shell
    ? spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', 'sh', '-c', cmd], {
        encoding: 'utf8',
        maxBuffer: 1 << 26,
      })
    : spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', cmd, ...args], {
        encoding: 'utf8',
        maxBuffer: 1 << 26,
      });
  const last = r.stderr.trim().split('\n').pop() ?? '';
  const [e, u, s, m] = last.split(' ').map(Number);
  return {
    seconds: e ?? Number.NaN,
    cpuSeconds: (u ?? 0) + (s ?? 0),
    peakRssMB: Math.round((m ?? 0) / 1024),
    stdout: r.stdout,
    status: r.status,
  };
}

/** CPU seconds (user + system) a process has used so far, from /proc (0 where there is no /proc). */
function cpuOf(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    // Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the command name, in clock ticks.
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

interface Mirrored {
  /** From redtail's start to the mirror holding the snapshot and the stream up to the master's offset. */
  seconds: number;
  /** From redtail's "loading the snapshot" log line to that moment: the sink's snapshot phase. */
  snapshotSeconds: number;
}

async function mirrorCaughtUp(schema: string, port: number, redtail: Redtail): Promise<Mirrored> {
  const t0 = Date.now();
  let loadingSince: number | null = null;
  for (;;) {
    if (redtail.exited) throw new Error(`redtail exited: ${JSON.stringify(redtail.lines.slice(-3))}`);
    loadingSince ??= snapshotStart(redtail);
    const offset = Number(
      /master_repl_offset:(\d+)/.exec(
        execFileSync('redis-cli', ['-p', String(port), 'INFO', 'replication'], { encoding: 'utf8' }),
      )?.[1],
    );
    try {
      const st = await sql<{ loading: boolean; offset: string | null }>(
        `SELECT s.snapshot_loading AS loading, c."offset" FROM "${schema}".sink_state s LEFT JOIN "${schema}".checkpoints c ON true`,
      );
      if (st[0] && !st[0].loading && Number(st[0].offset ?? -1) >= offset) {
        const now = Date.now();
        return { seconds: (now - t0) / 1000, snapshotSeconds: (now - (loadingSince ?? t0)) / 1000 };
      }
    } catch {
      // The sink has not created its tables yet.
    }
    if (Date.now() - t0 > 3_600_000) throw new Error('the mirror did not catch up within an hour');
    await sleep(250);
  }
}

/** When redtail logged the start of the snapshot (pino's `time`, ms since the epoch), or null before it has. */
function snapshotStart(redtail: Redtail): number | null {
  const line = redtail.lines.find((l) => l.msg === 'full resynchronization: loading the snapshot');
  if (!line) return null;
  return typeof line.time === 'number' ? line.time : Date.now();
}

/** The plain-COPY ceiling of the mirror's own rows (see the comment at the top); drops its table afterwards. */
function copyCeiling(schema: string, dir: string): Timed & { bytes: number } {
  const file = join(dir, 'keys.copy');
  const psql = (cmd: string) => execFileSync('psql', [PG, '-v', 'ON_ERROR_STOP=1', '-Atqc', cmd]);
  psql(`\\copy (SELECT * FROM "${schema}".keys) TO '${file}' WITH (FORMAT binary)`);
  psql(`CREATE TABLE "${schema}".copy_ceiling (LIKE "${schema}".keys INCLUDING ALL)`);
  try {
    const t = timed('psql', [
      PG,
      '-1',
      '-v',
      'ON_ERROR_STOP=1',
      '-qc',
      `\\copy "${schema}".copy_ceiling FROM '${file}' WITH (FORMAT binary)`,
    ]);
    if (t.status !== 0) throw new Error(`the COPY ceiling failed (psql exit ${t.status})`);
    return { ...t, bytes: statSync(file).size };
  } finally {
    psql(`DROP TABLE "${schema}".copy_ceiling`);
    rmSync(file, { force: true });
  }
}

function snapshotComparison(m: Mirrored, ceiling: Timed & { bytes: number }, loadNow: string): string[] {
  return [
    `snapshot into Postgres (load average ${loadNow} after it): redtail's sink phase ${m.snapshotSeconds.toFixed(1)} s (${m.seconds.toFixed(1)} s from redtail's start, BGSAVE and transfer included); plain binary COPY of the same rows (${fmt(Math.round(ceiling.bytes / 1048576))} MB) into a table LIKE keys INCLUDING ALL ${ceiling.seconds.toFixed(1)} s; ratio COPY / sink phase ${(ceiling.seconds / m.snapshotSeconds).toFixed(2)} (issue 13: ≥ 0.8), COPY / whole ${(ceiling.seconds / m.seconds).toFixed(2)}`,
  ];
}

async function main(): Promise<void> {
  const loadAtStart = load();
  let master = process.env.BENCH_VERIFY_MASTER;
  let schema = process.env.BENCH_VERIFY_SCHEMA;
  const cleanup: Array<() => Promise<void> | void> = [];
  let masterPid: number | undefined;
  let snapshotLines: string[] = [];
  try {
    if (!master || !schema) {
      const dir = mkdtempSync(join(tmpdir(), 'redtail-bench-verify-'));
      cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
      copyFileSync(await mixedRdb(), join(dir, 'dump.rdb'));
      const redis = await startBenchRedis(dir, ['dbfilename dump.rdb']);
      cleanup.unshift(() => {
        redis.proc.kill('SIGKILL');
      });
      while (/loading:1/.test(redis.cli(['INFO', 'persistence']))) await sleep(200);
      master = `redis://127.0.0.1:${redis.port}`;
      schema = `bench_verify_${randomBytes(4).toString('hex')}`;
      const s = schema;
      cleanup.push(async () => {
        await sql(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
      });
      process.stdout.write(`master ${master}; mirroring into schema ${schema} with redtail run...\n`);
      const redtail = new Redtail([
        '--master',
        master,
        '--sink',
        `${PG}?schema=${schema}`,
        '--checkpoint',
        join(dir, 'cp.json'),
      ]);
      cleanup.unshift(() => redtail.stop());
      const mirrored = await mirrorCaughtUp(schema, redis.port, redtail);
      process.stdout.write(`mirror caught up after ${mirrored.seconds.toFixed(1)} s\n`);
      snapshotLines = snapshotComparison(mirrored, copyCeiling(schema, dir), load());
    }
    const port = new URL(master).port;
    // The master's pid (INFO server), for its CPU time: also when timing an existing pair.
    masterPid = Number(
      /process_id:(\d+)/.exec(
        execFileSync('redis-cli', ['-p', port, 'INFO', 'server'], { encoding: 'utf8' }),
      )?.[1],
    );
    const keys = Number(
      /keys=(\d+)/.exec(
        execFileSync('redis-cli', ['-p', port, 'INFO', 'keyspace'], { encoding: 'utf8' }),
      )?.[1],
    );
    const loadBefore = load();
    const masterCpu0 = cpuOf(masterPid);
    const verify = timed(process.execPath, [
      join(repoRoot, 'bin', 'redtail.js'),
      'verify',
      '--master',
      master,
      '--postgres',
      `${PG}?schema=${schema}`,
    ]);
    const loadAfter = load();
    const masterCpu = cpuOf(masterPid) - masterCpu0;
    const summary = verify.stdout.trim().split('\n').pop() ?? '';
    const scan = timed(`redis-cli -p ${port} --scan | wc -l`, [], true);
    const copy = timed(
      `psql '${PG}' -Atqc 'COPY (SELECT key, type, value, expire_at FROM "${schema}".keys) TO STDOUT' | wc -c`,
      [],
      true,
    );
    const rows: Array<[string, Timed]> = [
      ['redtail verify', verify],
      ['redis-cli --scan | wc -l', scan],
      ['psql COPY keys TO STDOUT | wc -c', copy],
    ];
    const lines = [
      `${'what'.padEnd(34)}${'seconds'.padStart(9)}${'keys/s'.padStart(11)}${'CPU s'.padStart(8)}${'peak RSS MB'.padStart(13)}${'verify / this'.padStart(15)}`,
    ];
    for (const [name, t] of rows)
      lines.push(
        `${name.padEnd(34)}${t.seconds.toFixed(2).padStart(9)}${fmt(Math.round(keys / t.seconds)).padStart(11)}${t.cpuSeconds.toFixed(1).padStart(8)}${String(t.peakRssMB).padStart(13)}${(verify.seconds / t.seconds).toFixed(2).padStart(15)}`,
      );
    const out = [
      `keys: ${fmt(keys)}; verify said: ${summary} (exit ${verify.status})`,
      `load average: at start ${loadAtStart}, before verify ${loadBefore}, after verify ${loadAfter}, at end ${load()}`,
      masterPid
        ? `CPU per key during verify: redtail ${((verify.cpuSeconds / keys) * 1e6).toFixed(1)} µs, the master (redis-server) ${((masterCpu / keys) * 1e6).toFixed(1)} µs (Postgres not counted)`
        : `CPU per key during verify: redtail ${((verify.cpuSeconds / keys) * 1e6).toFixed(1)} µs`,
      ...lines,
      ...snapshotLines,
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    appendFileSync(
      join(repoRoot, 'bench', 'results.md'),
      [
        '',
        `## bench:verify ${new Date().toISOString()}`,
        '',
        `- machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}; Node ${process.version}; ${execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim()}`,
        `- the mixed RDB of bench:rdb loaded into a master and mirrored by \`redtail run\`; "verify / this" is verify's time over the reference's`,
        '',
        '```',
        ...out,
        '```',
        '',
      ].join('\n'),
    );
    if (verify.status !== 0) process.exitCode = 1;
  } finally {
    for (const f of cleanup) await f();
  }
}

await main();
