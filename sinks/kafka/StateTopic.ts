import type { ChangeEvent } from '../../src/events/ChangeEvent.js';
import { toJsonValue } from '../../src/events/EventEncoder.js';

/**
 * What an event does to the compacted state topic:
 * - `value`: the event carries the key's complete new value; the record holds it.
 * - `tombstone`: the key is gone; a null value lets compaction drop it.
 * - `unknown`: the key changed but the event does not say to what (INCR, HSET, ...). A marker record with
 *   `exact: false` replaces the old value, so the topic never shows a stale value as current.
 * - `ignore`: no per-key effect the topic can express (FLUSHDB names no keys; see docs/kafka.md).
 */
export type StateEffect = 'value' | 'tombstone' | 'unknown' | 'ignore';

export type StateRule = StateEffect | ((ev: ChangeEvent) => StateEffect);

/**
 * The op table. Ops not listed are `unknown` when they carry a key and `ignore` otherwise. Extend it as the
 * command normalization makes more ops exact.
 */
export const STATE_RULES: Record<string, StateRule> = {
  snapshot: 'value',
  set: (ev) => ('value' in ev && ev.value !== undefined ? 'value' : 'unknown'),
  del: 'tombstone',
  unlink: 'tombstone',
  expired: 'tombstone',
  evicted: 'tombstone',
  flushdb: 'ignore',
  flushall: 'ignore',
};

export function stateEffect(ev: ChangeEvent, rules: Record<string, StateRule> = STATE_RULES): StateEffect {
  const rule = rules[ev.op];
  const effect = typeof rule === 'function' ? rule(ev) : rule;
  if (effect !== undefined) return ev.key === undefined ? 'ignore' : effect;
  return ev.key === undefined ? 'ignore' : 'unknown';
}

const ENVELOPE = new Set(['v', 'op', 'db', 'key', 'source', 'ts']);

/**
 * The state record's value: the key's value and type (plus any other payload field such as an expiry) with where
 * it came from; `exact` tells whether `value` is authoritative.
 */
export function stateValue(ev: ChangeEvent, effect: 'value' | 'unknown'): string {
  const out: Record<string, unknown> = { v: 1, db: ev.db, key: ev.key, exact: effect === 'value' };
  if (effect === 'value') {
    const fields = ev as unknown as Record<string, unknown>;
    for (const k of Object.keys(ev)) if (!ENVELOPE.has(k)) out[k] = fields[k];
  } else {
    out.op = ev.op;
    if (typeof ev.type === 'string') out.type = ev.type;
  }
  out.source = { replid: ev.source.replid, offset: ev.source.offset };
  out.ts = ev.ts;
  return JSON.stringify(toJsonValue(out));
}
