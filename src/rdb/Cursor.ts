import { lzfDecompress, lzfDecompressInto, lzfMaxOutput } from './lzf.js';
import { RdbFormatError } from './RdbFormatError.js';

/** Thrown (as this one preallocated object, so no stack is captured) when the buffered bytes end mid-unit. */
export const NEED_MORE: { readonly needMore: true } = Object.freeze({ needMore: true });

const TWO_32 = 0x100000000;

/**
 * A read position over one buffer. The incremental parser points it at its window of unconsumed input (`final`
 * false: running out throws NEED_MORE and the parser retries the unit once more bytes arrived); the DUMP decoder
 * points it at a complete payload (`final` true: running out is a format error). All multi-byte reads check bounds
 * first, so no RangeError can come out of Buffer accessors.
 */
export class Cursor {
  buf: Buffer;
  pos: number;
  end: number;
  /** Absolute offset of buf[0] in the input, for error messages. */
  base: number;
  final: boolean;
  /** Set when NEED_MORE is thrown: the buffer index the unit needed to reach. */
  wantEnd = 0;
  /** Set whenever a read ran past `end` (lets speculative parses tell "wrong guess" from "not enough data"). */
  ranOut = false;
  /** Set by readLenOrEnc: whether the last length was an RDB_ENCVAL special encoding. */
  isEnc = false;

  constructor(buf: Buffer, pos: number, end: number, base: number, final: boolean) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
    this.base = base;
    this.final = final;
  }

  get offset(): number {
    return this.base + this.pos;
  }

  fail(what: string, at: number = this.pos): RdbFormatError {
    return new RdbFormatError(this.base + at, what);
  }

  /** Ensures n more bytes are buffered. */
  need(n: number): void {
    if (this.pos + n > this.end) this.short(n);
  }

  short(n: number): never {
    this.ranOut = true;
    if (this.final)
      throw this.fail(`unexpected end of data: need ${n} bytes, ${this.end - this.pos} left`, this.end);
    this.wantEnd = this.pos + n;
    throw NEED_MORE;
  }

  u8(): number {
    if (this.pos >= this.end) this.short(1);
    return this.buf[this.pos++]!;
  }

  u32LE(): number {
    if (this.pos + 4 > this.end) this.short(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  /** rdbLoadMillisecondTime: a signed 64-bit little-endian integer. */
  int64LE(): number {
    if (this.pos + 8 > this.end) this.short(8);
    const b = this.buf;
    const p = this.pos;
    const lo = (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
    const hi = b[p + 4]! | (b[p + 5]! << 8) | (b[p + 6]! << 16) | (b[p + 7]! << 24);
    this.pos += 8;
    return hi * TWO_32 + lo;
  }

  /** A 16-byte raw stream ID as Redis keys its rax trees: ms and seq, each uint64 big-endian. */
  rawStreamId(): string {
    if (this.pos + 16 > this.end) this.short(16);
    const id = `${u64BE(this.buf, this.pos)}-${u64BE(this.buf, this.pos + 8)}`;
    this.pos += 16;
    return id;
  }

  binaryDouble(): number {
    if (this.pos + 8 > this.end) this.short(8);
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }

  binaryFloat(): number {
    if (this.pos + 4 > this.end) this.short(4);
    const v = this.buf.readFloatLE(this.pos);
    this.pos += 4;
    return v;
  }

  /** rdbLoadDoubleValue (zset type 3): a length byte then ASCII, with 253/254/255 for nan/+inf/-inf. */
  textDouble(): number {
    const at = this.pos;
    const len = this.u8();
    if (len === 255) return Number.NEGATIVE_INFINITY;
    if (len === 254) return Number.POSITIVE_INFINITY;
    if (len === 253) return Number.NaN;
    this.need(len);
    const s = this.buf.toString('latin1', this.pos, this.pos + len);
    this.pos += len;
    const v = Number(s);
    if (Number.isNaN(v) && !/^\s*[-+]?nan\s*$/i.test(s)) throw this.fail(`invalid double "${s}"`, at);
    return v;
  }

  /** rdbLoadLen / rdbLoadLenByRef: the 6/14/32/64-bit length encoding; also reports RDB_ENCVAL in isEnc. */
  readLenOrEnc(): number {
    if (this.pos >= this.end) this.short(1);
    const b = this.buf[this.pos]!;
    const kind = b >>> 6;
    if (kind === 0) {
      this.pos++;
      this.isEnc = false;
      return b;
    }
    if (kind === 1) {
      if (this.pos + 2 > this.end) this.short(2);
      const v = ((b & 0x3f) << 8) | this.buf[this.pos + 1]!;
      this.pos += 2;
      this.isEnc = false;
      return v;
    }
    if (kind === 3) {
      this.pos++;
      this.isEnc = true;
      return b & 0x3f;
    }
    this.isEnc = false;
    if (b === 0x80) {
      if (this.pos + 5 > this.end) this.short(5);
      const v = this.buf.readUInt32BE(this.pos + 1);
      this.pos += 5;
      return v;
    }
    if (b === 0x81) {
      if (this.pos + 9 > this.end) this.short(9);
      const hi = this.buf.readUInt32BE(this.pos + 1);
      const lo = this.buf.readUInt32BE(this.pos + 5);
      if (hi >= 0x200000) throw this.fail(`length ${(BigInt(hi) << 32n) | BigInt(lo)} is implausibly large`);
      this.pos += 9;
      return hi * TWO_32 + lo;
    }
    throw this.fail(`invalid length encoding 0x${b.toString(16)}`);
  }

  /** A plain length (an encoded-value marker is a format error here). */
  readLen(): number {
    const at = this.pos;
    const v = this.readLenOrEnc();
    if (this.isEnc) throw this.fail('expected a length, found an encoded-value marker', at);
    return v;
  }

  /** A length that may legitimately use all 64 bits (stream IDs, counters): number when exact, else BigInt. */
  readLenBig(): number | bigint {
    if (this.pos < this.end && this.buf[this.pos] === 0x81) {
      if (this.pos + 9 > this.end) this.short(9);
      const hi = this.buf.readUInt32BE(this.pos + 1);
      const lo = this.buf.readUInt32BE(this.pos + 5);
      this.pos += 9;
      return hi < 0x200000 ? hi * TWO_32 + lo : (BigInt(hi) << 32n) | BigInt(lo);
    }
    return this.readLen();
  }

  /** rdbGenericLoadStringObject: raw bytes (a zero-copy view), an integer encoding, or an LZF block. */
  readString(): Buffer {
    const at = this.pos;
    const len = this.readLenOrEnc();
    if (!this.isEnc) {
      if (this.pos + len > this.end) this.short(len);
      const v = this.buf.subarray(this.pos, this.pos + len);
      this.pos += len;
      return v;
    }
    return this.readEncodedString(len, at);
  }

  private readEncodedString(enc: number, at: number): Buffer {
    if (enc === 3) {
      const ulen = this.lzfFrame(at);
      const start = this.lzfStart;
      return lzfDecompress(this.buf, start, this.pos, ulen, this.base + start);
    }
    return Buffer.from(String(this.intEncoded(enc, at)), 'latin1');
  }

  /** The value of an integer-encoded string (RDB_ENC_INT8/16/32: little-endian, signed). */
  private intEncoded(enc: number, at: number): number {
    let v: number;
    switch (enc) {
      case 0:
        if (this.pos + 1 > this.end) this.short(1);
        v = this.buf.readInt8(this.pos);
        this.pos += 1;
        return v;
      case 1:
        if (this.pos + 2 > this.end) this.short(2);
        v = this.buf.readInt16LE(this.pos);
        this.pos += 2;
        return v;
      case 2:
        if (this.pos + 4 > this.end) this.short(4);
        v = this.buf.readInt32LE(this.pos);
        this.pos += 4;
        return v;
      default:
        throw this.fail(`unknown string encoding ${enc}`, at);
    }
  }

  /** Where the compressed bytes of the last `lzfFrame` start (they end at `pos`). */
  private lzfStart = 0;

  /**
   * An LZF string's framing (RDB_ENC_LZF: compressed length, uncompressed length, the compressed bytes): checks the
   * lengths, steps over the compressed bytes and returns the uncompressed length; they start at `lzfStart`. A field
   * rather than a returned object, so the hot path allocates nothing per string.
   */
  private lzfFrame(at: number): number {
    const clen = this.readLen();
    const ulen = this.readLen();
    if (ulen > lzfMaxOutput(clen))
      throw this.fail(`LZF string claims ${ulen} bytes from ${clen} compressed bytes`, at);
    if (this.pos + clen > this.end) this.short(clen);
    this.lzfStart = this.pos;
    this.pos += clen;
    return ulen;
  }

  /**
   * readString without a Buffer of its own: afterwards `v` locates the string's bytes, in the input (raw strings)
   * or in v's scratch buffer (LZF-decompressed or integer-encoded ones). Valid until the next read into `v` or
   * the next chunk, so only for callers that use the bytes at once (`redtail rdb`'s direct path).
   */
  readStringView(v: ByteView): void {
    const at = this.pos;
    const len = this.readLenOrEnc();
    if (!this.isEnc) {
      if (this.pos + len > this.end) this.short(len);
      v.buf = this.buf;
      v.start = this.pos;
      v.end = this.pos + len;
      this.pos += len;
      return;
    }
    if (len === 3) {
      const ulen = this.lzfFrame(at);
      const start = this.lzfStart;
      const out = v.room(ulen);
      lzfDecompressInto(this.buf, start, this.pos, out, ulen, this.base + start);
      v.buf = out;
      v.start = 0;
      v.end = ulen;
      return;
    }
    const n = this.intEncoded(len, at);
    v.buf = v.room(12);
    v.start = 0;
    v.end = writeInt32Digits(v.buf, n);
  }

  /** Skips a string without materializing it (stats mode). */
  skipString(): void {
    const at = this.pos;
    const len = this.readLenOrEnc();
    if (!this.isEnc) {
      if (this.pos + len > this.end) this.short(len);
      this.pos += len;
      return;
    }
    if (len === 3) {
      this.lzfFrame(at);
      return;
    }
    const n = len === 0 ? 1 : len === 1 ? 2 : len === 2 ? 4 : -1;
    if (n < 0) throw this.fail(`unknown string encoding ${len}`, at);
    if (this.pos + n > this.end) this.short(n);
    this.pos += n;
  }

  /** Reads a string's length prefix only, for the streamed huge-string path; -1 if it is not a raw string. */
  peekRawStringLength(): number {
    const save = this.pos;
    const len = this.readLenOrEnc();
    const enc = this.isEnc;
    this.pos = save;
    return enc ? -1 : len;
  }
}

/** uint64 big-endian as a decimal string (exact beyond 2^53). */
export function u64BE(buf: Buffer, at: number): string {
  const hi = buf.readUInt32BE(at);
  const lo = buf.readUInt32BE(at + 4);
  if (hi < 0x200000) return String(hi * TWO_32 + lo);
  return ((BigInt(hi) << 32n) | BigInt(lo)).toString();
}

const EMPTY = Buffer.alloc(0);

/** Where Cursor.readStringView puts a string: bytes [start, end) of buf, plus the scratch buffer it may use. */
export class ByteView {
  buf: Buffer = EMPTY;
  start = 0;
  end = 0;
  private scratch: Buffer = Buffer.allocUnsafe(256);

  /**
   * The scratch buffer, grown (geometrically) to hold at least n bytes; one that a huge value left bigger than
   * 16 MB is given back at the next small one, so it does not hold that memory for the rest of the file.
   */
  room(n: number): Buffer {
    if (this.scratch.length < n) this.scratch = Buffer.allocUnsafe(Math.max(n, this.scratch.length * 2));
    else if (this.scratch.length > 16 << 20 && n <= 64 << 10) this.scratch = Buffer.allocUnsafe(64 << 10);
    return this.scratch;
  }
}

/** Writes a 32-bit signed integer's decimal digits at buf[0] (as String(n) would); returns their count. */
function writeInt32Digits(buf: Buffer, n: number): number {
  let p = 0;
  if (n < 0) {
    buf[p++] = 0x2d;
    n = -n;
  }
  let digits = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
  const end = p + digits;
  let q = end;
  do {
    const d = Math.floor(n / 10);
    buf[--q] = 48 + (n - d * 10);
    n = d;
  } while (n > 0);
  return end;
}
