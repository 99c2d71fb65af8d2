/**
 * CRC-64/Jones as Redis computes it for RDB files and DUMP payloads (src/crc64.c): reflected polynomial
 * 0x95ac9329ac4bc9b5 (normal form 0xad93d23594c935a9), initial value 0, no final xor; the check value of
 * "123456789" is 0xe9c6d914c4b8d9ca. The 64-bit register is kept as two uint32 halves so the hot loop stays in
 * Smi/int32 arithmetic (BigInt is ~50x slower), and slicing-by-8 tables process 8 bytes per iteration.
 */

const POLY_LO = 0xac4bc9b5;
const POLY_HI = 0x95ac9329;

/** T[k][n] for k in 0..7, stored as lo/hi halves at index k*256+n. */
const TLO = new Uint32Array(8 * 256);
const THI = new Uint32Array(8 * 256);

(function buildTables() {
  for (let n = 0; n < 256; n++) {
    let lo = n;
    let hi = 0;
    for (let b = 0; b < 8; b++) {
      const lsb = lo & 1;
      lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
      hi >>>= 1;
      if (lsb) {
        lo = (lo ^ POLY_LO) >>> 0;
        hi = (hi ^ POLY_HI) >>> 0;
      }
    }
    TLO[n] = lo;
    THI[n] = hi;
  }
  for (let k = 1; k < 8; k++) {
    for (let n = 0; n < 256; n++) {
      const plo = TLO[(k - 1) * 256 + n]!;
      const phi = THI[(k - 1) * 256 + n]!;
      const idx = plo & 0xff;
      TLO[k * 256 + n] = (((plo >>> 8) | (phi << 24)) ^ TLO[idx]!) >>> 0;
      THI[k * 256 + n] = ((phi >>> 8) ^ THI[idx]!) >>> 0;
    }
  }
})();

/** An incremental CRC64 register. */
export class Crc64 {
  lo = 0;
  hi = 0;

  update(buf: Uint8Array, start = 0, end = buf.length): void {
    let lo = this.lo;
    let hi = this.hi;
    let i = start;
    const stop8 = end - 8;
    while (i <= stop8) {
      const a = (lo ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24))) >>> 0;
      const b = (hi ^ (buf[i + 4]! | (buf[i + 5]! << 8) | (buf[i + 6]! << 16) | (buf[i + 7]! << 24))) >>> 0;
      const i7 = 7 * 256 + (a & 0xff);
      const i6 = 6 * 256 + ((a >>> 8) & 0xff);
      const i5 = 5 * 256 + ((a >>> 16) & 0xff);
      const i4 = 4 * 256 + (a >>> 24);
      const i3 = 3 * 256 + (b & 0xff);
      const i2 = 2 * 256 + ((b >>> 8) & 0xff);
      const i1 = 256 + ((b >>> 16) & 0xff);
      const i0 = b >>> 24;
      lo = (TLO[i7]! ^ TLO[i6]! ^ TLO[i5]! ^ TLO[i4]! ^ TLO[i3]! ^ TLO[i2]! ^ TLO[i1]! ^ TLO[i0]!) >>> 0;
      hi = (THI[i7]! ^ THI[i6]! ^ THI[i5]! ^ THI[i4]! ^ THI[i3]! ^ THI[i2]! ^ THI[i1]! ^ THI[i0]!) >>> 0;
      i += 8;
    }
    while (i < end) {
      const idx = (lo ^ buf[i]!) & 0xff;
      lo = (((lo >>> 8) | (hi << 24)) ^ TLO[idx]!) >>> 0;
      hi = ((hi >>> 8) ^ THI[idx]!) >>> 0;
      i++;
    }
    this.lo = lo;
    this.hi = hi;
  }

  /** True when the register equals the little-endian uint64 stored at buf[at..at+8] (how Redis writes it). */
  matchesLE(buf: Uint8Array, at: number): boolean {
    const lo = (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
    const hi = (buf[at + 4]! | (buf[at + 5]! << 8) | (buf[at + 6]! << 16) | (buf[at + 7]! << 24)) >>> 0;
    return lo === this.lo && hi === this.hi;
  }

  toBigInt(): bigint {
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }

  toHex(): string {
    return this.toBigInt().toString(16).padStart(16, '0');
  }
}

/** CRC64 of a whole buffer, as a BigInt (for tests and one-shot payloads). */
export function crc64(buf: Uint8Array, start = 0, end = buf.length): bigint {
  const c = new Crc64();
  c.update(buf, start, end);
  return c.toBigInt();
}
