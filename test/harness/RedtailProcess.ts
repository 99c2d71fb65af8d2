import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { schemaProblem } from './eventSchema.js';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * A run that names no checkpoint (Kafka and Postgres tests) would keep its checkpoint and its spool next to the
 * default checkpoint path, in the repository, shared by every such test and locked by whichever runs first. Such runs
 * get a checkpoint path of their own under the test run's temp dir instead (the spool sits beside it unless the
 * config says otherwise), keyed by their arguments, so a restart with the same arguments (the kill -9 tests) finds
 * what its predecessor left, as in production.
 */
function checkpointFor(args: string[], env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const named = (f: string) => args.some((a) => a === f || a.startsWith(`${f}=`));
  if (named('--checkpoint') || named('--spool') || env.REDTAIL_CHECKPOINT || env.REDTAIL_SPOOL) return {};
  const key = createHash('sha256')
    .update(JSON.stringify([args, env]))
    .digest('hex')
    .slice(0, 16);
  const dir = join(tmpdir(), `redtail-run-${key}`);
  mkdirSync(dir, { recursive: true });
  return { REDTAIL_CHECKPOINT: join(dir, 'redtail.checkpoint.json') };
}
const bin = join(repoRoot, 'bin', 'redtail.js');

/** A parsed NDJSON event as a consumer sees it. */
export type JsonEvent = Record<string, unknown> & {
  op: string;
  db: number;
  key?: unknown;
  source: { replid: string; offset: number; seq: number; txn?: string; snapshot: boolean };
};

/**
 * The real `redtail` binary in a child process, as users run it. Collects stdout events and stderr lines and can
 * be stopped gracefully or killed with SIGKILL.
 */
export class RedtailProcess {
  readonly events: JsonEvent[] = [];
  /** Events that did not match config/event.schema.json; `waitFor` and `stop` fail when there are any. */
  readonly invalid: string[] = [];
  stderr = '';
  /** Everything written to stdout, as written. */
  stdout = '';
  private partial = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(readonly proc: ChildProcess) {
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (d: string) => this.onStdout(d));
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (d: string) => {
      this.stderr += d;
    });
    this.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  }

  static start(args: string[], env: NodeJS.ProcessEnv = {}): RedtailProcess {
    const proc = spawn(process.execPath, [bin, ...args], {
      cwd: repoRoot,
      env: { ...process.env, REDTAIL_LOG_LEVEL: 'info', ...checkpointFor(args, env), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new RedtailProcess(proc);
  }

  get pid(): number {
    return this.proc.pid!;
  }

  private onStdout(data: string): void {
    this.stdout += data;
    const text = this.partial + data;
    const lines = text.split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) {
      if (!line) continue;
      const event = JSON.parse(line) as JsonEvent;
      const problem = schemaProblem(event);
      if (problem) this.invalid.push(problem);
      this.events.push(event);
    }
  }

  /** Stops consuming stdout (so the pipe fills and redtail must apply backpressure) or resumes. */
  pauseStdout(paused: boolean): void {
    if (paused) this.proc.stdout!.pause();
    else this.proc.stdout!.resume();
  }

  /** Resident set size in bytes, from /proc. */
  rss(): number {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) * 1024 : 0;
  }

  async waitFor(predicate: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      this.checkSchema();
      if (this.proc.exitCode !== null || this.proc.signalCode !== null)
        throw new Error(`redtail exited while waiting for ${what}: ${this.stderr.slice(-2000)}`);
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}; stderr: ${this.stderr.slice(-2000)}`);
      await sleep(20);
    }
  }

  /** Waits until an event whose source offset is at least `offset` arrived (or any event, with 0). */
  waitForOffset(offset: number, timeoutMs?: number): Promise<void> {
    return this.waitFor(
      () => this.events.some((e) => e.source.offset >= offset && !e.source.snapshot),
      `an event at offset ${offset}`,
      timeoutMs,
    );
  }

  /** Log lines (pino JSON on stderr) parsed. */
  logs(): Record<string, unknown>[] {
    return this.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  async stop(
    signal: NodeJS.Signals = 'SIGTERM',
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    const result = await this.exited;
    this.checkSchema();
    return result;
  }

  private checkSchema(): void {
    if (this.invalid.length > 0)
      throw new Error(
        `redtail emitted ${this.invalid.length} events outside the schema, e.g. ${this.invalid[0]}`,
      );
  }
}
