/** The master refused our credentials or permissions. Retrying cannot help, so this is fatal. */
export class AuthError extends Error {
  override readonly name = 'AuthError';
  readonly fatal = true;
  constructor(
    readonly master: string,
    readonly reply: string,
    hint: string,
  ) {
    super(`cannot authenticate to master ${master}: ${reply} (${hint})`);
  }
}

/** The master answered the handshake in a way that retrying may fix (LOADING, NOMASTERLINK, a transient ERR). */
export class HandshakeError extends Error {
  override readonly name = 'HandshakeError';
  constructor(
    readonly master: string,
    readonly step: string,
    readonly reply: string,
  ) {
    super(`master ${master} refused ${step}: ${reply}`);
  }
}

/** The master went quiet for longer than the replication timeout (it PINGs every repl-ping-replica-period). */
export class ReplicationTimeoutError extends Error {
  override readonly name = 'ReplicationTimeoutError';
  constructor(
    readonly master: string,
    readonly ms: number,
  ) {
    super(`no data from master ${master} for ${Math.round(ms / 1000)} s; reconnecting`);
  }
}

/** Something about the master or its configuration that retrying cannot fix. */
export class FatalLinkError extends Error {
  override readonly name = 'FatalLinkError';
  readonly fatal = true;
}

export function isFatal(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { fatal?: unknown }).fatal === true;
}
