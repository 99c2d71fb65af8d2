import { endianness } from 'node:os';

/**
 * The keys a SCAN returned, as 64-bit hashes in one growing typed array: 8 bytes a key instead of a JS string and a
 * hash-set entry (a 2.25M-key Set<string> cost verify more in inserts, lookups and garbage collection than comparing
 * the keys did). After `seal()` it answers membership by binary search and counts distinct keys.
 *
 * A hash is two independent 32-bit hashes of the key's bytes (FNV-1a and a multiply-rotate mix, each finished with
 * murmur3's fmix32). Two different keys share a hash with probability 2^-64: for a mirror key the master does not
 * have to be missed, it would have to collide with one of the master's N keys, about N / 2^64 (1e-13 for 2.5M keys).
 */
export class KeyHashes {
  private words = new Uint32Array(2 * 1024);
  private n = 0;
  private sealed = false;
  private distinctCount = 0;

  get size(): number {
    return this.n;
  }

  add(key: Uint8Array): void {
    if (this.sealed) throw new Error('internal: KeyHashes.add after seal');
    hashInto(key, probe, 0);
    this.push(probe[0] as number, probe[1] as number);
  }

  /** Sorts the hashes (as unsigned 64-bit: high word, then low); counts the distinct ones. */
  seal(): void {
    this.sealed = true;
    const all = new BigUint64Array(this.words.buffer, 0, this.n);
    all.sort();
    let distinct = 0;
    for (let i = 0; i < this.n; i++) if (i === 0 || all[i] !== all[i - 1]) distinct++;
    this.distinctCount = distinct;
  }

  /** Distinct keys added (SCAN may return a key more than once). */
  get distinct(): number {
    return this.distinctCount;
  }

  /** The hashes of this set that `other` lacks (both sealed), as a sealed set: one walk of both sorted arrays. */
  notIn(other: KeyHashes): KeyHashes {
    if (!this.sealed || !other.sealed) throw new Error('internal: KeyHashes.notIn before seal');
    const a = new BigUint64Array(this.words.buffer, 0, this.n);
    const b = new BigUint64Array(other.words.buffer, 0, other.n);
    const out = new KeyHashes();
    const o = new BigUint64Array(1);
    const ow = new Uint32Array(o.buffer);
    let j = 0;
    for (let i = 0; i < a.length; i++) {
      const x = a[i] as bigint;
      while (j < b.length && (b[j] as bigint) < x) j++;
      if (j < b.length && b[j] === x) continue;
      o[0] = x;
      out.push(ow[0] as number, ow[1] as number);
    }
    out.seal();
    return out;
  }

  private push(w0: number, w1: number): void {
    if (2 * this.n + 2 > this.words.length) {
      const grown = new Uint32Array(this.words.length * 2);
      grown.set(this.words);
      this.words = grown;
    }
    this.words[2 * this.n] = w0;
    this.words[2 * this.n + 1] = w1;
    this.n++;
  }

  has(key: Uint8Array): boolean {
    if (!this.sealed) throw new Error('internal: KeyHashes.has before seal');
    hashInto(key, probe, 0);
    const lo = probe[LO] as number;
    const hi = probe[HI] as number;
    const w = this.words;
    let a = 0;
    let b = this.n - 1;
    while (a <= b) {
      const m = (a + b) >>> 1;
      const mh = w[2 * m + HI] as number;
      const ml = w[2 * m + LO] as number;
      if (mh === hi && ml === lo) return true;
      if (mh < hi || (mh === hi && ml < lo)) a = m + 1;
      else b = m - 1;
    }
    return false;
  }
}

const probe = new Uint32Array(2);
/** Where the halves of a BigUint64Array element sit in its two Uint32Array words (the platform's byte order). */
const HI = endianness() === 'LE' ? 1 : 0;
const LO = 1 - HI;

function fmix32(x: number): number {
  let h = x ^ (x >>> 16);
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Writes the two 32-bit halves of `key`'s hash as the 64-bit element at out[at..at+1]. */
function hashInto(key: Uint8Array, out: Uint32Array, at: number): void {
  let h1 = 0x811c9dc5;
  let h2 = 0x9747b28c ^ key.length;
  for (let i = 0; i < key.length; i++) {
    const b = key[i] as number;
    h1 = Math.imul(h1 ^ b, 0x01000193);
    h2 = Math.imul(h2 ^ b, 0x5bd1e995);
    h2 = (h2 << 13) | (h2 >>> 19);
  }
  out[at + LO] = fmix32(h1 ^ key.length);
  out[at + HI] = fmix32(h2);
}
