import { RdbFormatError } from './RdbFormatError.js';

/**
 * Decodes a zipmap blob (src/zipmap.c, Redis ≤ 2.4 small hashes): <zmlen><len>key<len><free>value[free bytes]...
 * 0xFF. Lengths below 254 take one byte; 254 announces a 4-byte little-endian length.
 */
export function decodeZipmap(buf: Buffer, start: number, end: number, base: number): Array<[Buffer, Buffer]> {
  if (end - start < 2) throw new RdbFormatError(base, 'zipmap shorter than its header');
  const out: Array<[Buffer, Buffer]> = [];
  let p = start + 1;
  const readLen = (): number => {
    if (p >= end) throw new RdbFormatError(base + (p - start), 'corrupt zipmap: length runs past the end');
    const b = buf[p]!;
    if (b < 254) {
      p += 1;
      return b;
    }
    if (b === 254) {
      if (p + 5 > end)
        throw new RdbFormatError(base + (p - start), 'corrupt zipmap: length runs past the end');
      const n = buf.readUInt32LE(p + 1);
      p += 5;
      return n;
    }
    p += 1;
    return -1;
  };
  for (;;) {
    const klen = readLen();
    if (klen < 0) break;
    if (p + klen > end) throw new RdbFormatError(base + (p - start), 'corrupt zipmap: key runs past the end');
    const key = buf.subarray(p, p + klen);
    p += klen;
    const vlen = readLen();
    if (vlen < 0) throw new RdbFormatError(base + (p - start), 'corrupt zipmap: key without value');
    if (p >= end) throw new RdbFormatError(base + (p - start), 'corrupt zipmap: free byte runs past the end');
    const free = buf[p++]!;
    if (p + vlen + free > end)
      throw new RdbFormatError(base + (p - start), 'corrupt zipmap: value runs past the end');
    out.push([key, buf.subarray(p, p + vlen)]);
    p += vlen + free;
  }
  if (p !== end) throw new RdbFormatError(base + (p - start), 'corrupt zipmap: bytes after the terminator');
  return out;
}
