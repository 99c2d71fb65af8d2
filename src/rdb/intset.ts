import { readInt64LE } from './packedValue.js';
import { RdbFormatError } from './RdbFormatError.js';

/** Decodes an intset blob (src/intset.c): encoding uint32 LE (2, 4 or 8), length uint32 LE, sorted LE integers. */
export function decodeIntset(buf: Buffer, start: number, end: number, base: number): Array<number | bigint> {
  const size = end - start;
  if (size < 8) throw new RdbFormatError(base, `intset of ${size} bytes is shorter than its header`);
  const width = buf.readUInt32LE(start);
  if (width !== 2 && width !== 4 && width !== 8)
    throw new RdbFormatError(base, `invalid intset encoding ${width}`);
  const count = buf.readUInt32LE(start + 4);
  if (8 + count * width !== size)
    throw new RdbFormatError(
      base + 4,
      `intset of ${count} x ${width}-byte integers does not fit ${size} bytes`,
    );
  const out: Array<number | bigint> = new Array(count);
  let p = start + 8;
  for (let i = 0; i < count; i++, p += width) {
    out[i] = width === 2 ? buf.readInt16LE(p) : width === 4 ? buf.readInt32LE(p) : readInt64LE(buf, p);
  }
  return out;
}
