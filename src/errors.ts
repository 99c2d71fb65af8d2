/**
 * The root of redtail's own errors. `fatal` says whether retrying can help: a fatal error ends the process with its
 * message (a wrong password, a corrupt file, a misconfiguration), a non-fatal one is retried with backoff (a dropped
 * connection, a master still loading). Errors thrown by libraries are neither; each call site decides.
 */
export class RedtailError extends Error {
  readonly fatal: boolean;
  constructor(message: string, opts: { fatal: boolean; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.fatal = opts.fatal;
  }

  get retriable(): boolean {
    return !this.fatal;
  }
}

export function isFatal(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { fatal?: unknown }).fatal === true;
}
