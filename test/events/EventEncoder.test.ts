import { describe, expect, it } from 'vitest';
import type { ChangeEvent } from '../../src/events/ChangeEvent.js';
import { decodeBytes, encodeBytes, encodeEventLine, toJsonValue } from '../../src/events/EventEncoder.js';

describe('EventEncoder', () => {
  const binary = Buffer.from([0xff, 0xfe, 0x00, 0x80]);
  // Extra fields beyond the op's type exercise the generic encoding of scores, nested values and undefined.
  const event = {
    v: 1,
    op: 'hset',
    db: 3,
    key: Buffer.from('user:\u00e9\u{1f600}'),
    type: 'hash',
    fields: [
      [Buffer.from('name'), Buffer.from('a"b\\c\n\u0001')],
      [binary, Buffer.alloc(0)],
    ],
    score: Number.POSITIVE_INFINITY,
    nested: { list: [1, -2.5, null, true, 'x'], skip: undefined, big: 2 ** 53 },
    expireAt: null,
    source: { replid: 'r'.repeat(40), offset: 12345, seq: 0, snapshot: false },
    ts: 1700000000000,
  } as unknown as ChangeEvent;

  it('writes exactly what JSON.stringify writes for the Buffer-free form of the event', () => {
    expect(encodeEventLine(event)).toBe(JSON.stringify(toJsonValue(event)));
  });

  it('keeps valid UTF-8 as strings and base64-encodes anything else, reversibly', () => {
    const parsed = JSON.parse(encodeEventLine(event));
    expect(parsed.key).toBe('user:\u00e9\u{1f600}');
    expect(parsed.fields[1][0]).toEqual({ base64: binary.toString('base64') });
    expect(decodeBytes(parsed.fields[1][0])).toEqual(binary);
    expect(decodeBytes(parsed.fields[0][1])).toEqual(Buffer.from('a"b\\c\n\u0001'));
    expect(encodeBytes(Buffer.from('plain'))).toBe('plain');
    expect(parsed.score).toBeNull();
    expect('skip' in parsed.nested).toBe(false);
  });
});
