import { isUtf8 } from 'node:buffer';
import type { RdbStringKey } from '../rdb/records.js';
import type { ChangeEvent, EventOf, EventOp, EventSource, SnapshotEvent } from './ChangeEvent.js';
import { HUGE_VALUE_BYTES, HugeValue } from './hugeValue.js';

/** What a batch of lines is made of when huge values are left out: bytes, and references to write in chunks. */
export type NdjsonPiece = Buffer | HugeValue;

/** Bytes [start, end) of buf (the RDB parser's ByteView). */
export interface ByteRange {
  readonly buf: Buffer;
  readonly start: number;
  readonly end: number;
}

/**
 * A hand-written NDJSON encoder: each op writes its fields straight into one reusable buffer, in the order the
 * normalizer sets them, so a batch costs no intermediate objects (no `toJsonValue` copy), no `JSON.stringify`, and no
 * per-line strings. The output is byte for byte what `JSON.stringify(toJsonValue(event))` writes
 * (test/events/NdjsonEncoder.test.ts proves it on the propagation and RDB corpora and on random bytes):
 *   - a byte string is a JSON string when it is valid UTF-8 (copied as is, escaping only `"`, `\` and control bytes
 *     as JSON.stringify does), else `{"base64":"..."}` (docs/events.md);
 *   - numbers as JSON.stringify prints them (non-finite: null); objects in key order, undefined members left out.
 * Ops whose fields follow the order of the command's arguments (XADD/XTRIM options, XCLAIM, XAUTOCLAIM, XSETID) and
 * the control events (open fields) are written by the generic, order-preserving writer.
 */
export class NdjsonWriter {
  private buf: Buffer;
  private pos = 0;
  private replid: string | null = null;
  private replidPrefix: Uint8Array = new Uint8Array(0);
  private snapOffset = Number.NaN;
  private snapPrefix: Uint8Array = new Uint8Array(0);
  private lastTs = Number.NaN;
  private lastTsDigits: Uint8Array = new Uint8Array(0);
  /** Byte strings at least this long are left out of the buffer (`deferHuge`); by default none is. */
  private hugeAt = Number.POSITIVE_INFINITY;
  /** The byte strings left out since the last reset, each with the buffer position it belongs at. */
  private huge: Array<{ at: number; ref: HugeValue }> = [];
  /** Their total length: what one event left out is the difference across its `event` call. */
  private deferred = 0;

  constructor(initialBytes = 1 << 16) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /**
   * From now on a byte string of `bytes` or more is not encoded into the buffer but left as a `HugeValue` in
   * `pieces()`, for the sink to write in chunks (src/events/hugeValue.ts): a 512 MB value never becomes one string
   * or a copy several times its size. `view()` then lacks those values; use `pieces()`.
   */
  deferHuge(bytes = HUGE_VALUE_BYTES): this {
    this.hugeAt = bytes;
    return this;
  }

  /**
   * What was written since the last reset, as copies of the buffer between the huge values and the huge values
   * themselves, in order: the lines are these pieces concatenated (huge ones through `hugeValueChunks`).
   */
  pieces(): NdjsonPiece[] {
    if (this.huge.length === 0) return [Buffer.from(this.view())];
    const out: NdjsonPiece[] = [];
    let from = 0;
    for (const h of this.huge) {
      if (h.at > from) out.push(Buffer.from(this.buf.subarray(from, h.at)));
      out.push(h.ref);
      from = h.at;
    }
    if (this.pos > from) out.push(Buffer.from(this.buf.subarray(from, this.pos)));
    return out;
  }

  /** Bytes written since the last `reset`. */
  get length(): number {
    return this.pos;
  }

  /**
   * Bytes of the byte strings left out (`deferHuge`) since the last reset, a running total: the difference across
   * one `event` call is what that event holds in huge values, found while encoding it instead of by a second walk
   * over its fields (the Kafka sink's oversize decision, sinks/kafka/messages.ts).
   */
  get deferredBytes(): number {
    return this.deferred;
  }

  /** Forgets what was written; the buffer is reused. */
  reset(): void {
    this.pos = 0;
    this.deferred = 0;
    if (this.huge.length > 0) this.huge = [];
  }

  /**
   * Forgets what was written from `pos` on (a line just written: pass `length` from before it), with the values
   * it left out; `deferredBytes` keeps counting them, so a caller's difference stays right.
   */
  truncate(pos: number): void {
    this.pos = Math.min(this.pos, pos);
    while (this.huge.length > 0 && this.huge[this.huge.length - 1]!.at >= this.pos) this.huge.pop();
  }

  /** The bytes written so far: a view of the internal buffer, valid until the next write or reset. */
  view(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  /** True when byte strings were left out since the last reset (`deferHuge`): then `view()` lacks them. */
  get hasHuge(): boolean {
    return this.huge.length > 0;
  }

  /** Appends one event as one line (with its trailing newline). */
  event(ev: ChangeEvent): void {
    (ENCODERS[ev.op] as (w: NdjsonWriter, ev: ChangeEvent) => void)(this, ev);
    this.byte(0x0a);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  byte(c: number): void {
    this.ensure(1);
    this.buf[this.pos++] = c;
  }

  /** Pre-encoded ASCII (field names, punctuation). */
  bytes(src: Uint8Array): void {
    const n = src.length;
    this.ensure(n);
    const buf = this.buf;
    let p = this.pos;
    if (n > 24) {
      buf.set(src, p);
      this.pos = p + n;
      return;
    }
    for (let i = 0; i < n; i++) buf[p++] = src[i]!;
    this.pos = p;
  }

  /** A JS string as JSON: ASCII without specials is copied byte by byte, anything else goes through JSON.stringify. */
  str(s: string): void {
    const n = s.length;
    this.ensure(n + 2);
    const buf = this.buf;
    let p = this.pos;
    buf[p++] = 0x22;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) {
        const json = JSON.stringify(s);
        this.ensure(json.length * 3);
        this.pos += this.buf.write(json, this.pos, 'utf8');
        return;
      }
      buf[p++] = c;
    }
    buf[p++] = 0x22;
    this.pos = p;
  }

  /** A number as JSON.stringify prints it. */
  num(n: number): void {
    if (Number.isSafeInteger(n) && n >= 0) {
      this.uint(n);
      return;
    }
    const s = Number.isFinite(n) ? String(n) : 'null';
    this.ensure(s.length);
    for (let i = 0; i < s.length; i++) this.buf[this.pos++] = s.charCodeAt(i);
  }

  private uint(n: number): void {
    this.ensure(16);
    const buf = this.buf;
    if (n < 10) {
      buf[this.pos++] = 48 + n;
      return;
    }
    if (n < 0x80000000) {
      // int32 arithmetic (seq numbers, dbs, offsets below 2 GB): no float division.
      let digits = 1;
      for (let x = n; x >= 10; x = (x / 10) | 0) digits++;
      let p = this.pos + digits;
      this.pos = p;
      let m = n;
      while (m >= 10) {
        const q = (m / 10) | 0;
        buf[--p] = 48 + m - q * 10;
        m = q;
      }
      buf[--p] = 48 + m;
      return;
    }
    let digits = 1;
    for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
    let p = this.pos + digits;
    this.pos = p;
    while (n >= 10) {
      const q = Math.floor(n / 10);
      buf[--p] = 48 + (n - q * 10);
      n = q;
    }
    buf[--p] = 48 + n;
  }

  bool(b: boolean): void {
    this.bytes(b ? TRUE : FALSE);
  }

  /** A byte string: JSON string when valid UTF-8, `{"base64":"..."}` otherwise. */
  bin(b: Buffer): void {
    if (b.length >= this.hugeAt) {
      this.huge.push({ at: this.pos, ref: new HugeValue(b) });
      this.deferred += b.length;
      return;
    }
    this.binRange(b, 0, b.length);
  }

  /** Bytes [start, end) of `b` as `bin` writes them, without a view of them. */
  binRange(b: Buffer, start: number, end: number): void {
    const n = end - start;
    // Plain printable ASCII, the common case, needs no escaping and no UTF-8 check.
    const i = plainEnd(b, start, end);
    if (i === end) {
      this.ensure(n + 2);
      const buf = this.buf;
      let p = this.pos;
      buf[p++] = 0x22;
      p = copyBytes(b, start, end, buf, p);
      buf[p++] = 0x22;
      this.pos = p;
      return;
    }
    // A big binary value is checked first, so it does not reserve six times its size for escapes it will not get.
    if (n > 4096 && !isUtf8(b.subarray(start, end))) {
      this.base64(b, start, end);
      return;
    }
    // Copied as is except `"`, `\` and control bytes, which get JSON.stringify's escapes from a table; multi-byte
    // sequences are checked as they are copied (what isUtf8 accepts: no overlong forms, surrogates or code points
    // past U+10FFFF), and the first invalid one turns the whole string into base64 instead.
    this.ensure(n * 6 + 2);
    const buf = this.buf;
    let p = this.pos;
    buf[p++] = 0x22;
    p = copyBytes(b, start, i, buf, p);
    for (let k = i; k < end; k++) {
      const c = b[k]!;
      if (PLAIN[c] === 1) {
        // A run of plain bytes between special ones (random printable values hold a `\` every ~75 bytes): found
        // four bytes at a time and copied at once.
        const e = plainEnd(b, k, end);
        p = copyBytes(b, k, e, buf, p);
        k = e - 1;
        continue;
      }
      if (c >= 0x80) {
        const len = utf8SequenceLength(b, k, end);
        if (len === 0) {
          this.base64(b, start, end);
          return;
        }
        buf[p++] = c;
        for (let m = 1; m < len; m++) buf[p++] = b[k + m]!;
        k += len - 1;
        continue;
      }
      const l = ESC_LEN[c]!;
      if (l === 0) {
        buf[p++] = c;
        continue;
      }
      // Runs of one escaped byte (zero padding is the common one) are copied from a prebuilt run of its escape.
      let e = k + 1;
      while (e < end && b[e] === c) e++;
      if (e - k >= 4) {
        p = copyRun(buf, p, c, e - k);
        k = e - 1;
        continue;
      }
      const x = c * 6;
      buf[p++] = ESC[x]!;
      buf[p++] = ESC[x + 1]!;
      if (l === 6) {
        buf[p++] = ESC[x + 2]!;
        buf[p++] = ESC[x + 3]!;
        buf[p++] = ESC[x + 4]!;
        buf[p++] = ESC[x + 5]!;
      }
    }
    buf[p++] = 0x22;
    this.pos = p;
  }

  private base64(b: Buffer, start: number, end: number): void {
    this.bytes(BASE64_OPEN);
    const s = b.toString('base64', start, end);
    this.ensure(s.length + 2);
    this.pos += this.buf.write(s, this.pos, 'latin1');
    this.bytes(BASE64_CLOSE);
  }

  binArray(list: readonly Buffer[]): void {
    this.byte(0x5b);
    for (let i = 0; i < list.length; i++) {
      if (i > 0) this.byte(0x2c);
      this.bin(list[i]!);
    }
    this.byte(0x5d);
  }

  strArray(list: readonly string[]): void {
    this.byte(0x5b);
    for (let i = 0; i < list.length; i++) {
      if (i > 0) this.byte(0x2c);
      this.str(list[i]!);
    }
    this.byte(0x5d);
  }

  /** `[[bytes, bytes], ...]` (hash fields, stream entry fields). */
  binPairs(list: ReadonlyArray<readonly [Buffer, Buffer]>): void {
    this.byte(0x5b);
    for (let i = 0; i < list.length; i++) {
      const pair = list[i]!;
      this.bytes(i > 0 ? COMMA_OPEN : OPEN);
      this.bin(pair[0]);
      this.byte(0x2c);
      this.bin(pair[1]);
      this.byte(0x5d);
    }
    this.byte(0x5d);
  }

  /** A number, or a string (scores like "inf", integers beyond 2^53). */
  numOrStr(v: number | string): void {
    if (typeof v === 'number') this.num(v);
    else this.str(v);
  }

  /** Any value, the way JSON.stringify(toJsonValue(v)) writes it: key order kept, undefined members left out. */
  value(v: unknown): void {
    if (v === null) this.bytes(NULL);
    else if (typeof v === 'string') this.str(v);
    else if (typeof v === 'number') this.num(v);
    else if (typeof v === 'boolean') this.bool(v);
    else if (Buffer.isBuffer(v)) this.bin(v);
    else if (Array.isArray(v)) {
      this.byte(0x5b);
      for (let i = 0; i < v.length; i++) {
        if (i > 0) this.byte(0x2c);
        const x = v[i];
        // JSON.stringify writes null for undefined array elements (and functions/symbols, which events never hold).
        if (x === undefined) this.bytes(NULL);
        else this.value(x);
      }
      this.byte(0x5d);
    } else if (typeof v === 'object') this.object(v as Record<string, unknown>, false);
    else this.bytes(NULL);
  }

  /** An object's members in key order; `open`: the opening brace was already written along with earlier fields. */
  object(o: Record<string, unknown>, open: boolean): void {
    if (!open) this.byte(0x7b);
    let first = !open;
    for (const k of Object.keys(o)) {
      const x = o[k];
      if (x === undefined) continue;
      if (!first) this.byte(0x2c);
      first = false;
      this.str(k);
      this.byte(0x3a);
      this.value(x);
    }
    this.byte(0x7d);
  }

  /** `,"name":` from a pre-encoded field prefix. */
  field(prefix: Uint8Array): void {
    this.bytes(prefix);
  }

  /** Event times come from Date.now(), so consecutive events mostly share one: its digits are kept. */
  ts(n: number): void {
    if (n !== this.lastTs) {
      const start = this.pos;
      this.num(n);
      this.lastTsDigits = Buffer.from(this.buf.subarray(start, this.pos));
      this.lastTs = n;
    } else this.bytes(this.lastTsDigits);
  }

  /**
   * The line of a string key's snapshot event straight from the RDB parser's views (RdbParser's onStringKey): the
   * bytes `event(snapshotEvent(rec, {replid, offset, seq}, ts))` writes for the same key, without building the
   * record, the event or a Buffer per key and value.
   */
  snapshotString(k: RdbStringKey, replid: string, offset: number, seq: number, ts: number): void {
    this.snapshotHead(k.db, k.key, 'string', 'string');
    this.binRange(k.value.buf, k.value.start, k.value.end);
    this.snapshotTail(k.expireAt, replid, offset, seq, ts);
  }

  /**
   * A snapshot line up to its value, `{"v":1,"op":"snapshot","db":…,"key":…,"type":…,"encoding":…,"value":`, for
   * keys written from the parser's views; `snapshotTail` ends it.
   */
  snapshotHead(db: number, key: ByteRange, type: string, encoding: string): void {
    if (db === 0) this.bytes(SNAPSHOT_DB0_KEY);
    else {
      this.bytes(head('snapshot'));
      this.num(db);
      this.bytes(F_KEY);
    }
    this.binRange(key.buf, key.start, key.end);
    this.bytes(typeEncodingValue(type, encoding));
  }

  /** `,"expireAt":…,"source":{…},"ts":…}` and the newline, as `snapshot` writes them for a whole value. */
  snapshotTail(expireAt: number | null, replid: string, offset: number, seq: number, ts: number): void {
    if (expireAt === null) this.bytes(EXPIRE_AT_NULL);
    else {
      this.bytes(f.expireAt);
      this.num(expireAt);
    }
    if (replid === this.replid && offset === this.snapOffset) {
      this.bytes(this.snapPrefix);
      this.num(seq);
      this.bytes(F_SNAPSHOT_TRUE_TS);
    } else {
      this.source({ replid, offset, seq, snapshot: true });
      this.bytes(F_TS);
    }
    this.ts(ts);
    this.ensure(2);
    this.buf[this.pos++] = 0x7d;
    this.buf[this.pos++] = 0x0a;
  }

  /** An integer's decimal digits (BigInt too), unquoted. */
  digits(v: number | bigint): void {
    if (typeof v === 'number') this.num(v);
    else {
      const s = v.toString();
      this.ensure(s.length);
      for (let i = 0; i < s.length; i++) this.buf[this.pos++] = s.charCodeAt(i);
    }
  }

  /**
   * `,"source":{…},"ts":…` of a stream event outside a transaction (almost every event of the stream): what `source`
   * and `ts` write, with the constant run between them written at once.
   */
  streamSourceTs(s: EventSource, ts: number): void {
    if (s.replid === this.replid) this.bytes(this.replidPrefix);
    else this.newReplid(s.replid);
    this.num(s.offset);
    this.bytes(F_SEQ);
    this.num(s.seq);
    this.bytes(F_SNAPSHOT_FALSE_TS);
    this.ts(ts);
  }

  /** `,"source":{"replid":…,"offset":` for another replid, kept as the prefix of the events that follow. */
  private newReplid(replid: string): void {
    // Every event of a stream or snapshot carries the same replid: its encoded prefix is built once.
    const start = this.pos;
    this.bytes(F_SOURCE_REPLID);
    this.str(replid);
    this.bytes(F_OFFSET);
    this.replidPrefix = Buffer.from(this.buf.subarray(start, this.pos));
    this.replid = replid;
    // The cached snapshot prefix holds the previous replid: a snapshot of the new one at the same offset (a
    // restarted master starts again from 0) must not reuse it.
    this.snapOffset = Number.NaN;
  }

  source(s: EventSource): void {
    if (s.txn !== undefined) {
      // Where `txn` sits depends on who set it (the normalizer or the replicator after EXEC): keep its order.
      this.bytes(F_SOURCE);
      this.object(s as unknown as Record<string, unknown>, false);
      return;
    }
    if (s.snapshot && s.replid === this.replid && s.offset === this.snapOffset) {
      // Snapshot events share replid and offset: everything up to the seq is one cached run of bytes.
      this.bytes(this.snapPrefix);
      this.num(s.seq);
      this.bytes(F_SNAPSHOT_TRUE);
      return;
    }
    const start = this.pos;
    if (s.replid !== this.replid) this.newReplid(s.replid);
    else this.bytes(this.replidPrefix);
    this.num(s.offset);
    this.bytes(F_SEQ);
    if (s.snapshot) {
      this.snapPrefix = Buffer.from(this.buf.subarray(start, this.pos));
      this.snapOffset = s.offset;
    }
    this.num(s.seq);
    this.bytes(s.snapshot ? F_SNAPSHOT_TRUE : F_SNAPSHOT_FALSE);
  }
}

const ascii = (s: string): Uint8Array => Buffer.from(s, 'latin1');
const NULL = ascii('null');
const TRUE = ascii('true');
const FALSE = ascii('false');
const OPEN = ascii('[');
const COMMA_OPEN = ascii(',[');
const BASE64_OPEN = ascii('{"base64":"');
const BASE64_CLOSE = ascii('"}');
const HEX = ascii('0123456789abcdef');
const SHORT_ESCAPES: Record<number, number> = {
  8: 0x62,
  9: 0x74,
  10: 0x6e,
  12: 0x66,
  13: 0x72,
  34: 0x22,
  92: 0x5c,
};
/** 1 for the bytes a JSON string holds as they are with no UTF-8 check: printable ASCII but `"` and `\`. */
const PLAIN = new Uint8Array(256);
for (let c = 0x20; c <= 0x7e; c++) if (c !== 0x22 && c !== 0x5c) PLAIN[c] = 1;

/** From this length on, `plainEnd` reads the string four bytes at a time (below it, a word view costs more). */
const WORD_SCAN_BYTES = 48;

/**
 * The index of the first byte of [start, end) that is not PLAIN, or `end`. One table load per byte is ~1.7 ns, so a
 * 1 KB value took 1.7 µs (7 % of redtail's time draining into a file, bench/NOTES.md "filedrain"); a long string is
 * read as 32-bit words instead, four bytes tested at once by the usual "has a byte below / above / equal to"
 * bit tricks (about 3.5× faster). A word that may hold a non-plain byte (the tests can flag a plain byte next to a
 * non-plain one, never miss one) ends the word loop, and the byte loop finds the exact index from there.
 */
function plainEnd(b: Uint8Array, start: number, end: number): number {
  let i = start;
  if (end - start >= WORD_SCAN_BYTES) {
    // Byte by byte up to a 4-byte boundary of the underlying memory (Int32Array needs aligned offsets).
    const aligned = start + ((4 - ((b.byteOffset + start) & 3)) & 3);
    while (i < aligned && PLAIN[b[i]!] === 1) i++;
    if (i < aligned) return i;
    const words = (end - i) >>> 2;
    const w32 = new Int32Array(b.buffer, b.byteOffset + i, words);
    let k = 0;
    for (; k < words; k++) {
      const w = w32[k]!;
      const q = w ^ 0x22222222;
      const s = w ^ 0x5c5c5c5c;
      // High bit of a byte set by: a byte < 0x20; a byte >= 0x7f; a byte equal to `"`; a byte equal to `\`.
      const flags =
        ((w - 0x20202020) & ~w) | (w + 0x01010101) | w | ((q - 0x01010101) & ~q) | ((s - 0x01010101) & ~s);
      if ((flags & 0x80808080) !== 0) break;
    }
    i += k * 4;
  }
  while (i < end && PLAIN[b[i]!] === 1) i++;
  return i;
}

/** Copies b[start, end) to `to` at `p` and returns the position after it (native copy for long runs). */
function copyBytes(b: Buffer, start: number, end: number, to: Buffer, p: number): number {
  if (end - start > 64) return p + b.copy(to, p, start, end);
  for (let k = start; k < end; k++) to[p++] = b[k]!;
  return p;
}

/** JSON.stringify's escape of each byte below 0x80 that needs one (2 or 6 bytes at ESC[c * 6]), length in ESC_LEN. */
const ESC = new Uint8Array(256 * 6);
const ESC_LEN = new Uint8Array(256);
for (let c = 0; c < 0x80; c++) {
  if (c >= 0x20 && c !== 0x22 && c !== 0x5c) continue;
  const short = SHORT_ESCAPES[c];
  const seq = short !== undefined ? [0x5c, short] : [0x5c, 0x75, 0x30, 0x30, HEX[c >> 4]!, HEX[c & 15]!];
  ESC.set(seq, c * 6);
  ESC_LEN[c] = seq.length;
}
const RUN = 256;
const runs: Array<Buffer | undefined> = [];
/** Writes the escape of byte `c` `count` times from a lazily built run of RUN escapes; returns the new position. */
function copyRun(buf: Buffer, p: number, c: number, count: number): number {
  const l = ESC_LEN[c]!;
  let run = runs[c];
  if (run === undefined) {
    run = Buffer.allocUnsafe(RUN * l);
    for (let k = 0; k < RUN; k++) run.set(ESC.subarray(c * 6, c * 6 + l), k * l);
    runs[c] = run;
  }
  while (count > 0) {
    const m = Math.min(count, RUN);
    run.copy(buf, p, 0, m * l);
    p += m * l;
    count -= m;
  }
  return p;
}
/**
 * Length of the well-formed UTF-8 sequence starting with the byte b[k] (≥ 0x80) and ending before `end`, or 0
 * when it is not one: the table of well-formed byte sequences of the Unicode standard (3.9, table 3-7), which is
 * what node:buffer's isUtf8 checks.
 */
function utf8SequenceLength(b: Buffer, k: number, end: number): number {
  const c = b[k]!;
  if (c < 0xc2) return 0;
  if (c < 0xe0) return k + 1 < end && (b[k + 1]! & 0xc0) === 0x80 ? 2 : 0;
  if (c < 0xf0) {
    if (k + 2 >= end) return 0;
    const c1 = b[k + 1]!;
    const lo = c === 0xe0 ? 0xa0 : 0x80;
    const hi = c === 0xed ? 0x9f : 0xbf;
    return c1 >= lo && c1 <= hi && (b[k + 2]! & 0xc0) === 0x80 ? 3 : 0;
  }
  if (c > 0xf4 || k + 3 >= end) return 0;
  const c1 = b[k + 1]!;
  const lo = c === 0xf0 ? 0x90 : 0x80;
  const hi = c === 0xf4 ? 0x8f : 0xbf;
  return c1 >= lo && c1 <= hi && (b[k + 2]! & 0xc0) === 0x80 && (b[k + 3]! & 0xc0) === 0x80 ? 4 : 0;
}
const F_SOURCE = ascii(',"source":');
const F_SOURCE_REPLID = ascii(',"source":{"replid":');
const F_OFFSET = ascii(',"offset":');
const F_SEQ = ascii(',"seq":');
const F_SNAPSHOT_TRUE = ascii(',"snapshot":true}');
const F_SNAPSHOT_FALSE = ascii(',"snapshot":false}');
const F_TS = ascii(',"ts":');
const F_SNAPSHOT_TRUE_TS = ascii(',"snapshot":true},"ts":');
const F_SNAPSHOT_FALSE_TS = ascii(',"snapshot":false},"ts":');
const SNAPSHOT_DB0_KEY = ascii('{"v":1,"op":"snapshot","db":0,"key":');
const EXPIRE_AT_NULL = ascii(',"expireAt":null');
const F_KEY = ascii(',"key":');

/** Field prefixes `,"name":`, encoded once. */
function prefixes<K extends string>(names: readonly K[]): Record<K, Uint8Array> {
  const out = {} as Record<K, Uint8Array>;
  for (const n of names) out[n] = ascii(`,${JSON.stringify(n)}:`);
  return out;
}
const f = prefixes([
  'value',
  'expireAt',
  'expireApprox',
  'delta',
  'offset',
  'bit',
  'ops',
  'operation',
  'sources',
  'elements',
  'destKey',
  'destDb',
  'replace',
  'payload',
  'idleTime',
  'frequency',
  'command',
  'args',
  'async',
  'db1',
  'db2',
  'side',
  'count',
  'from',
  'to',
  'position',
  'pivot',
  'element',
  'index',
  'start',
  'stop',
  'members',
  'member',
  'flags',
  'by',
  'min',
  'max',
  'fields',
  'fieldExpireAt',
  'field',
  'condition',
  'policy',
  'ids',
  'group',
  'consumer',
  'id',
  'mkstream',
  'entriesRead',
  'code',
  'library',
  'channel',
  'message',
  'sharded',
  'unknown',
  'reason',
  'encoding',
  'module',
  'part',
  'last',
  'type',
]);

/** `{"v":1,"op":"<op>","db":` per op. */
const HEAD = new Map<string, Uint8Array>();
function head(op: string): Uint8Array {
  let h = HEAD.get(op);
  if (h === undefined) {
    h = ascii(`{"v":1,"op":${JSON.stringify(op)},"db":`);
    HEAD.set(op, h);
  }
  return h;
}

/** Envelope up to the payload: v, op, db, key (if any), type (if any). */
function begin(w: NdjsonWriter, ev: ChangeEvent): void {
  w.bytes(head(ev.op));
  w.num(ev.db);
  if (ev.key !== undefined) {
    w.bytes(F_KEY);
    w.bin(ev.key);
  }
  if (ev.type !== undefined) w.bytes(typeField(ev.type));
}

/** `,"type":"<type>"` per type: a handful of values, each encoded once. */
const TYPE_FIELD = new Map<string, Uint8Array>();
function typeField(type: string): Uint8Array {
  let b = TYPE_FIELD.get(type);
  if (b === undefined) {
    b = Buffer.from(`,"type":${JSON.stringify(type)}`, 'utf8');
    TYPE_FIELD.set(type, b);
  }
  return b;
}

function end(w: NdjsonWriter, ev: ChangeEvent): void {
  const s = ev.source;
  if (s.txn === undefined && !s.snapshot) w.streamSourceTs(s, ev.ts);
  else {
    w.source(s);
    w.bytes(F_TS);
    w.ts(ev.ts);
  }
  w.byte(0x7d);
}

/** Ops whose fields are all written by hand; `payload` writes what comes between `type` and `source`. */
function op<O extends EventOp>(payload: (w: NdjsonWriter, ev: EventOf<O>) => void) {
  return (w: NdjsonWriter, ev: EventOf<O>): void => {
    begin(w, ev);
    payload(w, ev);
    end(w, ev);
  };
}

/** Events whose field order follows the command's arguments, or is open: written in their own key order. */
function ordered(w: NdjsonWriter, ev: ChangeEvent): void {
  w.object(ev as unknown as Record<string, unknown>, false);
}

function expiry(w: NdjsonWriter, at: number | null | undefined, approx: true | undefined): void {
  if (at !== undefined) {
    w.bytes(f.expireAt);
    if (at === null) w.bytes(NULL);
    else w.num(at);
  }
  if (approx !== undefined) {
    w.bytes(f.expireApprox);
    w.bool(approx);
  }
}

const none = op(() => {});
const membersOnly = op<'sadd' | 'srem' | 'zrem'>((w, ev) => {
  w.bytes(f.members);
  w.binArray(ev.members);
});
const fieldsOnly = op<'hdel' | 'hpersist'>((w, ev) => {
  w.bytes(f.fields);
  w.binArray(ev.fields);
});
const groupConsumer = op<'xgroup-createconsumer' | 'xgroup-delconsumer'>((w, ev) => {
  w.bytes(f.group);
  w.bin(ev.group);
  w.bytes(f.consumer);
  w.bin(ev.consumer);
});
const asyncOnly = op<'flushdb' | 'flushall' | 'function-flush'>((w, ev) => {
  w.bytes(f.async);
  w.bool(ev.async);
});

/** `,"type":T,"encoding":E` per type and encoding seen: a handful of pairs, written as one run of bytes. */
const TYPE_ENCODING = new Map<string, Map<string, Uint8Array>>();
let lastType = '';
let lastEncoding = '';
let lastTypeEncoding: Uint8Array = new Uint8Array(0);
function typeEncoding(type: string, encoding: string): Uint8Array {
  // Keys of one type and encoding mostly come in long runs.
  if (type === lastType && encoding === lastEncoding) return lastTypeEncoding;
  let byEncoding = TYPE_ENCODING.get(type);
  if (byEncoding === undefined) {
    byEncoding = new Map();
    TYPE_ENCODING.set(type, byEncoding);
  }
  let b = byEncoding.get(encoding);
  if (b === undefined) {
    b = Buffer.from(`,"type":${JSON.stringify(type)},"encoding":${JSON.stringify(encoding)}`, 'utf8');
    byEncoding.set(encoding, b);
  }
  lastType = type;
  lastEncoding = encoding;
  lastTypeEncoding = b;
  return b;
}

/** typeEncoding followed by `,"value":`, for lines written from the parser's views. */
const TYPE_ENCODING_VALUE = new Map<Uint8Array, Uint8Array>();
function typeEncodingValue(type: string, encoding: string): Uint8Array {
  const te = typeEncoding(type, encoding);
  let b = TYPE_ENCODING_VALUE.get(te);
  if (b === undefined) {
    b = Buffer.concat([te, f.value]);
    TYPE_ENCODING_VALUE.set(te, b);
  }
  return b;
}

function snapshot(w: NdjsonWriter, ev: SnapshotEvent): void {
  w.bytes(head(ev.op));
  w.num(ev.db);
  w.bytes(F_KEY);
  w.bin(ev.key);
  w.bytes(typeEncoding(ev.type, ev.encoding));
  const v = ev.value;
  if (v !== undefined) {
    w.bytes(f.value);
    if (Buffer.isBuffer(v)) w.bin(v);
    else if (Array.isArray(v) && (ev.type === 'list' || ev.type === 'set')) w.binArray(v as Buffer[]);
    else if (Array.isArray(v) && ev.type === 'hash') w.binPairs(v as Array<[Buffer, Buffer]>);
    else if (Array.isArray(v) && ev.type === 'zset') {
      const pairs = v as Array<[Buffer, number | string]>;
      w.byte(0x5b);
      for (let i = 0; i < pairs.length; i++) {
        const p = pairs[i]!;
        w.bytes(i > 0 ? COMMA_OPEN : OPEN);
        w.bin(p[0]);
        w.byte(0x2c);
        w.numOrStr(p[1]);
        w.byte(0x5d);
      }
      w.byte(0x5d);
    } else w.value(v);
  }
  w.bytes(f.expireAt);
  if (ev.expireAt === null) w.bytes(NULL);
  else w.num(ev.expireAt);
  w.source(ev.source);
  w.bytes(F_TS);
  w.ts(ev.ts);
  // snapshotEvent() sets these after the envelope, so they follow `ts`.
  if (ev.fieldExpireAt !== undefined) {
    w.bytes(f.fieldExpireAt);
    w.value(ev.fieldExpireAt);
  }
  if (ev.module !== undefined) {
    w.bytes(f.module);
    w.value(ev.module);
  }
  if (ev.part !== undefined) {
    w.bytes(f.part);
    w.num(ev.part);
  }
  if (ev.last !== undefined) {
    w.bytes(f.last);
    w.bool(ev.last);
  }
  w.byte(0x7d);
}

/** One encoder per op; the mapped type makes the compiler insist that every op of the union has one. */
const ENCODERS: { [O in EventOp]: (w: NdjsonWriter, ev: EventOf<O>) => void } = {
  set: op<'set'>((w, ev) => {
    w.bytes(f.value);
    w.bin(ev.value);
    expiry(w, ev.expireAt, ev.expireApprox);
  }),
  incrby: op<'incrby'>((w, ev) => {
    w.bytes(f.delta);
    w.numOrStr(ev.delta);
  }),
  incrbyfloat: op<'incrbyfloat'>((w, ev) => {
    w.bytes(f.delta);
    w.str(ev.delta);
  }),
  append: op<'append'>((w, ev) => {
    w.bytes(f.value);
    w.bin(ev.value);
  }),
  setrange: op<'setrange'>((w, ev) => {
    w.bytes(f.offset);
    w.num(ev.offset);
    w.bytes(f.value);
    w.bin(ev.value);
  }),
  setbit: op<'setbit'>((w, ev) => {
    w.bytes(f.offset);
    w.num(ev.offset);
    w.bytes(f.bit);
    w.num(ev.bit);
  }),
  bitfield: op<'bitfield'>((w, ev) => {
    w.bytes(f.ops);
    w.value(ev.ops);
  }),
  bitop: op<'bitop'>((w, ev) => {
    w.bytes(f.operation);
    w.str(ev.operation);
    w.bytes(f.sources);
    w.binArray(ev.sources);
  }),
  pfadd: op<'pfadd'>((w, ev) => {
    w.bytes(f.elements);
    w.binArray(ev.elements);
  }),
  pfmerge: op<'pfmerge'>((w, ev) => {
    w.bytes(f.sources);
    w.binArray(ev.sources);
  }),
  'hll-cache': none,
  del: none,
  expire: op<'expire'>((w, ev) => expiry(w, ev.expireAt, ev.expireApprox)),
  persist: op<'persist'>((w) => expiry(w, null, undefined)),
  rename: op<'rename'>((w, ev) => {
    w.bytes(f.destKey);
    w.bin(ev.destKey);
  }),
  move: op<'move'>((w, ev) => {
    w.bytes(f.destDb);
    w.num(ev.destDb);
  }),
  copy: op<'copy'>((w, ev) => {
    w.bytes(f.destKey);
    w.bin(ev.destKey);
    w.bytes(f.destDb);
    w.num(ev.destDb);
    w.bytes(f.replace);
    w.bool(ev.replace);
  }),
  restore: op<'restore'>((w, ev) => {
    w.bytes(f.payload);
    w.bin(ev.payload);
    w.bytes(f.replace);
    w.bool(ev.replace);
    if (ev.idleTime !== undefined) {
      w.bytes(f.idleTime);
      w.num(ev.idleTime);
    }
    if (ev.frequency !== undefined) {
      w.bytes(f.frequency);
      w.num(ev.frequency);
    }
    expiry(w, ev.expireAt, ev.expireApprox);
  }),
  store: op<'store'>((w, ev) => {
    w.bytes(f.command);
    w.str(ev.command);
    w.bytes(f.sources);
    w.binArray(ev.sources);
    w.bytes(f.args);
    w.binArray(ev.args);
  }),
  flushdb: asyncOnly,
  flushall: asyncOnly,
  swapdb: op<'swapdb'>((w, ev) => {
    w.bytes(f.db1);
    w.num(ev.db1);
    w.bytes(f.db2);
    w.num(ev.db2);
  }),
  push: op<'push'>((w, ev) => {
    w.bytes(f.side);
    w.str(ev.side);
    w.bytes(f.elements);
    w.binArray(ev.elements);
  }),
  pop: op<'pop'>((w, ev) => {
    w.bytes(f.side);
    w.str(ev.side);
    w.bytes(f.count);
    w.num(ev.count);
  }),
  lmove: op<'lmove'>((w, ev) => {
    w.bytes(f.destKey);
    w.bin(ev.destKey);
    w.bytes(f.from);
    w.str(ev.from);
    w.bytes(f.to);
    w.str(ev.to);
  }),
  linsert: op<'linsert'>((w, ev) => {
    w.bytes(f.position);
    w.str(ev.position);
    w.bytes(f.pivot);
    w.bin(ev.pivot);
    w.bytes(f.element);
    w.bin(ev.element);
  }),
  lset: op<'lset'>((w, ev) => {
    w.bytes(f.index);
    w.num(ev.index);
    w.bytes(f.element);
    w.bin(ev.element);
  }),
  lrem: op<'lrem'>((w, ev) => {
    w.bytes(f.count);
    w.num(ev.count);
    w.bytes(f.element);
    w.bin(ev.element);
  }),
  ltrim: op<'ltrim'>((w, ev) => {
    w.bytes(f.start);
    w.num(ev.start);
    w.bytes(f.stop);
    w.num(ev.stop);
  }),
  sadd: membersOnly,
  srem: membersOnly,
  smove: op<'smove'>((w, ev) => {
    w.bytes(f.destKey);
    w.bin(ev.destKey);
    w.bytes(f.member);
    w.bin(ev.member);
  }),
  zadd: op<'zadd'>((w, ev) => {
    w.bytes(f.members);
    const m = ev.members;
    w.byte(0x5b);
    for (let i = 0; i < m.length; i++) {
      const p = m[i]!;
      w.bytes(i > 0 ? COMMA_OPEN : OPEN);
      w.bin(p[0]);
      w.byte(0x2c);
      w.numOrStr(p[1]);
      w.byte(0x5d);
    }
    w.byte(0x5d);
    w.bytes(f.flags);
    w.strArray(ev.flags);
  }),
  geoadd: op<'geoadd'>((w, ev) => {
    w.bytes(f.members);
    w.value(ev.members);
    w.bytes(f.flags);
    w.strArray(ev.flags);
  }),
  zrem: membersOnly,
  zremrange: op<'zremrange'>((w, ev) => {
    w.bytes(f.by);
    w.str(ev.by);
    if (ev.by === 'rank') {
      w.bytes(f.start);
      w.num(ev.start);
      w.bytes(f.stop);
      w.num(ev.stop);
    } else {
      w.bytes(f.min);
      w.bin(ev.min);
      w.bytes(f.max);
      w.bin(ev.max);
    }
  }),
  zpop: op<'zpop'>((w, ev) => {
    w.bytes(f.side);
    w.str(ev.side);
    w.bytes(f.count);
    w.num(ev.count);
  }),
  hset: op<'hset'>((w, ev) => {
    w.bytes(f.fields);
    w.binPairs(ev.fields);
    if (ev.fieldExpireAt !== undefined) {
      w.bytes(f.fieldExpireAt);
      if (ev.fieldExpireAt === null) w.bytes(NULL);
      else w.num(ev.fieldExpireAt);
    }
    if (ev.expireApprox !== undefined) {
      w.bytes(f.expireApprox);
      w.bool(ev.expireApprox);
    }
  }),
  hincrby: op<'hincrby'>((w, ev) => {
    w.bytes(f.field);
    w.bin(ev.field);
    w.bytes(f.delta);
    w.numOrStr(ev.delta);
  }),
  hincrbyfloat: op<'hincrbyfloat'>((w, ev) => {
    w.bytes(f.field);
    w.bin(ev.field);
    w.bytes(f.delta);
    w.str(ev.delta);
  }),
  hdel: fieldsOnly,
  hexpire: op<'hexpire'>((w, ev) => {
    w.bytes(f.fields);
    w.binArray(ev.fields);
    expiry(w, ev.expireAt, ev.expireApprox);
    if (ev.condition !== undefined) {
      w.bytes(f.condition);
      w.str(ev.condition);
    }
  }),
  hpersist: fieldsOnly,
  xadd: ordered,
  xtrim: ordered,
  xdel: op<'xdel'>((w, ev) => {
    if (ev.policy !== undefined) {
      w.bytes(f.policy);
      w.str(ev.policy);
    }
    w.bytes(f.ids);
    w.strArray(ev.ids);
  }),
  xack: op<'xack'>((w, ev) => {
    w.bytes(f.group);
    w.bin(ev.group);
    w.bytes(f.ids);
    w.strArray(ev.ids);
  }),
  xackdel: op<'xackdel'>((w, ev) => {
    w.bytes(f.group);
    w.bin(ev.group);
    if (ev.policy !== undefined) {
      w.bytes(f.policy);
      w.str(ev.policy);
    }
    w.bytes(f.ids);
    w.strArray(ev.ids);
  }),
  xclaim: ordered,
  xautoclaim: ordered,
  'xgroup-create': op<'xgroup-create'>((w, ev) => {
    w.bytes(f.group);
    w.bin(ev.group);
    w.bytes(f.id);
    w.str(ev.id);
    w.bytes(f.mkstream);
    w.bool(ev.mkstream);
    if (ev.entriesRead !== undefined) {
      w.bytes(f.entriesRead);
      w.num(ev.entriesRead);
    }
  }),
  'xgroup-setid': op<'xgroup-setid'>((w, ev) => {
    w.bytes(f.group);
    w.bin(ev.group);
    w.bytes(f.id);
    w.str(ev.id);
    if (ev.entriesRead !== undefined) {
      w.bytes(f.entriesRead);
      w.num(ev.entriesRead);
    }
  }),
  'xgroup-destroy': op<'xgroup-destroy'>((w, ev) => {
    w.bytes(f.group);
    w.bin(ev.group);
  }),
  'xgroup-createconsumer': groupConsumer,
  'xgroup-delconsumer': groupConsumer,
  xsetid: ordered,
  'function-load': op<'function-load'>((w, ev) => {
    w.bytes(f.code);
    w.bin(ev.code);
    w.bytes(f.replace);
    w.bool(ev.replace);
  }),
  'function-delete': op<'function-delete'>((w, ev) => {
    w.bytes(f.library);
    w.bin(ev.library);
  }),
  'function-flush': asyncOnly,
  'function-restore': op<'function-restore'>((w, ev) => {
    w.bytes(f.payload);
    w.bin(ev.payload);
    w.bytes(f.policy);
    w.str(ev.policy);
  }),
  publish: op<'publish'>((w, ev) => {
    w.bytes(f.channel);
    w.bin(ev.channel);
    w.bytes(f.message);
    w.bin(ev.message);
    w.bytes(f.sharded);
    w.bool(ev.sharded);
  }),
  command: op<'command'>((w, ev) => {
    w.bytes(f.unknown);
    w.bool(ev.unknown);
    w.bytes(f.args);
    w.binArray(ev.args);
    if (ev.reason !== undefined) {
      w.bytes(f.reason);
      w.str(ev.reason);
    }
  }),
  snapshot,
  resync: ordered,
  'snapshot-begin': ordered,
  'snapshot-end': ordered,
};

const shared = new NdjsonWriter();

/** One event as one line of JSON (no trailing newline), as a string. */
export function encodeEventString(ev: ChangeEvent): string {
  shared.reset();
  shared.event(ev);
  return shared.view().toString('utf8', 0, shared.length - 1);
}

/**
 * Whether `NdjsonWriter` has a writer for this op. Sinks that accept ops outside the union (the Kafka sink's state
 * rules can be taught new ones) encode the others with `encodeEventLine`.
 */
export function ndjsonEncodes(op: string): boolean {
  return Object.hasOwn(ENCODERS, op);
}
