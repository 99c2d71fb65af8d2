/**
 * Elements of Redis's packed encodings (listpack, ziplist, intset) are either byte strings or integers. Integers
 * stay numbers (BigInt outside the safe range) until a caller needs their string form, because streams read
 * them as numbers and most other callers only want Buffers at the end.
 */
export type PackedValue = Buffer | number | bigint;

/** The byte string Redis would return for a packed element (integers in decimal, as Redis replies them). */
export function packedToBuffer(v: PackedValue): Buffer {
  return typeof v === 'object' ? v : Buffer.from(String(v), 'latin1');
}

/** Reads a signed little-endian 64-bit integer as a number when exact, else a BigInt. */
export function readInt64LE(buf: Uint8Array, at: number): number | bigint {
  const lo = (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
  const hi = buf[at + 4]! | (buf[at + 5]! << 8) | (buf[at + 6]! << 16) | (buf[at + 7]! << 24);
  if (hi >= -0x200000 && hi < 0x200000) return hi * 0x100000000 + lo;
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** Parses the decimal/float text of a packed zset score the way Redis does (strtod semantics for inf/nan). */
export function parseScore(v: PackedValue): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  return parseScoreText(v.toString('latin1'));
}

/** parseScore of a score's text (latin1, one char per byte). */
export function parseScoreText(text: string): number {
  const s = text.trim().toLowerCase();
  if (s === 'inf' || s === '+inf' || s === 'infinity' || s === '+infinity') return Number.POSITIVE_INFINITY;
  if (s === '-inf' || s === '-infinity') return Number.NEGATIVE_INFINITY;
  if (s === 'nan' || s === '-nan') return Number.NaN;
  return Number(s);
}
