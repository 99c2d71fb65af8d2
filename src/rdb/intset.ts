import type { PackedVisitor } from './listpack.js';
import { readInt64LE } from './packedValue.js';
import { RdbFormatError } from './RdbFormatError.js';

/** Decodes an intset blob (src/intset.c): encoding uint32 LE (2, 4 or 8), length uint32 LE, sorted LE integers. */
export function decodeIntset(buf: Buffer, start: number, end: number, base: number): Array<number | bigint> {
  const out: Array<number | bigint> = [];
  walkIntset(buf, start, end, base, {
    str() {},
    int(v) {
      out.push(v);
    },
  });
  return out;
}

/** decodeIntset's checks, handing each integer to `v` instead of collecting them; returns the count. */
export function walkIntset(buf: Buffer, start: number, end: number, base: number, v: PackedVisitor): number {
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
  let p = start + 8;
  for (let i = 0; i < count; i++, p += width)
    v.int(width === 2 ? buf.readInt16LE(p) : width === 4 ? buf.readInt32LE(p) : readInt64LE(buf, p));
  return count;
}
