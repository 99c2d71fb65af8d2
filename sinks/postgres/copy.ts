import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { PoolClient } from 'pg';
import copyStreams from 'pg-copy-streams';
import { RedtailError } from '../../src/errors.js';

/**
 * Column types the binary `COPY` encoder writes. Binary format rather than text or CSV: every field is a length and
 * raw bytes, so no byte of a key or value (NUL, backslash, tab, newline, quotes, invalid UTF-8) is ever escaped or
 * interpreted, and bytea travels at its own size instead of as hex.
 */
export type CopyType = 'int4' | 'int8' | 'float8' | 'bytea' | 'text' | 'jsonb' | 'timestamptz' | 'text[]';
export type CopyValue = number | Buffer | string | readonly string[] | null;
/** pg_type oid of text: the element type a binary text[] names (array_recv checks it). */
const TEXT_OID = 25;

/** `PGCOPY\n\377\r\n\0`, flags 0, header extension length 0. */
const HEADER = Buffer.from([
  0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
]);
const TRAILER = Buffer.from([0xff, 0xff]);
const JSONB_VERSION = 1;
/** timestamptz travels as int64 microseconds since 2000-01-01 UTC. */
const PG_EPOCH_MS = 946_684_800_000;
/** Size of the buffers the encoder yields (each becomes one CopyData message). */
const CHUNK = 1 << 20;
/**
 * Encoded rows are handed on every 64 KB: Postgres starts storing the first rows of a batch while the rest are
 * still being encoded (with 1 MB, a batch of a few thousand rows went out only once fully encoded, and the two sides
 * took turns instead of overlapping).
 */
const FLUSH = 64 << 10;

/** A row the binary encoder cannot write (a field of the wrong type, NUL in text): the same batch fails again. */
export class CopyEncodeError extends RedtailError {
  override readonly name = 'CopyEncodeError';
  constructor(message: string) {
    super(message, { fatal: true });
  }
}

function fail(msg: string): never {
  throw new CopyEncodeError(msg);
}

/**
 * Encodes rows in PostgreSQL's binary COPY format (https://www.postgresql.org/docs/current/sql-copy.html, "Binary
 * Format"): header, per row an int16 field count and per field an int32 length (-1 for NULL) and the type's binary
 * representation, then an int16 -1 trailer. Representations: int4/int8 big-endian; timestamptz (given in ms since the
 * Unix epoch) int64 microseconds since 2000-01-01 UTC; bytea the bytes; text UTF-8 (the
 * connection's client_encoding, UTF8 for node-postgres), which Postgres forbids to contain NUL; jsonb a version byte
 * (1) followed by the JSON text. Yields buffers of 64 KB to 1 MB (a larger field is split across several).
 */
export function* encodeCopyBinary(
  types: readonly CopyType[],
  rows: Iterable<readonly CopyValue[]>,
): Generator<Buffer> {
  let buf = Buffer.allocUnsafe(FLUSH);
  let pos = 0;
  HEADER.copy(buf, 0);
  pos = HEADER.length;
  const ready: Buffer[] = [];
  let readyBytes = 0;
  /** Makes room for `n` more bytes, moving the filled part of the current buffer to `ready`. */
  const room = (n: number): void => {
    if (pos + n <= buf.length) return;
    if (pos > 0) {
      ready.push(buf.subarray(0, pos));
      readyBytes += pos;
    }
    buf = Buffer.allocUnsafe(Math.max(FLUSH, n));
    pos = 0;
  };
  const int32 = (v: number): void => {
    room(4);
    buf.writeInt32BE(v, pos);
    pos += 4;
  };
  /** int64 big-endian from a safe integer, without a BigInt (this runs for every row). */
  const int64 = (n: number): void => {
    const hi = Math.floor(n / 0x1_0000_0000);
    room(12);
    buf.writeInt32BE(8, pos);
    buf.writeInt32BE(hi, pos + 4);
    buf.writeUInt32BE(n - hi * 0x1_0000_0000, pos + 8);
    pos += 12;
  };
  /**
   * A one-dimensional text[] without NULLs in array_send's layout: ndim, has-nulls flag, element type oid, then per
   * dimension its length and lower bound (1), then each element as a length and its UTF-8 bytes.
   */
  const textArray = (a: readonly string[], col: number): void => {
    const bytes = a.map((x) => {
      if (typeof x !== 'string' || x.includes('\0')) fail(`text[] column ${col}: an element is not text`);
      return Buffer.from(x, 'utf8');
    });
    const header = a.length === 0 ? 12 : 20;
    const len = header + bytes.reduce((n, x) => n + 4 + x.length, 0);
    room(4 + len);
    buf.writeInt32BE(len, pos);
    buf.writeInt32BE(a.length === 0 ? 0 : 1, pos + 4);
    buf.writeInt32BE(0, pos + 8);
    buf.writeInt32BE(TEXT_OID, pos + 12);
    pos += 16;
    if (a.length > 0) {
      buf.writeInt32BE(a.length, pos);
      buf.writeInt32BE(1, pos + 4);
      pos += 8;
    }
    for (const x of bytes) {
      buf.writeInt32BE(x.length, pos);
      x.copy(buf, pos + 4);
      pos += 4 + x.length;
    }
  };
  for (const row of rows) {
    if (row.length !== types.length)
      fail(`a row has ${row.length} fields, the COPY has ${types.length} columns`);
    room(2);
    buf.writeInt16BE(types.length, pos);
    pos += 2;
    for (let i = 0; i < types.length; i++) {
      const v = row[i];
      const t = types[i]!;
      if (v === null || v === undefined) {
        int32(-1);
        continue;
      }
      switch (t) {
        case 'int4':
          if (typeof v !== 'number' || !Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff)
            fail(`int4 column ${i}: ${String(v)} is not a 32-bit integer`);
          int32(4);
          int32(v as number);
          break;
        case 'int8':
          if (typeof v !== 'number' || !Number.isSafeInteger(v))
            fail(`int8 column ${i}: ${String(v)} is not a safe integer`);
          int64(v as number);
          break;
        case 'float8':
          // IEEE 754 big-endian (float8send); infinities are valid zset scores, NaN never is.
          if (typeof v !== 'number' || Number.isNaN(v))
            fail(`float8 column ${i}: ${String(v)} is not a number`);
          room(12);
          buf.writeInt32BE(8, pos);
          buf.writeDoubleBE(v as number, pos + 4);
          pos += 12;
          break;
        case 'timestamptz': {
          if (typeof v !== 'number' || !Number.isSafeInteger(v))
            fail(`timestamptz column ${i}: ${String(v)} is not a time in ms`);
          const us = ((v as number) - PG_EPOCH_MS) * 1000;
          if (Number.isSafeInteger(us)) int64(us);
          else {
            // |ms| < 2^53 keeps the product within int64; Postgres itself rejects times outside its range.
            room(12);
            buf.writeInt32BE(8, pos);
            buf.writeBigInt64BE(BigInt((v as number) - PG_EPOCH_MS) * 1000n, pos + 4);
            pos += 12;
          }
          break;
        }
        case 'bytea': {
          if (!Buffer.isBuffer(v)) fail(`bytea column ${i}: not a Buffer`);
          const b = v as Buffer;
          int32(b.length);
          room(b.length);
          b.copy(buf, pos);
          pos += b.length;
          break;
        }
        case 'text[]':
          if (!Array.isArray(v)) fail(`text[] column ${i}: not an array`);
          textArray(v as readonly string[], i);
          break;
        case 'text':
        case 'jsonb': {
          if (typeof v !== 'string') fail(`${t} column ${i}: not a string`);
          const s = v as string;
          if (s.includes('\0')) fail(`${t} column ${i}: Postgres text cannot contain NUL`);
          const extra = t === 'jsonb' ? 1 : 0;
          // At most 3 bytes per UTF-16 unit: short strings get that much room and are written without being
          // measured first; long ones are measured, so no buffer is three times their size.
          const len = s.length <= 4096 ? -1 : Buffer.byteLength(s, 'utf8');
          room(4 + extra + (len < 0 ? s.length * 3 : len));
          const lenAt = pos;
          pos += 4 + extra;
          if (extra) buf[pos - 1] = JSONB_VERSION;
          const written = buf.write(s, pos, 'utf8');
          buf.writeInt32BE(written + extra, lenAt);
          pos += written;
          break;
        }
      }
    }
    if (readyBytes >= FLUSH) {
      yield* slices(ready);
      ready.length = 0;
      readyBytes = 0;
    }
  }
  room(2);
  TRAILER.copy(buf, pos);
  pos += 2;
  ready.push(buf.subarray(0, pos));
  yield* slices(ready);
}

function* slices(bufs: Buffer[]): Generator<Buffer> {
  for (const b of bufs) for (let i = 0; i < b.length; i += CHUNK) yield b.subarray(i, i + CHUNK);
}

/**
 * `COPY table (columns) FROM STDIN (FORMAT binary)` of `rows` on `client`, streamed with backpressure. Resolves with
 * the number of rows Postgres stored. If encoding fails midway the COPY is aborted (CopyFail) and the error thrown;
 * either way a failed COPY leaves the caller's transaction aborted, as any failed statement does.
 */
export async function copyBinary(
  client: PoolClient,
  table: string,
  columns: readonly string[],
  types: readonly CopyType[],
  rows: Iterable<readonly CopyValue[]>,
): Promise<number> {
  const stream = client.query(
    copyStreams.from(`COPY ${table} (${columns.join(', ')}) FROM STDIN (FORMAT binary)`),
  );
  await pipeline(Readable.from(encodeCopyBinary(types, rows), { objectMode: false }), stream);
  return stream.rowCount;
}
