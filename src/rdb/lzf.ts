import { RdbFormatError } from './RdbFormatError.js';

/**
 * Decompresses an LZF block (the liblzf format Redis uses for RDB strings, src/lzf_d.c). Every read and write is
 * bounds-checked, so corrupt input yields an RdbFormatError at `baseOffset` + the failing input position instead of
 * garbage or a RangeError.
 */
export function lzfDecompress(
  src: Uint8Array,
  start: number,
  end: number,
  outLen: number,
  baseOffset: number,
): Buffer {
  const out = Buffer.allocUnsafe(outLen);
  lzfDecompressInto(src, start, end, out, outLen, baseOffset);
  return out;
}

/**
 * lzfDecompress into out[0, outLen) of a caller's buffer (at least outLen bytes), so a reader that needs the bytes
 * only until its next string (`redtail rdb`'s direct path) reuses one scratch buffer instead of allocating.
 */
export function lzfDecompressInto(
  src: Uint8Array,
  start: number,
  end: number,
  out: Buffer,
  outLen: number,
  baseOffset: number,
): void {
  let ip = start;
  let op = 0;
  while (ip < end) {
    const ctrl = src[ip++]!;
    if (ctrl < 32) {
      const run = ctrl + 1;
      if (op + run > outLen) throw lzfError(baseOffset + ip - 1 - start, 'literal run overflows output');
      if (ip + run > end) throw lzfError(baseOffset + ip - 1 - start, 'literal run past end of input');
      if (run < 16) {
        for (let k = 0; k < run; k++) out[op + k] = src[ip + k]!;
      } else {
        out.set(src.subarray(ip, ip + run), op);
      }
      ip += run;
      op += run;
    } else {
      let len = ctrl >>> 5;
      if (len === 7) {
        if (ip >= end) throw lzfError(baseOffset + ip - start, 'back-reference length past end of input');
        len += src[ip++]!;
      }
      if (ip >= end) throw lzfError(baseOffset + ip - start, 'back-reference offset past end of input');
      let ref = op - ((ctrl & 0x1f) << 8) - src[ip++]! - 1;
      len += 2;
      if (ref < 0) throw lzfError(baseOffset + ip - 1 - start, 'back-reference before start of output');
      if (op + len > outLen) throw lzfError(baseOffset + ip - 1 - start, 'back-reference overflows output');
      if (len < 16) {
        for (let k = 0; k < len; k++) out[op++] = out[ref++]!;
      } else if (op - ref === 1) {
        // A run of one byte (zero padding, mostly): LZF's RLE case.
        // TypedArray's fill: Buffer's own fill validates its arguments first, which costs more than the run.
        fillBytes.call(out, out[ref]!, op, op + len);
        op += len;
      } else {
        // An overlapping reference repeats the `op - ref` bytes before it: copying what is already written in
        // growing steps gives what the byte-by-byte copy of lzf_d.c gives.
        let left = len;
        while (left > 0) {
          const n = Math.min(op - ref, left);
          out.copyWithin(op, ref, ref + n);
          op += n;
          left -= n;
        }
      }
    }
  }
  if (op !== outLen) throw lzfError(baseOffset + end - start, `decompressed ${op} bytes, expected ${outLen}`);
}

const fillBytes = Uint8Array.prototype.fill;

function lzfError(offset: number, what: string): RdbFormatError {
  return new RdbFormatError(offset, `corrupt LZF data: ${what}`);
}

/**
 * The largest output a well-formed LZF block of `compressedLen` bytes can produce: each 3-byte back-reference
 * yields at most 264 bytes. Used to reject corrupt lengths before allocating.
 */
export function lzfMaxOutput(compressedLen: number): number {
  return Math.ceil(compressedLen / 3) * 264 + 32;
}
