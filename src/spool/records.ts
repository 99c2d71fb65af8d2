/*
 * The spool's on-disk format: a directory of segment files `<16-digit sequence>.seg`, each a run of records.
 *
 *   segment := record*
 *   record  := kind:u8 length:u32be offset:f64be crc:u32be payload[length]
 *     crc    = CRC-32 (zlib's) of the first 13 header bytes, then of the payload; a record whose crc does not match
 *              is torn (at the end of the last segment, after a crash) or corrupt (anywhere else)
 *     offset = the replication offset the record ends at (FULLRESYNC, CONTINUE: the offset they announce)
 *
 * Kinds, in the order a master produces them:
 *   FULLRESYNC    payload = replid (latin1)   `+FULLRESYNC <replid> <offset>`: a snapshot as of `offset` follows
 *   SNAPSHOT      payload = RDB bytes         as received (the `$EOF:` mark already removed)
 *   SNAPSHOT_END  payload = empty             the snapshot is complete; the stream follows from `offset`
 *   CONTINUE      payload = replid (latin1)   `+CONTINUE`: the stream continues after `offset` (replid new after a
 *                                             failover, the same otherwise)
 *   COMMANDS      payload = whole commands    raw RESP of the command stream, ending at `offset`
 * A segment never ends inside a record, and a COMMANDS record never ends inside a command, so truncating the spool to
 * its last good record leaves a position a master can continue from with PSYNC. A segment that begins in the command
 * stream begins with a CONTINUE of the history it goes on with (same replid, the offset it starts at), so that what
 * is left once earlier segments are released still says whose offsets its commands carry.
 */
import { crc32 } from 'node:zlib';

export enum Kind {
  FullResync = 1,
  Snapshot = 2,
  SnapshotEnd = 3,
  Continue = 4,
  Commands = 5,
}

export const HEADER_BYTES = 17;

export interface RecordHeader {
  kind: Kind;
  length: number;
  offset: number;
  crc: number;
}

export function encodeHeader(kind: Kind, payload: Buffer, offset: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h.writeUInt8(kind, 0);
  h.writeUInt32BE(payload.length, 1);
  h.writeDoubleBE(offset, 5);
  h.writeUInt32BE(crc32(payload, crc32(h.subarray(0, 13))), 13);
  return h;
}

/** The header of a COMMANDS record of `length` bytes written in parts; `payloadCrc` continues the header's CRC. */
export function commandsHeader(length: number, offset: number, payloadCrc: (seed: number) => number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h.writeUInt8(Kind.Commands, 0);
  h.writeUInt32BE(length, 1);
  h.writeDoubleBE(offset, 5);
  h.writeUInt32BE(payloadCrc(crc32(h.subarray(0, 13))), 13);
  return h;
}

/** Null when the bytes cannot be a header (unknown kind); the crc is checked against the payload separately. */
export function decodeHeader(buf: Buffer, at = 0): RecordHeader | null {
  const kind = buf.readUInt8(at);
  if (kind < Kind.FullResync || kind > Kind.Commands) return null;
  const offset = buf.readDoubleBE(at + 5);
  if (!Number.isSafeInteger(offset) || offset < 0) return null;
  return { kind, length: buf.readUInt32BE(at + 1), offset, crc: buf.readUInt32BE(at + 13) };
}

export function checksumOk(header: Buffer, headerAt: number, payload: Buffer, expected: number): boolean {
  return crc32(payload, crc32(header.subarray(headerAt, headerAt + 13))) === expected;
}

export function kindName(kind: Kind): string {
  return ['?', 'FULLRESYNC', 'SNAPSHOT', 'SNAPSHOT_END', 'CONTINUE', 'COMMANDS'][kind] ?? '?';
}
