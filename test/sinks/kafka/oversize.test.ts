import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildMessages } from '../../../sinks/kafka/messages.js';
import { measureEvent } from '../../../sinks/kafka/oversize.js';
import { TopicRouter } from '../../../sinks/kafka/TopicRouter.js';
import type { ChangeEvent } from '../../../src/events/ChangeEvent.js';
import { encodeEventLine } from '../../../src/events/EventEncoder.js';

/** Issue 16: events with huge values in the Kafka sink are never encoded whole; both oversize policies. */
const source = { replid: 'b'.repeat(40), offset: 77, seq: 0, snapshot: false };
const big = Buffer.alloc(3 * 1024 * 1024 + 1);
for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
const push: ChangeEvent = {
  v: 1,
  op: 'push',
  db: 0,
  key: Buffer.from('list'),
  type: 'list',
  side: 'right',
  elements: [Buffer.from('small'), big],
  source,
  ts: 1,
};
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const router = new TopicRouter('redtail.<db>');

describe('kafka oversize policies for huge values', () => {
  it('measures an event in chunks exactly as the whole-value encoder would write it', () => {
    const line = encodeEventLine(push);
    expect(measureEvent(push)).toEqual({ bytes: Buffer.byteLength(line), sha256: sha(line) });
  });

  it('truncate (default): the marker carries the size and SHA-256 of the event JSON', () => {
    const built = buildMessages([push], router, { maxMessageBytes: 1_000_000 });
    const m = built.messages[0]!.message;
    const marker = JSON.parse(String(m.value)) as Record<string, unknown>;
    const line = encodeEventLine(push);
    expect(marker.truncated).toEqual({ bytes: Buffer.byteLength(line), limit: 1_000_000, sha256: sha(line) });
    expect(m.headers?.truncated?.toString()).toBe('1');
    expect(built.truncated).toHaveLength(1);
  });

  it('reference: every field kept, the huge element replaced by its size and SHA-256', () => {
    const built = buildMessages([push], router, { maxMessageBytes: 1_000_000, oversize: 'reference' });
    const m = built.messages[0]!.message;
    const ev = JSON.parse(String(m.value)) as Record<string, unknown>;
    expect(ev.elements).toEqual(['small', { ref: { bytes: big.length, sha256: sha(big) } }]);
    expect(ev.source).toEqual(source);
    expect(ev.key).toBe('list');
    expect(m.headers?.oversize?.toString()).toBe('reference');
    expect(built.truncated).toHaveLength(0);
  });

  it('a huge value that fits the limit (maxMessageBytes above 1 MiB) is written whole, as the file sink would', () => {
    const small: ChangeEvent = { ...push, key: Buffer.from('other'), elements: [Buffer.from('x')] };
    // Between small events, so the views of the batch's shared buffer must stay in step around it.
    const built = buildMessages([small, push, small], router, { maxMessageBytes: 8 * 1024 * 1024 });
    expect(built.truncated).toHaveLength(0);
    const values = built.messages.map((m) => String(m.message.value));
    expect(values).toEqual([encodeEventLine(small), encodeEventLine(push), encodeEventLine(small)]);
  });

  it('only the events whose huge values reach the limit are cut; the others keep their lines', () => {
    const other: ChangeEvent = { ...push, key: Buffer.from('other'), elements: [Buffer.from('"quoted"\n')] };
    const built = buildMessages([other, push, other, push], router, { maxMessageBytes: 1_000_000 });
    expect(built.truncated).toHaveLength(2);
    const values = built.messages.map((m) => String(m.message.value));
    expect(values[0]).toBe(encodeEventLine(other));
    expect(values[2]).toBe(encodeEventLine(other));
    expect(JSON.parse(values[1]!).truncated.sha256).toBe(sha(encodeEventLine(push)));
    expect(JSON.parse(values[3]!).truncated.sha256).toBe(sha(encodeEventLine(push)));
  });

  it('a key too large even for a marker: the record is keyed by its SHA-256, and the marker names it', () => {
    const key = Buffer.alloc(2 * 1024 * 1024, 0xfe);
    const ev: ChangeEvent = { ...push, key, elements: [Buffer.from('v')] };
    const built = buildMessages([ev], router, { maxMessageBytes: 1_000_000 });
    const m = built.messages[0]!.message;
    const marker = JSON.parse(String(m.value)) as Record<string, unknown>;
    expect(m.key?.toString()).toBe(`sha256:${sha(key)}`);
    expect(marker.keySha256).toBe(sha(key));
    expect(marker.key).toBeUndefined();
    expect(marker.truncated).toEqual({
      bytes: Buffer.byteLength(encodeEventLine(ev)),
      limit: 1_000_000,
      sha256: sha(encodeEventLine(ev)),
    });
    expect(built.messages[0]!.size).toBeLessThan(1000);
  });

  it('reference that still does not fit falls back to the marker', () => {
    const built = buildMessages([push], router, { maxMessageBytes: 200, oversize: 'reference' });
    expect(built.truncated).toHaveLength(1);
    expect(String(built.messages[0]!.message.value)).toContain('"truncated"');
  });
});
