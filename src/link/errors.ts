import { isFatal, RedtailError } from '../errors.js';

/** The master refused our credentials or permissions. Retrying cannot help, so this is fatal. */
export class AuthError extends RedtailError {
  override readonly name = 'AuthError';
  constructor(
    readonly master: string,
    readonly reply: string,
    hint: string,
  ) {
    super(`cannot authenticate to master ${master}: ${reply} (${hint})`, { fatal: true });
  }
}

/** The master answered the handshake in a way that retrying may fix (LOADING, NOMASTERLINK, a transient ERR). */
export class HandshakeError extends RedtailError {
  override readonly name = 'HandshakeError';
  constructor(
    readonly master: string,
    readonly step: string,
    readonly reply: string,
  ) {
    super(`master ${master} refused ${step}: ${reply}`, { fatal: false });
  }
}

/** The master went quiet for longer than the replication timeout (it PINGs every repl-ping-replica-period). */
export class ReplicationTimeoutError extends RedtailError {
  override readonly name = 'ReplicationTimeoutError';
  constructor(
    readonly master: string,
    readonly ms: number,
  ) {
    super(`no data from master ${master} for ${Math.round(ms / 1000)} s; reconnecting`, { fatal: false });
  }
}

/** Something about the master or its configuration that retrying cannot fix. */
export class FatalLinkError extends RedtailError {
  override readonly name = 'FatalLinkError';
  constructor(message: string) {
    super(message, { fatal: true });
  }
}

export { isFatal };
