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
  const w = new CopyWriter();
  w.bytes(HEADER);
  for (const row of rows) {
    if (row.length !== types.length)
      fail(`a row has ${row.length} fields, the COPY has ${types.length} columns`);
    w.int16(types.length);
    for (let i = 0; i < types.length; i++) w.field(types[i] as CopyType, row[i], i);
    if (w.readyBytes >= FLUSH) yield* slices(w.take());
  }
  w.bytes(TRAILER);
  yield* slices(w.finish());
}

/**
 * The growing output of `encodeCopyBinary`: a current buffer and the filled ones before it. One method per column
 * type, each checking that the value fits the type, so a bad row fails with the column it is in.
 */
class CopyWriter {
  private buf = Buffer.allocUnsafe(FLUSH);
  private pos = 0;
  private ready: Buffer[] = [];
  readyBytes = 0;

  /** Hands over the filled buffers (the current one stays to be filled). */
  take(): Buffer[] {
    const out = this.ready;
    this.ready = [];
    this.readyBytes = 0;
    return out;
  }

  /** Everything written, the current buffer's filled part last. */
  finish(): Buffer[] {
    this.ready.push(this.buf.subarray(0, this.pos));
    return this.take();
  }

  field(t: CopyType, v: CopyValue | undefined, col: number): void {
    if (v === null || v === undefined) this.int32(-1);
    else if (t === 'int4') this.int4(v, col);
    else if (t === 'int8') this.int8(v, col);
    else if (t === 'float8') this.float8(v, col);
    else if (t === 'timestamptz') this.timestamptz(v, col);
    else if (t === 'bytea') this.bytea(v, col);
    else if (t === 'text[]') this.textArray(v, col);
    else this.text(v, t, col);
  }

  /** Makes room for `n` more bytes, moving the filled part of the current buffer to `ready`. */
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    if (this.pos > 0) {
      this.ready.push(this.buf.subarray(0, this.pos));
      this.readyBytes += this.pos;
    }
    this.buf = Buffer.allocUnsafe(Math.max(FLUSH, n));
    this.pos = 0;
  }

  bytes(b: Buffer): void {
    this.room(b.length);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
  }

  int16(v: number): void {
    this.room(2);
    this.buf.writeInt16BE(v, this.pos);
    this.pos += 2;
  }

  private int32(v: number): void {
    this.room(4);
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
  }

  private int4(v: CopyValue, col: number): void {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff)
      fail(`int4 column ${col}: ${String(v)} is not a 32-bit integer`);
    this.int32(4);
    this.int32(v);
  }

  private int8(v: CopyValue, col: number): void {
    if (typeof v !== 'number' || !Number.isSafeInteger(v))
      fail(`int8 column ${col}: ${String(v)} is not a safe integer`);
    this.int64(v);
  }

  private bytea(v: CopyValue, col: number): void {
    if (!Buffer.isBuffer(v)) fail(`bytea column ${col}: not a Buffer`);
    this.int32(v.length);
    this.bytes(v);
  }

  /** A length-prefixed int64 big-endian from a safe integer, without a BigInt (this runs for every row). */
  private int64(n: number): void {
    const hi = Math.floor(n / 0x1_0000_0000);
    this.room(12);
    this.buf.writeInt32BE(8, this.pos);
    this.buf.writeInt32BE(hi, this.pos + 4);
    this.buf.writeUInt32BE(n - hi * 0x1_0000_0000, this.pos + 8);
    this.pos += 12;
  }

  /** IEEE 754 big-endian (float8send); infinities are valid zset scores, NaN never is. */
  private float8(v: CopyValue, col: number): void {
    if (typeof v !== 'number' || Number.isNaN(v)) fail(`float8 column ${col}: ${String(v)} is not a number`);
    this.room(12);
    this.buf.writeInt32BE(8, this.pos);
    this.buf.writeDoubleBE(v, this.pos + 4);
    this.pos += 12;
  }

  private timestamptz(v: CopyValue, col: number): void {
    if (typeof v !== 'number' || !Number.isSafeInteger(v))
      fail(`timestamptz column ${col}: ${String(v)} is not a time in ms`);
    const us = (v - PG_EPOCH_MS) * 1000;
    if (Number.isSafeInteger(us)) {
      this.int64(us);
      return;
    }
    // |ms| < 2^53 keeps the product within int64; Postgres itself rejects times outside its range.
    this.room(12);
    this.buf.writeInt32BE(8, this.pos);
    this.buf.writeBigInt64BE(BigInt(v - PG_EPOCH_MS) * 1000n, this.pos + 4);
    this.pos += 12;
  }

  /**
   * A one-dimensional text[] without NULLs in array_send's layout: ndim, has-nulls flag, element type oid, then per
   * dimension its length and lower bound (1), then each element as a length and its UTF-8 bytes.
   */
  private textArray(v: CopyValue, col: number): void {
    if (!Array.isArray(v)) fail(`text[] column ${col}: not an array`);
    const a = v as readonly string[];
    const bytes = a.map((x) => {
      if (typeof x !== 'string' || x.includes('\0')) fail(`text[] column ${col}: an element is not text`);
      return Buffer.from(x, 'utf8');
    });
    const header = a.length === 0 ? 12 : 20;
    this.int32(header + bytes.reduce((n, x) => n + 4 + x.length, 0));
    this.int32(a.length === 0 ? 0 : 1);
    this.int32(0);
    this.int32(TEXT_OID);
    if (a.length > 0) {
      this.int32(a.length);
      this.int32(1);
    }
    for (const x of bytes) {
      this.int32(x.length);
      this.bytes(x);
    }
  }

  private text(v: CopyValue, t: 'text' | 'jsonb', col: number): void {
    if (typeof v !== 'string') fail(`${t} column ${col}: not a string`);
    if (v.includes('\0')) fail(`${t} column ${col}: Postgres text cannot contain NUL`);
    const extra = t === 'jsonb' ? 1 : 0;
    // At most 3 bytes per UTF-16 unit: short strings get that much room and are written without being measured
    // first; long ones are measured, so no buffer is three times their size.
    const len = v.length <= 4096 ? -1 : Buffer.byteLength(v, 'utf8');
    this.room(4 + extra + (len < 0 ? v.length * 3 : len));
    const lenAt = this.pos;
    this.pos += 4 + extra;
    if (extra) this.buf[this.pos - 1] = JSONB_VERSION;
    const written = this.buf.write(v, this.pos, 'utf8');
    this.buf.writeInt32BE(written + extra, lenAt);
    this.pos += written;
  }
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
