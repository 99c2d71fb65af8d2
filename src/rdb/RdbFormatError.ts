/**
 * The one error type the RDB parser throws for malformed input. `offset` is the absolute byte offset (from the
 * first byte of the RDB, or of the DUMP payload) where the problem was detected, so a user can inspect the file
 * with `xxd -s`.
 */
export class RdbFormatError extends Error {
  override readonly name = 'RdbFormatError';

  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`RdbFormatError at offset ${offset}: ${reason}`);
  }
}
