import { constants } from 'node:os';
import type { Logger } from '../observe/logger.js';

export interface ShutdownOptions {
  logger: Logger;
  /** How long a stop may take to drain and commit before redtail gives up and exits 1. */
  timeoutMs: number;
  /** What is received but not committed, and where the checkpoint stands: for the lines of a forced exit. */
  unflushed: () => string;
  /** Ends the process; process.exit except in tests. */
  exit?: (code: number) => never;
  signals?: NodeJS.Signals[];
}

/**
 * The stop sequence of `redtail run`. The first SIGTERM or SIGINT asks for a clean stop (drain the sinks, commit,
 * exit 0) and arms a deadline of `timeoutMs`; a stop that is not done by then (a sink that cannot be reached, a
 * locked table) exits 1 with a line saying what was not flushed and that the next start resumes from the
 * checkpoint, so nothing is lost. A second signal exits at once with the same line. Forced exits skip the sinks'
 * close on purpose: a checkpoint never moves past what is committed, so cutting a write short is always safe.
 */
export class Shutdown {
  private requestedResolve: () => void = () => {};
  /** Resolves at the first signal. */
  readonly requested: Promise<void> = new Promise((resolve) => {
    this.requestedResolve = resolve;
  });
  private signal: NodeJS.Signals | null = null;
  private deadline: NodeJS.Timeout | null = null;
  /** What the stop is waiting for, for the timeout line ("draining the sinks", "opening the sinks"). */
  phase = 'starting';
  private readonly onSignal = (sig: NodeJS.Signals) => this.received(sig);

  constructor(private readonly opts: ShutdownOptions) {}

  get isRequested(): boolean {
    return this.signal !== null;
  }

  install(): this {
    for (const s of this.opts.signals ?? ['SIGINT', 'SIGTERM']) process.on(s, this.onSignal);
    return this;
  }

  /** Removes the handlers and the deadline once the stop is done (or redtail ends for another reason). */
  dispose(): void {
    for (const s of this.opts.signals ?? ['SIGINT', 'SIGTERM']) process.off(s, this.onSignal);
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = null;
  }

  private received(sig: NodeJS.Signals): void {
    const { logger } = this.opts;
    if (this.signal !== null) {
      const line = `second ${sig}: exiting at once while ${this.phase}; not flushed: ${this.opts.unflushed()}`;
      this.forceExit(128 + (constants.signals[sig] ?? 15), line);
    }
    this.signal = sig;
    logger.info(
      { signal: sig, timeoutMs: this.opts.timeoutMs },
      'stopping: flushing sinks and writing the checkpoint (a second signal exits at once)',
    );
    this.deadline = setTimeout(() => {
      this.forceExit(
        1,
        `the stop did not finish within shutdownTimeoutMs (${this.opts.timeoutMs} ms) while ${this.phase}; not flushed: ${this.opts.unflushed()}`,
      );
    }, this.opts.timeoutMs);
    this.requestedResolve();
  }

  private forceExit(code: number, line: string): never {
    const full = `${line}. Nothing past the last checkpoint is lost: the next start resumes from it`;
    this.opts.logger.error({ exitCode: code }, full);
    process.stderr.write(`redtail: ${full}\n`);
    return (this.opts.exit ?? process.exit)(code);
  }
}

/** A stop requested before every sink was open: nothing was streamed, nothing needs flushing. */
export class StoppedWhileOpening extends Error {
  override readonly name = 'StoppedWhileOpening';
  constructor(sinks: string[]) {
    super(
      `stopped while opening the sinks (${sinks.join(', ')}), before anything was streamed: nothing past the last checkpoint is lost, the next start resumes from it`,
    );
  }
}
