import { describe, expect, it } from 'vitest';
import { lzfDecompress } from '../../src/rdb/lzf.js';

/** lzf_d.c's loop, byte by byte: the reference the optimised copies must match. */
function reference(src: Uint8Array, outLen: number): Buffer {
  const out = Buffer.alloc(outLen);
  let ip = 0;
  let op = 0;
  while (ip < src.length) {
    const ctrl = src[ip++]!;
    if (ctrl < 32) {
      for (let k = 0; k <= ctrl; k++) out[op++] = src[ip++]!;
    } else {
      let len = ctrl >>> 5;
      if (len === 7) len += src[ip++]!;
      let ref = op - ((ctrl & 0x1f) << 8) - src[ip++]! - 1;
      for (let k = 0; k < len + 2; k++) out[op++] = out[ref++]!;
    }
  }
  return out;
}

/** A random well-formed LZF block: literal runs and back-references of every length and distance, overlapping too. */
function randomBlock(rand: () => number): { block: Buffer; outLen: number } {
  const bytes: number[] = [];
  let op = 0;
  for (let i = 0; i < 40; i++) {
    if (op === 0 || rand() < 0.3) {
      const run = 1 + Math.floor(rand() * 32);
      bytes.push(run - 1);
      for (let k = 0; k < run; k++) bytes.push(Math.floor(rand() * 4));
      op += run;
      continue;
    }
    const distance = 1 + Math.floor(rand() * Math.min(op, rand() < 0.5 ? 4 : 8192));
    const len = 3 + Math.floor(rand() * (rand() < 0.5 ? 10 : 262));
    const l = len - 2;
    const d = distance - 1;
    if (l < 7) bytes.push((l << 5) | (d >> 8), d & 0xff);
    else bytes.push((7 << 5) | (d >> 8), l - 7, d & 0xff);
    op += len;
  }
  return { block: Buffer.from(bytes), outLen: op };
}

describe('lzfDecompress', () => {
  it('gives what the byte-by-byte loop of lzf_d.c gives, for runs and overlapping references', () => {
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    for (let i = 0; i < 2000; i++) {
      const { block, outLen } = randomBlock(rand);
      const padded = Buffer.concat([Buffer.from([9, 9]), block]);
      expect(lzfDecompress(padded, 2, padded.length, outLen, 0).equals(reference(block, outLen))).toBe(true);
    }
  });
});
