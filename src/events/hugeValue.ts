/**
 * Huge byte strings in NDJSON (issue 16). Redis accepts values up to `proto-max-bulk-len` (512 MB by default): the
 * base64 of such a value does not fit in one V8 string (at most 2^29 - 24 characters), and its escaped JSON text
 * written into the line buffer would cost several times the value. So a byte string of `HUGE_VALUE_BYTES` or more is
 * not copied into the line: the writer leaves a `HugeValue` reference where it goes, and the sink writes its JSON
 * token in chunks straight to the file. The chunks concatenated are byte for byte what the whole-value encoder
 * (`NdjsonWriter.bin`, i.e. JSON.stringify of the string or of `{"base64": ...}`) writes:
 *   - not valid UTF-8 → `{"base64":"…"}`, encoded in chunks of a multiple of 3 bytes, so no chunk but the last has
 *     padding and their concatenation is the base64 of the whole;
 *   - valid UTF-8 → `"…"`, escaped byte by byte: JSON.stringify escapes only `"`, `\` and code points below 0x20, all
 *     single bytes in UTF-8, so cutting the bytes anywhere (even inside a multi-byte character) escapes the same.
 */
import { isUtf8 } from 'node:buffer';

/** Byte strings this long or longer are written in chunks (see above); smaller ones are copied into the line. */
export const HUGE_VALUE_BYTES = 1 << 20;
/** Input bytes per chunk: a multiple of 3 (base64 alignment). At most 6× this is written at once (escapes). */
export const HUGE_CHUNK_BYTES = 3 << 20;

/** A byte string the line leaves out, to be written by `hugeValueChunks`. */
export class HugeValue {
  /** True: `{"base64":"…"}`; false: a JSON string. Decided once over the whole value (valid UTF-8 or not). */
  readonly base64: boolean;
  constructor(readonly value: Buffer) {
    this.base64 = !isUtf8(value);
  }
}

const BASE64_OPEN = Buffer.from('{"base64":"', 'latin1');
const BASE64_CLOSE = Buffer.from('"}', 'latin1');
const QUOTE = Buffer.from('"', 'latin1');

/** JSON.stringify's escape of each byte that needs one (bytes below 0x20, `"`, `\`), by byte value. */
const ESCAPES: Array<Buffer | undefined> = [];
for (let c = 0; c < 0x80; c++) {
  const json = JSON.stringify(String.fromCharCode(c)).slice(1, -1);
  if (json.length > 1) ESCAPES[c] = Buffer.from(json, 'latin1');
}

/**
 * The value's JSON token in chunks of at most 6 × HUGE_CHUNK_BYTES (+ the wrapper). Each chunk is a view of one
 * reused buffer, valid until the next one is asked for: write it before you call `next()`.
 */
export function* hugeValueChunks(h: HugeValue, chunkBytes = HUGE_CHUNK_BYTES): Generator<Buffer> {
  const v = h.value;
  const step = chunkBytes - (chunkBytes % 3) || 3;
  if (h.base64) {
    yield BASE64_OPEN;
    const out = Buffer.allocUnsafe((step / 3) * 4);
    for (let s = 0; s < v.length; s += step) {
      const e = Math.min(v.length, s + step);
      const n = out.write(v.toString('base64', s, e), 0, 'latin1');
      yield out.subarray(0, n);
    }
    yield BASE64_CLOSE;
    return;
  }
  yield QUOTE;
  const out = Buffer.allocUnsafe(step * 6);
  for (let s = 0; s < v.length; s += step) {
    const e = Math.min(v.length, s + step);
    yield out.subarray(0, escapeInto(out, v, s, e));
  }
  yield QUOTE;
}

/** Writes `v[s, e)` JSON-escaped into `out` from 0; returns the length. Runs without escapes are copied whole. */
function escapeInto(out: Buffer, v: Buffer, s: number, e: number): number {
  let p = 0;
  let run = s;
  for (let i = s; i < e; i++) {
    const c = v[i]!;
    if (c >= 0x20 && c !== 0x22 && c !== 0x5c) continue;
    if (i > run) p += v.copy(out, p, run, i);
    const esc = ESCAPES[c]!;
    for (let k = 0; k < esc.length; k++) out[p++] = esc[k]!;
    run = i + 1;
  }
  if (e > run) p += v.copy(out, p, run, e);
  return p;
}
