/** The replication stream contained something a master never sends; `offset` is the stream byte where it starts. */
export class RespProtocolError extends Error {
  override readonly name = 'RespProtocolError';
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`RespProtocolError at offset ${offset}: ${reason}`);
  }
}
