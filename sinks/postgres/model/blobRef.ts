import { createHash } from 'node:crypto';
import { HUGE_VALUE_BYTES } from '../../../src/events/hugeValue.js';

/**
 * Huge byte strings in the mirror (issue 16; docs/postgres.md, "Huge values"). A byte string of BLOB_BYTES or more
 * (a string value, or one element of a list, set, zset, hash or stream) is not put into jsonb: its bytes go to
 * `blob_chunks` under its SHA-256, and the jsonb holds `{"blob": {"bytes": N, "sha256": "<hex>"}}` where the byte
 * string would be. That object cannot be confused with a real value: a byte string is always a JSON string or
 * `{"base64": ...}`.
 *
 * In the in-memory model (model/types.ts) byte strings are latin1 JS strings, whose code units are all ≤ 0xFF. A huge
 * one is represented by a *placeholder*: U+0100 followed by its SHA-256 and length. No latin1 string can contain
 * U+0100, so a placeholder never equals a real byte string, and two placeholders are equal exactly when the contents
 * are (same SHA-256): set membership, hash fields, LREM/LINSERT pivots and SREM of a huge member all work without the
 * content in memory. What a placeholder cannot give is byte order against other strings: the mirror orders huge
 * members after all others (by SHA-256), and ops whose result depends on that order with a huge member involved
 * (lex ranges) are fetched from the master.
 */

/** Byte strings this long or longer are stored as blobs: the threshold of the NDJSON sink's chunked writing too. */
export const BLOB_BYTES = HUGE_VALUE_BYTES;

export interface BlobRef {
  bytes: number;
  /** Lower-case hex. */
  sha256: string;
}

const MARK = '\u0100';

/** SHA-256 of each huge Buffer already hashed: the same event value is referenced by `keys` and `changes`. */
const hashed = new WeakMap<Buffer, BlobRef>();

export function isHuge(b: Buffer): boolean {
  return b.length >= BLOB_BYTES;
}

export function blobRefOf(b: Buffer): BlobRef {
  let r = hashed.get(b);
  if (!r) {
    r = { bytes: b.length, sha256: createHash('sha256').update(b).digest('hex') };
    hashed.set(b, r);
  }
  return r;
}

export function blobJson(r: BlobRef): { blob: BlobRef } {
  return { blob: { bytes: r.bytes, sha256: r.sha256 } };
}

/** The BlobRef of a `{"blob": {...}}` JSON value, or null for anything else. */
export function blobFromJson(v: unknown): BlobRef | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const b = (v as { blob?: unknown }).blob;
  if (b === null || typeof b !== 'object') return null;
  const { bytes, sha256 } = b as { bytes?: unknown; sha256?: unknown };
  if (typeof bytes !== 'number' || typeof sha256 !== 'string') return null;
  return { bytes, sha256 };
}

export function placeholder(r: BlobRef): string {
  return `${MARK}${r.sha256}:${r.bytes}`;
}

export function isPlaceholder(s: string): boolean {
  return s.charCodeAt(0) === 0x100;
}

export function refOfPlaceholder(s: string): BlobRef {
  const i = s.indexOf(':');
  return { sha256: s.slice(1, i), bytes: Number(s.slice(i + 1)) };
}

/**
 * Blobs referenced by the JSON being built, collected while `collectBlobs` runs (the encoders call `noteBlob`). The
 * encoders are synchronous, so one module-level collector cannot mix two values.
 */
let collector: Set<string> | null = null;

export function noteBlob(r: BlobRef): void {
  collector?.add(r.sha256);
}

/** Runs `fn` and returns its result with the SHA-256s of the blobs its JSON references. */
export function collectBlobs<T>(fn: () => T): [T, string[]] {
  const outer = collector;
  const mine = new Set<string>();
  collector = mine;
  try {
    return [fn(), [...mine]];
  } finally {
    collector = outer;
    if (outer) for (const s of mine) outer.add(s);
  }
}

/** Order of the mirror's sets and hash fields: bytes, huge ones after all others by SHA-256 (see above). */
export function mirrorBufferOrder(a: Buffer, b: Buffer): number {
  const ha = isHuge(a);
  const hb = isHuge(b);
  if (!ha && !hb) return Buffer.compare(a, b);
  if (ha !== hb) return ha ? 1 : -1;
  const x = blobRefOf(a).sha256;
  const y = blobRefOf(b).sha256;
  return x < y ? -1 : x > y ? 1 : 0;
}
