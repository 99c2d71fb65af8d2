import { RedtailError } from '../errors.js';
/**
 * The one error type the RDB parser throws for malformed input. `offset` is the absolute byte offset (from the
 * first byte of the RDB, or of the DUMP payload) where the problem was detected, so a user can inspect the file
 * with `xxd -s`.
 */
export class RdbFormatError extends RedtailError {
  override readonly name = 'RdbFormatError';

  /**
   * Not fatal: in a full sync the bytes came over the network and the link asks the master for a new snapshot, which
   * cures a transfer that went wrong; `redtail rdb FILE` stops at the first error whatever this says.
   */
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`RdbFormatError at offset ${offset}: ${reason}`, { fatal: false });
  }
}
