import { type PackedValue, readInt64LE } from './packedValue.js';
import { RdbFormatError } from './RdbFormatError.js';

/**
 * Decodes a ziplist blob (src/ziplist.c, the pre-7.0 packed encoding): header zlbytes uint32 LE, zltail uint32 LE,
 * zllen uint16 LE; entries of <prevlen><encoding><data>; terminator 0xFF.
 */
export function decodeZiplist(buf: Buffer, start: number, end: number, base: number): PackedValue[] {
  const size = end - start;
  if (size < 11) throw new RdbFormatError(base, `ziplist of ${size} bytes is shorter than its header`);
  const total = buf.readUInt32LE(start);
  if (total !== size) throw new RdbFormatError(base, `ziplist header says ${total} bytes, blob has ${size}`);
  if (buf[end - 1] !== 0xff) throw new RdbFormatError(base + size - 1, 'ziplist does not end with 0xFF');
  const declared = buf.readUInt16LE(start + 8);
  const out: PackedValue[] = [];
  let p = start + 10;
  const last = end - 1;
  while (p < last) {
    p += buf[p]! < 254 ? 1 : 5;
    if (p >= last) throw zlError(base, start, p, 'entry header runs past the end');
    const enc = buf[p]!;
    const top = enc >>> 6;
    if (top === 0) {
      const len = enc & 0x3f;
      if (p + 1 + len > last) throw zlError(base, start, p, 'string entry runs past the end');
      out.push(buf.subarray(p + 1, p + 1 + len));
      p += 1 + len;
    } else if (top === 1) {
      if (p + 2 > last) throw zlError(base, start, p, 'string header runs past the end');
      const len = ((enc & 0x3f) << 8) | buf[p + 1]!;
      if (p + 2 + len > last) throw zlError(base, start, p, 'string entry runs past the end');
      out.push(buf.subarray(p + 2, p + 2 + len));
      p += 2 + len;
    } else if (top === 2) {
      if (p + 5 > last) throw zlError(base, start, p, 'string header runs past the end');
      const len = buf.readUInt32BE(p + 1);
      if (p + 5 + len > last) throw zlError(base, start, p, 'string entry runs past the end');
      out.push(buf.subarray(p + 5, p + 5 + len));
      p += 5 + len;
    } else {
      let n: number;
      switch (enc) {
        case 0xc0:
          n = 2;
          break;
        case 0xd0:
          n = 4;
          break;
        case 0xe0:
          n = 8;
          break;
        case 0xf0:
          n = 3;
          break;
        case 0xfe:
          n = 1;
          break;
        default:
          if (enc > 0xf0 && enc < 0xfe) {
            out.push((enc & 0x0f) - 1);
            p += 1;
            continue;
          }
          throw zlError(base, start, p, `invalid entry encoding 0x${enc.toString(16)}`);
      }
      if (p + 1 + n > last) throw zlError(base, start, p, 'integer entry runs past the end');
      out.push(n === 8 ? readInt64LE(buf, p + 1) : buf.readIntLE(p + 1, n));
      p += 1 + n;
    }
  }
  // zllen saturates at 65535 for long ziplists; only smaller counts are authoritative.
  if (declared !== 0xffff && declared !== out.length)
    throw new RdbFormatError(base + 8, `ziplist header says ${declared} elements, found ${out.length}`);
  return out;
}

export function checkZiplistHeader(buf: Buffer, start: number, end: number, base: number): void {
  const size = end - start;
  if (size < 11) throw new RdbFormatError(base, `ziplist of ${size} bytes is shorter than its header`);
  const total = buf.readUInt32LE(start);
  if (total !== size) throw new RdbFormatError(base, `ziplist header says ${total} bytes, blob has ${size}`);
  if (buf[end - 1] !== 0xff) throw new RdbFormatError(base + size - 1, 'ziplist does not end with 0xFF');
}

function zlError(base: number, start: number, p: number, what: string): RdbFormatError {
  return new RdbFormatError(base + (p - start), `corrupt ziplist: ${what}`);
}
