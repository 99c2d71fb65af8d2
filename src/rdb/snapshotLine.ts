import type { NdjsonWriter } from '../events/NdjsonEncoder.js';
import { walkIntset } from './intset.js';
import { type PackedVisitor, walkListpack } from './listpack.js';
import { parseScoreText } from './packedValue.js';
import type { RdbPackedKey } from './records.js';
import { toScore } from './ValueDecoder.js';

/**
 * Snapshot lines of intset and listpack values written while walking the blob (RdbParser's onPackedKey), byte for
 * byte what `snapshotEvent` + NdjsonWriter write from the decoded record: elements as JSON strings (integers in
 * decimal, as Redis replies them), hash fields as `[field, value]` pairs, zset members as `[member, score]` with the
 * score a JSON number (or "inf"/"-inf"/"nan"), in the blob's order, which is Redis's for these encodings.
 */

/** `["a","b",…]` (sets). */
class Elements implements PackedVisitor {
  n = 0;
  constructor(private readonly w: NdjsonWriter) {}
  str(buf: Buffer, start: number, end: number): void {
    if (this.n++ > 0) this.w.byte(0x2c);
    this.w.binRange(buf, start, end);
  }
  int(v: number | bigint): void {
    if (this.n++ > 0) this.w.byte(0x2c);
    this.w.byte(0x22);
    this.w.digits(v);
    this.w.byte(0x22);
  }
}

/** `[["f","v"],…]` (hashes); with `scores`, `[["m",1.5],…]` (zsets). */
class Pairs implements PackedVisitor {
  n = 0;
  constructor(
    private readonly w: NdjsonWriter,
    private readonly scores: boolean,
  ) {}
  private open(): void {
    const w = this.w;
    if (this.n % 2 === 0) {
      if (this.n > 0) w.byte(0x2c);
      w.byte(0x5b);
    } else w.byte(0x2c);
  }
  private close(): void {
    if (this.n++ % 2 === 1) this.w.byte(0x5d);
  }
  str(buf: Buffer, start: number, end: number): void {
    this.open();
    if (this.scores && this.n % 2 === 1)
      this.w.numOrStr(toScore(parseScoreText(buf.toString('latin1', start, end))));
    else this.w.binRange(buf, start, end);
    this.close();
  }
  int(v: number | bigint): void {
    this.open();
    if (this.scores && this.n % 2 === 1) this.w.num(Number(v));
    else {
      this.w.byte(0x22);
      this.w.digits(v);
      this.w.byte(0x22);
    }
    this.close();
  }
}

/** The whole line of a packed key's snapshot event. */
export function writePackedSnapshot(
  w: NdjsonWriter,
  k: RdbPackedKey,
  replid: string,
  offset: number,
  seq: number,
  ts: number,
): void {
  w.snapshotHead(k.db, k.key, k.type, k.encoding);
  w.byte(0x5b);
  const v =
    k.layout === 'hash-listpack'
      ? new Pairs(w, false)
      : k.layout === 'zset-listpack'
        ? new Pairs(w, true)
        : new Elements(w);
  const b = k.blob;
  if (k.layout === 'intset') walkIntset(b.buf, b.start, b.end, k.blobBase, v);
  else walkListpack(b.buf, b.start, b.end, k.blobBase, v);
  w.byte(0x5d);
  w.snapshotTail(k.expireAt, replid, offset, seq, ts);
}
