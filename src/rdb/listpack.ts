import { type PackedValue, readInt64LE } from './packedValue.js';
import { RdbFormatError } from './RdbFormatError.js';

/** Receives a packed encoding's elements in order: byte strings as ranges of the blob's buffer, integers as numbers. */
export interface PackedVisitor {
  str(buf: Buffer, start: number, end: number): void;
  int(v: number | bigint): void;
}

class Collect implements PackedVisitor {
  readonly out: PackedValue[] = [];
  str(buf: Buffer, start: number, end: number): void {
    this.out.push(buf.subarray(start, end));
  }
  int(v: number | bigint): void {
    this.out.push(v);
  }
}

/**
 * Decodes a listpack blob (src/listpack.c): a 6-byte header (total bytes uint32 LE, element count uint16 LE),
 * entries of <encoding><data><backlen>, and a 0xFF terminator. `base` is the absolute offset of buf[start] for
 * error messages. String elements are zero-copy views of `buf`.
 */
export function decodeListpack(buf: Buffer, start: number, end: number, base: number): PackedValue[] {
  const c = new Collect();
  walkListpack(buf, start, end, base, c);
  return c.out;
}

/** decodeListpack's walk, handing each element to `v` instead of collecting them; returns the element count. */
export function walkListpack(
  buf: Buffer,
  start: number,
  end: number,
  base: number,
  v: PackedVisitor,
): number {
  checkListpackHeader(buf, start, end, base);
  const declared = buf[start + 4]! | (buf[start + 5]! << 8);
  let count = 0;
  let p = start + 6;
  const last = end - 1;
  while (p < last) {
    const enc = buf[p]!;
    let entryLen: number;
    if (enc < 0x80) {
      v.int(enc);
      entryLen = 1;
    } else if (enc < 0xc0) {
      const len = enc & 0x3f;
      if (p + 1 + len > last) throw lpError(base, start, p, 'string entry runs past the end');
      v.str(buf, p + 1, p + 1 + len);
      entryLen = 1 + len;
    } else if (enc < 0xe0) {
      if (p + 2 > last) throw lpError(base, start, p, 'int13 entry runs past the end');
      let n = ((enc & 0x1f) << 8) | buf[p + 1]!;
      if (n >= 4096) n -= 8192;
      v.int(n);
      entryLen = 2;
    } else if (enc < 0xf0) {
      if (p + 2 > last) throw lpError(base, start, p, 'str12 header runs past the end');
      const len = ((enc & 0x0f) << 8) | buf[p + 1]!;
      if (p + 2 + len > last) throw lpError(base, start, p, 'string entry runs past the end');
      v.str(buf, p + 2, p + 2 + len);
      entryLen = 2 + len;
    } else {
      entryLen = wideEntry(buf, p, last, base, start, v);
    }
    count++;
    // The backlen field stores entryLen in 7-bit groups; its size is implied by entryLen.
    const backlen =
      entryLen < 128 ? 1 : entryLen < 16384 ? 2 : entryLen < 2097152 ? 3 : entryLen < 268435456 ? 4 : 5;
    p += entryLen + backlen;
    if (p > last) throw lpError(base, start, p - backlen, 'entry back-length runs past the end');
  }
  if (declared !== 0xffff && declared !== count)
    throw new RdbFormatError(base + 4, `listpack header says ${declared} elements, found ${count}`);
  return count;
}

/**
 * The listpack encodings from 0xF0 up: a string with a 32-bit length, or an integer of 16, 24, 32 or 64 bits. Hands
 * the element to `v`; returns the entry's length without its back-length.
 */
function wideEntry(
  buf: Buffer,
  p: number,
  last: number,
  base: number,
  start: number,
  v: PackedVisitor,
): number {
  const enc = buf[p]!;
  switch (enc) {
    case 0xf0: {
      if (p + 5 > last) throw lpError(base, start, p, 'str32 header runs past the end');
      const len = (buf[p + 1]! | (buf[p + 2]! << 8) | (buf[p + 3]! << 16) | (buf[p + 4]! << 24)) >>> 0;
      if (p + 5 + len > last) throw lpError(base, start, p, 'string entry runs past the end');
      v.str(buf, p + 5, p + 5 + len);
      return 5 + len;
    }
    case 0xf1:
      if (p + 3 > last) throw lpError(base, start, p, 'int16 entry runs past the end');
      v.int(buf.readInt16LE(p + 1));
      return 3;
    case 0xf2:
      if (p + 4 > last) throw lpError(base, start, p, 'int24 entry runs past the end');
      v.int(buf.readIntLE(p + 1, 3));
      return 4;
    case 0xf3:
      if (p + 5 > last) throw lpError(base, start, p, 'int32 entry runs past the end');
      v.int(buf.readInt32LE(p + 1));
      return 5;
    case 0xf4:
      if (p + 9 > last) throw lpError(base, start, p, 'int64 entry runs past the end');
      v.int(readInt64LE(buf, p + 1));
      return 9;
    default:
      throw lpError(base, start, p, `invalid entry encoding 0x${enc.toString(16)}`);
  }
}

/** Only the shallow check Redis does on load (header size and terminator), for lazy decoding. */
export function checkListpackHeader(buf: Buffer, start: number, end: number, base: number): void {
  const size = end - start;
  if (size < 7) throw new RdbFormatError(base, `listpack of ${size} bytes is shorter than its header`);
  const total =
    (buf[start]! | (buf[start + 1]! << 8) | (buf[start + 2]! << 16) | (buf[start + 3]! << 24)) >>> 0;
  if (total !== size) throw new RdbFormatError(base, `listpack header says ${total} bytes, blob has ${size}`);
  if (buf[end - 1] !== 0xff) throw new RdbFormatError(base + size - 1, 'listpack does not end with 0xFF');
}

function lpError(base: number, start: number, p: number, what: string): RdbFormatError {
  return new RdbFormatError(base + (p - start), `corrupt listpack: ${what}`);
}
