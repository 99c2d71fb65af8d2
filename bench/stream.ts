import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { freePort } from '../test/harness/ports.js';

/**
 * `npm run bench:stream`: how fast redtail follows a master's command stream, beside a real redis-server replica of
 * the same master in the same run.
 *
 * A master on a free port is driven by redis-benchmark at full speed (pipelined; SET/HSET/LPUSH/SADD/ZADD/INCR with
 * small values, SET/HSET/LPUSH with 1 KB values, EXPIRE). The real binary (`bin/redtail.js run`) follows it into the
 * `null` sink (normalizes, writes nothing) and into the NDJSON file sink, in two modes:
 *   - live: redtail follows during the burst; catch-up time after it, peak lag in bytes and seconds;
 *   - drain: redtail is SIGSTOPped during the burst and SIGCONTed after it, so its rate is its own, measured while
 *     the master is idle (the replica is drained the same way, after redtail).
 * Positions come from INFO replication: the master's view of redtail's `REPLCONF ACK` (sent every 10 ms here; with
 * durable ACKs it is what the sink has committed) and the replica's own processed offset. CPU is utime+stime from
 * /proc/<pid>/stat over each one's own window. Results are appended to bench/results.md.
 *
 * Environment: BENCH_STREAM_N scales the burst (default 200000 requests per small-value test);
 * REDTAIL_BENCH_PROFILE=DIR runs redtail under `node --cpu-prof` into DIR and prints its event-loop and GC figures;
 * BENCH_STREAM_PHASES=live-null,drain-file,... picks phases; BENCH_STREAM_CONFIG adds settings to redtail's config file.
 */

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..');
const redtailBin = join(repoRoot, 'bin', 'redtail.js');
const N = Number(process.env.BENCH_STREAM_N ?? 200_000);
const PROFILE_DIR = process.env.REDTAIL_BENCH_PROFILE;
/** `off` runs redtail with `--spool off` (the link feeds the replicator directly) to see what the spool costs. */
const SPOOL = process.env.BENCH_STREAM_SPOOL === 'off' ? 'off' : 'on';
/** BENCH_STREAM_CONFIG='{"pipeline":{...}}': more of redtail's config file, to compare settings. */
const EXTRA_CONFIG = JSON.parse(process.env.BENCH_STREAM_CONFIG ?? '{}') as Record<string, unknown>;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
/** redtail reports this as its listening port, which is how the master's INFO tells it from the replica. */
const REDTAIL_PORT = 1;

type Mode = 'live' | 'drain';
type SinkKind = 'null' | 'file';

interface Sample {
  t: number;
  master: number;
  redtail: number | null;
  replica: number | null;
}

interface PhaseResult {
  mode: Mode;
  sink: SinkKind;
  commands: number;
  burstS: number;
  masterRate: number;
  redtail: Follower;
  replica: Follower;
  loopStats?: string;
}

interface Follower {
  /** Commands per second over its window (live: burst start to caught up; drain: SIGCONT to caught up). */
  rate: number;
  /** Seconds from the end of the burst (live) or from SIGCONT (drain) until it had everything. */
  catchUpS: number;
  peakLagBytes: number;
  peakLagS: number;
  cpuS: number;
  cpuPerMillion: number;
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of the man page (utime, stime); the slice starts at field 3.
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function startRedis(dir: string, port: number, extra: string[]): ChildProcess {
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, 'redis.conf');
  writeFileSync(
    conf,
    [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, 'save ""', 'appendonly no', ...extra, ''].join('\n'),
  );
  return spawn('redis-server', [conf], { stdio: 'ignore' });
}

function info(text: string, field: string): string | undefined {
  const m = new RegExp(`^${field}:(.*)$`, 'm').exec(text);
  return m?.[1]?.trim();
}

/** The offset the master last heard from redtail in REPLCONF ACK, or null when redtail is not an online replica. */
function redtailOffset(masterInfo: string): number | null {
  for (const line of masterInfo.split('\n')) {
    if (!line.startsWith('slave')) continue;
    const m = /port=(\d+),state=(\w+),offset=(\d+)/.exec(line);
    if (m && Number(m[1]) === REDTAIL_PORT && m[2] === 'online') return Number(m[3]);
  }
  return null;
}

function writeCommands(commandstats: string): number {
  let n = 0;
  for (const m of commandstats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
    if (m[1] !== 'info' && m[1] !== 'ping' && m[1] !== 'select' && m[1] !== 'replconf') n += Number(m[2]);
  return n;
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((res, rej) => {
    const p = spawn(cmd, args, { stdio: 'ignore' });
    p.once('error', rej);
    p.once('exit', (code) => (code === 0 ? res() : rej(new Error(`${cmd} exited with ${code}`))));
  });
}

/** The burst: pipelined, random keys, small and 1 KB values, and EXPIREs the master propagates as PEXPIREAT. */
async function burst(port: number): Promise<void> {
  const base = ['-p', String(port), '-P', '32', '-r', '100000', '-q'];
  await run('redis-benchmark', [...base, '-n', String(N), '-d', '16', '-t', 'set,hset,lpush,sadd,zadd,incr']);
  await run('redis-benchmark', [...base, '-n', String(N / 10), '-d', '1024', '-t', 'set,hset,lpush']);
  await run('redis-benchmark', [...base, '-n', String(N / 2), 'EXPIRE', 'key:__rand_int__', '100000']);
}

class Bench {
  private readonly dir = mkdtempSync(join(tmpdir(), 'redtail-bench-stream-'));
  private masterProc!: ChildProcess;
  private replicaProc!: ChildProcess;
  private master!: Redis;
  private replica!: Redis;
  private replicaStopped = false;
  private seq = 0;

  async start(): Promise<void> {
    const mport = await freePort();
    const rport = await freePort();
    // The replica output buffer is unlimited and the backlog big, so a SIGSTOPped follower is never cut off.
    this.masterProc = startRedis(join(this.dir, 'master'), mport, [
      'repl-diskless-sync no',
      'client-output-buffer-limit replica 0 0 0',
      'repl-backlog-size 512mb',
      'repl-timeout 600',
    ]);
    this.replicaProc = startRedis(join(this.dir, 'replica'), rport, [
      `replicaof 127.0.0.1 ${mport}`,
      'repl-timeout 600',
    ]);
    this.master = new Redis({ port: mport, lazyConnect: true, retryStrategy: (n) => (n > 100 ? null : 50) });
    this.replica = new Redis({ port: rport, lazyConnect: true, retryStrategy: (n) => (n > 100 ? null : 50) });
    await waitFor('the master', () =>
      this.master.connect().then(
        () => true,
        () => false,
      ),
    );
    await waitFor('the replica', () =>
      this.replica.connect().then(
        () => true,
        () => false,
      ),
    );
    await waitFor(
      'the replica to sync',
      async () => info(await this.replica.info('replication'), 'master_link_status') === 'up',
    );
  }

  async stop(): Promise<void> {
    this.master?.disconnect();
    this.replica?.disconnect();
    this.masterProc?.kill('SIGKILL');
    this.replicaProc?.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async sample(): Promise<Sample> {
    const mi = await this.master.info('replication');
    const replica = this.replicaStopped
      ? null
      : Number(info(await this.replica.info('replication'), 'slave_repl_offset'));
    return {
      t: performance.now(),
      master: Number(info(mi, 'master_repl_offset')),
      redtail: redtailOffset(mi),
      replica,
    };
  }

  private startRedtail(sink: SinkKind): { proc: ChildProcess; stderr: string[] } {
    const n = this.seq++;
    const cfg = join(this.dir, `redtail-${n}.json`);
    writeFileSync(
      cfg,
      JSON.stringify({
        link: { ackIntervalMs: 10, listeningPort: REDTAIL_PORT },
        statsIntervalMs: 0,
        ...EXTRA_CONFIG,
      }),
    );
    const spec = sink === 'null' ? 'null' : `file:${join(this.dir, `events-${n}.ndjson`)}`;
    const nodeArgs = PROFILE_DIR
      ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`, '--import', join(here, 'loopStats.js')]
      : [];
    const proc = spawn(
      process.execPath,
      [
        ...nodeArgs,
        redtailBin,
        'run',
        '--master',
        `redis://127.0.0.1:${this.master.options.port}`,
        '--sink',
        spec,
        '--checkpoint',
        join(this.dir, `checkpoint-${n}.json`),
        '--config',
        cfg,
        '--log-level',
        'warn',
        ...(SPOOL === 'off' ? ['--spool', 'off'] : []),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const stderr: string[] = [];
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.push(d));
    return { proc, stderr };
  }

  private async caughtUp(): Promise<void> {
    const target = Number(info(await this.master.info('replication'), 'master_repl_offset'));
    await waitFor('both followers to catch up', async () => {
      const s = await this.sample();
      return (s.redtail ?? -1) >= target && (s.replica ?? -1) >= target;
    });
  }

  async phase(mode: Mode, sink: SinkKind): Promise<PhaseResult> {
    await this.master.flushall();
    const { proc, stderr } = this.startRedtail(sink);
    const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
    try {
      await Promise.race([
        this.caughtUp(),
        exited.then((code) => {
          throw new Error(`redtail exited with ${code} before following: ${stderr.join('')}`);
        }),
      ]);
      const pid = proc.pid!;
      const replicaPid = this.replicaProc.pid!;
      const statsBefore = await this.replica.info('commandstats');
      const cpu0 = { redtail: cpuSeconds(pid), replica: cpuSeconds(replicaPid) };
      if (mode === 'drain') {
        process.kill(pid, 'SIGSTOP');
        process.kill(replicaPid, 'SIGSTOP');
        this.replicaStopped = true;
      }
      const samples: Sample[] = [];
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          samples.push(await this.sample());
          await sleep(5);
        }
      })();
      const t0 = performance.now();
      await burst(this.master.options.port!);
      const t1 = performance.now();
      const target = Number(info(await this.master.info('replication'), 'master_repl_offset'));

      const follow = async (who: 'redtail' | 'replica', from: number, cpuPid: number, cpuStart: number) => {
        let done: Sample | undefined;
        await waitFor(`${who} to catch up`, async () => {
          done = samples.find((s) => s.t >= from && (s[who] ?? -1) >= target);
          return done !== undefined;
        });
        return { at: done!.t, cpu: cpuSeconds(cpuPid) - cpuStart };
      };
      let rt: { at: number; cpu: number };
      let rp: { at: number; cpu: number };
      let tContRedtail = t0;
      let tContReplica = t0;
      if (mode === 'drain') {
        tContRedtail = performance.now();
        process.kill(pid, 'SIGCONT');
        rt = await follow('redtail', tContRedtail, pid, cpu0.redtail);
        tContReplica = performance.now();
        process.kill(replicaPid, 'SIGCONT');
        this.replicaStopped = false;
        rp = await follow('replica', tContReplica, replicaPid, cpu0.replica);
      } else {
        [rt, rp] = await Promise.all([
          follow('redtail', t0, pid, cpu0.redtail),
          follow('replica', t0, replicaPid, cpu0.replica),
        ]);
      }
      sampling = false;
      await sampler;
      const commands = writeCommands(await this.replica.info('commandstats')) - writeCommands(statsBefore);
      const figures = (
        who: 'redtail' | 'replica',
        end: { at: number; cpu: number },
        from: number,
      ): Follower => {
        const lag = peakLag(samples, who, from, end.at);
        return {
          rate: commands / ((end.at - from) / 1000),
          catchUpS: (end.at - (mode === 'live' ? t1 : from)) / 1000,
          peakLagBytes: lag.bytes,
          peakLagS: lag.seconds,
          cpuS: end.cpu,
          cpuPerMillion: end.cpu / (commands / 1e6),
        };
      };
      proc.kill('SIGTERM');
      const code = await Promise.race([exited, sleep(60_000).then(() => 'timeout' as const)]);
      if (code !== 0) throw new Error(`redtail stopped with ${code}: ${stderr.join('')}`);
      const loopStats = stderr
        .join('')
        .split('\n')
        .find((l) => l.includes('"loopStats"'));
      return {
        mode,
        sink,
        commands,
        burstS: (t1 - t0) / 1000,
        masterRate: commands / ((t1 - t0) / 1000),
        redtail: figures('redtail', rt, tContRedtail),
        replica: figures('replica', rp, tContReplica),
        ...(loopStats ? { loopStats } : {}),
      };
    } finally {
      if (proc.exitCode === null && proc.signalCode === null) {
        process.kill(proc.pid!, 'SIGCONT');
        proc.kill('SIGKILL');
      }
      if (this.replicaStopped) {
        process.kill(this.replicaProc.pid!, 'SIGCONT');
        this.replicaStopped = false;
      }
      rmSync(join(this.dir, `events-${this.seq - 1}.ndjson`), { force: true });
    }
  }
}

/** Peak lag behind the master in bytes, and in seconds: how long ago the master was where the follower is. */
function peakLag(samples: Sample[], who: 'redtail' | 'replica', from: number, to: number) {
  let bytes = 0;
  let seconds = 0;
  for (const s of samples) {
    const pos = s[who];
    if (s.t < from || s.t > to || pos === null) continue;
    bytes = Math.max(bytes, s.master - pos);
    if (pos < s.master) {
      const reached = samples.find((m) => m.master >= pos);
      if (reached) seconds = Math.max(seconds, (s.t - reached.t) / 1000);
    }
  }
  return { bytes, seconds };
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const f2 = (n: number) => n.toFixed(2);

function table(results: PhaseResult[]): string {
  const rows = [
    '| phase | sink | commands | master cmd/s | redtail cmd/s | replica cmd/s | ratio | redtail catch-up s | replica catch-up s | redtail peak lag | replica peak lag | redtail CPU s/M | replica CPU s/M | CPU ratio |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    const lag = (x: Follower) =>
      r.mode === 'live' ? `${(x.peakLagBytes / 1e6).toFixed(1)} MB / ${f2(x.peakLagS)} s` : '(paused)';
    rows.push(
      `| ${r.mode} | ${r.sink} | ${fmt(r.commands)} | ${fmt(r.masterRate)} | ${fmt(r.redtail.rate)} | ${fmt(r.replica.rate)} | ${f2(r.redtail.rate / r.replica.rate)} | ${f2(r.redtail.catchUpS)} | ${f2(r.replica.catchUpS)} | ${lag(r.redtail)} | ${lag(r.replica)} | ${f2(r.redtail.cpuPerMillion)} | ${f2(r.replica.cpuPerMillion)} | ${f2(r.redtail.cpuPerMillion / r.replica.cpuPerMillion)} |`,
    );
  }
  return rows.join('\n');
}

async function main(): Promise<void> {
  const phases = (process.env.BENCH_STREAM_PHASES ?? 'live-null,live-file,drain-null,drain-file')
    .split(',')
    .map((p) => p.split('-') as [Mode, SinkKind]);
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const bench = new Bench();
  const results: PhaseResult[] = [];
  try {
    await bench.start();
    for (const [mode, sink] of phases) {
      process.stdout.write(`${mode} ${sink}: `);
      const r = await bench.phase(mode, sink);
      results.push(r);
      process.stdout.write(
        `${fmt(r.commands)} commands, master ${fmt(r.masterRate)}/s; redtail ${fmt(r.redtail.rate)}/s, caught up ${f2(r.redtail.catchUpS)} s ${mode === 'live' ? 'after the burst' : 'after SIGCONT'}, ${f2(r.redtail.cpuPerMillion)} CPU s/M; replica ${fmt(r.replica.rate)}/s, ${f2(r.replica.cpuPerMillion)} CPU s/M\n`,
      );
      if (r.loopStats) process.stdout.write(`  ${r.loopStats}\n`);
    }
  } finally {
    await bench.stop();
  }
  const out = table(results);
  process.stdout.write(`\n${out}\n`);
  const redisVersion = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();
  const section = [
    `## bench:stream ${new Date().toISOString()}`,
    '',
    `- machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}; load average at start ${load}, at end ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} (shared machine: figures under load are noisy)`,
    `- versions: Node ${process.version}, ${redisVersion}, redis-benchmark -P 32 -r 100000, N=${N}, spool ${SPOOL}`,
    '- live: redtail and the replica follow during the burst; drain: both SIGSTOPped during it, then redtail SIGCONTed and drained alone, then the replica',
    '',
    out,
    '',
  ].join('\n');
  appendFileSync(join(repoRoot, 'bench', 'results.md'), `\n${section}`);
}

await main();
