import { isUtf8 } from 'node:buffer';
import type { ChangeEvent } from './ChangeEvent.js';

/**
 * Encodes byte strings for JSON output: valid UTF-8 stays a plain JSON string, anything else becomes
 * `{"base64": "..."}` (docs/events.md). Redis keys and values are arbitrary bytes, so this is the only lossless
 * choice that keeps the common case readable.
 */
export function encodeBytes(buf: Buffer): string | { base64: string } {
  return isUtf8(buf) ? buf.toString('utf8') : { base64: buf.toString('base64') };
}

/** Inverse of `encodeBytes`, for consumers and tests. */
export function decodeBytes(value: string | { base64: string }): Buffer {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value.base64, 'base64');
}

/** Converts Buffers anywhere inside a value into their JSON encoding without going through toJSON. */
export function toJsonValue(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return encodeBytes(value);
  if (Array.isArray(value)) {
    const out = new Array(value.length);
    for (let i = 0; i < value.length; i++) out[i] = toJsonValue(value[i]);
    return out;
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value)) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = toJsonValue(v);
    }
    return out;
  }
  return value;
}

/**
 * One event as one line of JSON (no trailing newline), through a copy of the event with its Buffers encoded. The
 * NDJSON sinks use the faster `NdjsonWriter` (NdjsonEncoder.ts), which writes the same bytes.
 */
export function encodeEventLine(event: ChangeEvent): string {
  return JSON.stringify(toJsonValue(event));
}

/** Any object holding Buffers (e.g. a Kafka record that is not an event) as one line of JSON. */
export function encodeJsonLine(value: Record<string, unknown>): string {
  return JSON.stringify(toJsonValue(value));
}
