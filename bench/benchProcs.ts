import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

/** Helpers shared by bench:spool and bench:kafka-outage: the real redtail binary, its log lines and its RSS. */

const here = dirname(fileURLToPath(import.meta.url));
/** dist/bench/.. /.. when built; bench/.. when a test imports the source (test/sinks/stdout/hugeValues.test.ts). */
export const repoRoot =
  [resolve(here, '..', '..'), resolve(here, '..')].find((r) => existsSync(join(r, 'bin', 'redtail.js'))) ??
  resolve(here, '..', '..');

/**
 * Node's arguments to run the real binary with `args`, under `--cpu-prof` into `profileDir` when one is given, and
 * with the V8/Node flags in REDTAIL_BENCH_NODE_FLAGS (space-separated; e.g. GC flags NODE_OPTIONS does not accept).
 */
export function redtailArgv(args: string[], profileDir?: string): string[] {
  const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const flags = (process.env.REDTAIL_BENCH_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '');
  return [...flags, ...profile, join(repoRoot, 'bin', 'redtail.js'), ...args];
}

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

/** `redtail run` as users run it (bin/redtail.js on dist/), its JSON log lines parsed as they come. */
export class Redtail {
  readonly proc: ChildProcess;
  readonly lines: LogLine[] = [];
  private partial = '';
  /** Peak of VmRSS, sampled from /proc every second, and every sample. */
  peakRss = 0;
  readonly rss: number[] = [];
  private readonly sampler: NodeJS.Timeout;

  constructor(args: string[]) {
    this.proc = spawn(process.execPath, [join(repoRoot, 'bin', 'redtail.js'), 'run', ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, REDTAIL_LOG_FORMAT: 'json' },
    });
    this.proc.stderr!.setEncoding('utf8');
    this.proc.stderr!.on('data', (d: string) => {
      const parts = (this.partial + d).split('\n');
      this.partial = parts.pop()!;
      for (const l of parts)
        if (l.startsWith('{')) {
          try {
            this.lines.push(JSON.parse(l) as LogLine);
          } catch {}
        }
    });
    this.sampler = setInterval(() => {
      const r = rssOf(this.proc.pid!);
      if (r > 0) {
        this.rss.push(r);
        this.peakRss = Math.max(this.peakRss, r);
      }
    }, 1000);
  }

  get exited(): boolean {
    return this.proc.exitCode !== null || this.proc.signalCode !== null;
  }

  handshakes(): string[] {
    return this.lines.filter((l) => l.msg === 'replication handshake done').map((l) => String(l.reply));
  }

  fullSyncs(): number {
    return this.handshakes().filter((r) => r.startsWith('+FULLRESYNC')).length;
  }

  stats(): LogLine[] {
    return this.lines.filter((l) => l.msg === 'stats');
  }

  /** The largest spool.bytes any stats line reported. */
  peakSpoolBytes(): number {
    let peak = 0;
    for (const s of this.stats()) peak = Math.max(peak, Number((s.spool as { bytes?: number })?.bytes ?? 0));
    return peak;
  }

  async stop(): Promise<void> {
    clearInterval(this.sampler);
    if (this.exited) return;
    const done = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGTERM');
    await Promise.race([done, sleep(30_000)]);
    if (!this.exited) this.proc.kill('SIGKILL');
  }
}

export function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
export const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/**
 * Appends a section to bench/results.md: a title, the machine (with the load average at the start, when given, and
 * now), the versions line, and the lines the bench printed, in a code block.
 */
export function appendResultsSection(
  title: string,
  versions: string,
  lines: string[],
  loadAtStart?: string,
): void {
  const loadNow = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const load = loadAtStart
    ? `load average at start ${loadAtStart}, at end ${loadNow}`
    : `load average at end ${loadNow}`;
  const section = [
    `## ${title}`,
    '',
    `- machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}; ${load} (shared machine: figures under load are noisy)`,
    `- versions: ${versions}`,
    '',
    '```',
    ...lines,
    '```',
    '',
  ].join('\n');
  appendFileSync(join(repoRoot, 'bench', 'results.md'), `\n${section}`);
}
