import { createHash } from 'node:crypto';
import type { ChangeEvent } from '../../src/events/ChangeEvent.js';
import { encodeJsonLine } from '../../src/events/EventEncoder.js';
import { HUGE_VALUE_BYTES, hugeValueChunks } from '../../src/events/hugeValue.js';
import { NdjsonWriter } from '../../src/events/NdjsonEncoder.js';

/**
 * Kafka's oversize policies for events with huge byte strings (issue 16; docs/kafka.md#oversize-policy). A record
 * cannot exceed the broker's `message.max.bytes`, and an event holding a 512 MB value cannot even be encoded as one
 * string (V8 caps strings at 2^29 - 24 characters), so such an event is never encoded whole:
 *   - `truncate` (default): the truncation marker `{…, truncated: {bytes, limit, sha256}}` of messages.ts, its size
 *     and SHA-256 computed over the event's JSON written in chunks;
 *   - `reference`: the event keeps every field, but each byte string of HUGE_VALUE_BYTES or more is replaced by
 *     `{"ref": {"bytes": N, "sha256": "<hex of the value's bytes>"}}`. The consumer reads the value by the event's
 *     key (from Redis, or from an NDJSON file sink at the event's `source.offset`) and checks it against `sha256`.
 */
export type OversizePolicy = 'truncate' | 'reference';
export const OVERSIZE_POLICIES: readonly OversizePolicy[] = ['truncate', 'reference'];

/** Bytes of the event's byte strings of HUGE_VALUE_BYTES or more (0: nothing huge; encode it as usual). */
export function hugeBytesOf(ev: ChangeEvent): number {
  let n = 0;
  walk(ev, (b) => {
    if (b.length >= HUGE_VALUE_BYTES) n += b.length;
  });
  return n;
}

function walk(v: unknown, visit: (b: Buffer) => void): void {
  if (Buffer.isBuffer(v)) visit(v);
  else if (Array.isArray(v)) for (const x of v) walk(x, visit);
  else if (v !== null && typeof v === 'object')
    for (const k of Object.keys(v)) walk((v as Record<string, unknown>)[k], visit);
}

/** Length and SHA-256 of the event's JSON line (without the newline), written in chunks: never one string. */
export function measureEvent(ev: ChangeEvent): { bytes: number; sha256: string } {
  const w = new NdjsonWriter().deferHuge();
  w.event(ev);
  const h = createHash('sha256');
  let bytes = 0;
  const pieces = w.pieces();
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i]!;
    if (Buffer.isBuffer(p)) {
      // The writer ends the line with a newline; the JSON is what comes before it.
      const b = i === pieces.length - 1 ? p.subarray(0, p.length - 1) : p;
      h.update(b);
      bytes += b.length;
    } else
      for (const c of hugeValueChunks(p)) {
        h.update(c);
        bytes += c.length;
      }
  }
  return { bytes, sha256: h.digest('hex') };
}

/** The `reference` form: the event as JSON with each huge byte string replaced by its reference. */
export function referenceEvent(ev: ChangeEvent): Buffer {
  const replaced = replaceHuge(ev) as Record<string, unknown>;
  return Buffer.from(encodeJsonLine(replaced), 'utf8');
}

function replaceHuge(v: unknown): unknown {
  if (Buffer.isBuffer(v)) {
    if (v.length < HUGE_VALUE_BYTES) return v;
    return { ref: { bytes: v.length, sha256: createHash('sha256').update(v).digest('hex') } };
  }
  if (Array.isArray(v)) return v.map(replaceHuge);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) out[k] = replaceHuge((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}
