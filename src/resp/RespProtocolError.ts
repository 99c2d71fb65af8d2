import { RedtailError } from '../errors.js';
/** The replication stream contained something a master never sends; `offset` is the stream byte where it starts. */
export class RespProtocolError extends RedtailError {
  override readonly name = 'RespProtocolError';
  /** Not fatal: the link drops the connection and resumes with PSYNC from the last offset it applied. */
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`RespProtocolError at offset ${offset}: ${reason}`, { fatal: false });
  }
}
