import { createRequire } from 'node:module';

/**
 * CRC-32C (Castagnoli), the checksum of Kafka's RecordBatch v2 (KIP-98; Java's `Crc32C`, reflected polynomial
 * 0x82F63B78, initial value and final xor 0xFFFFFFFF), computed slicing-by-8: eight 256-entry tables let the loop
 * consume eight bytes per step instead of one. kafkajs' own `crc32C.js` works a byte at a time, which was a visible
 * share of its produce profile (bench/NOTES.md, K1).
 *
 * Batches of more than NATIVE_FROM bytes go to @node-rs/crc32 (SSE4.2/ARMv8 CRC instructions, a Node-API build
 * published per platform on npm) when it loads: 4–5 GB/s against this loop's 0.6–1.1 GB/s on the bench machine
 * (bench/NOTES.md, K5). Where it does not load, the loop below is the whole implementation.
 */

const POLY = 0x82f63b78;

/** TABLES[k][b]: the CRC of byte b followed by k zero bytes; TABLES[0] is the classic byte-at-a-time table. */
const TABLES: Int32Array[] = makeTables();

function makeTables(): Int32Array[] {
  const t0 = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t0[n] = c;
  }
  const tables = [t0];
  for (let k = 1; k < 8; k++) {
    const prev = tables[k - 1] as Int32Array;
    const t = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      const p = prev[n] as number;
      t[n] = (p >>> 8) ^ (t0[p & 0xff] as number);
    }
    tables.push(t);
  }
  return tables;
}

const [T0, T1, T2, T3, T4, T5, T6, T7] = TABLES as [
  Int32Array,
  Int32Array,
  Int32Array,
  Int32Array,
  Int32Array,
  Int32Array,
  Int32Array,
  Int32Array,
];

/** Below this many bytes a native call costs more than the JS loop (~130 ns against ~100 ns at 61 bytes). */
const NATIVE_FROM = 256;

type NativeCrc = (input: Buffer, initial?: number) => number;
const native: NativeCrc | null = loadNative();

function loadNative(): NativeCrc | null {
  try {
    const mod = createRequire(import.meta.url)('@node-rs/crc32') as { crc32c?: NativeCrc };
    return typeof mod.crc32c === 'function' ? mod.crc32c : null;
  } catch {
    return null;
  }
}

/** Which implementation long inputs use, for the stats line and the benchmark notes. */
export const crc32cImplementation: 'native' | 'js' = native === null ? 'js' : 'native';

/** CRC-32C of `buf[start, end)` as an unsigned 32-bit number. */
export function crc32c(buf: Buffer, start = 0, end = buf.length): number {
  if (native !== null && end - start >= NATIVE_FROM) return native(buf.subarray(start, end)) >>> 0;
  return crc32cJs(buf, start, end);
}

/** The slicing-by-8 loop (exported so the tests check it on its own, whichever implementation `crc32c` uses). */
export function crc32cJs(buf: Uint8Array, start = 0, end = buf.length): number {
  let crc = ~0;
  let i = start;
  // Eight bytes per step: the running CRC is folded into the first four, each byte then looked up in the table for
  // its distance to the end of the block.
  for (const last = end - 8; i <= last; i += 8) {
    const a =
      crc ^
      ((buf[i] as number) |
        ((buf[i + 1] as number) << 8) |
        ((buf[i + 2] as number) << 16) |
        ((buf[i + 3] as number) << 24));
    crc =
      (T7[a & 0xff] as number) ^
      (T6[(a >>> 8) & 0xff] as number) ^
      (T5[(a >>> 16) & 0xff] as number) ^
      (T4[a >>> 24] as number) ^
      (T3[buf[i + 4] as number] as number) ^
      (T2[buf[i + 5] as number] as number) ^
      (T1[buf[i + 6] as number] as number) ^
      (T0[buf[i + 7] as number] as number);
  }
  for (; i < end; i++) crc = (crc >>> 8) ^ (T0[(crc ^ (buf[i] as number)) & 0xff] as number);
  return ~crc >>> 0;
}
