import { describe, expect, it } from 'vitest';
import type { ChangeEvent } from '../../src/events/ChangeEvent.js';
import { HugeValue, hugeValueChunks } from '../../src/events/hugeValue.js';
import { NdjsonWriter } from '../../src/events/NdjsonEncoder.js';
import { prng } from '../harness/prng.js';

const source = { replid: 'a'.repeat(40), offset: 123, seq: 0, snapshot: false };

/** The lines as the huge path writes them: pieces in order, huge values in chunks of `chunk` input bytes. */
function chunked(events: ChangeEvent[], hugeAt: number, chunk: number): { bytes: Buffer; chunks: number } {
  const w = new NdjsonWriter(16).deferHuge(hugeAt);
  for (const e of events) w.event(e);
  const out: Buffer[] = [];
  let chunks = 0;
  for (const p of w.pieces()) {
    if (Buffer.isBuffer(p)) out.push(p);
    else
      for (const c of hugeValueChunks(p, chunk)) {
        out.push(Buffer.from(c));
        chunks++;
      }
  }
  return { bytes: Buffer.concat(out), chunks };
}

function whole(events: ChangeEvent[]): Buffer {
  const w = new NdjsonWriter(16);
  for (const e of events) w.event(e);
  return Buffer.from(w.view());
}

function randomBytes(n: number, seed: number): Buffer {
  const r = prng(seed);
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

/** Valid UTF-8 with every kind of character JSON escapes, and multi-byte ones that chunks cut in the middle. */
function escapyText(n: number, seed: number): Buffer {
  const r = prng(seed);
  const alphabet = [
    'a',
    '"',
    '\\',
    '\n',
    '\r',
    '\t',
    '\b',
    '\f',
    '\u0000',
    '\u001f',
    '\u007f',
    'é',
    '日',
    '😀',
    '\u2028',
    '/',
  ];
  const parts: string[] = [];
  for (let bytes = 0; bytes < n; ) {
    const c = alphabet[Math.floor(r() * alphabet.length)]!;
    parts.push(c);
    bytes += Buffer.byteLength(c);
  }
  return Buffer.from(parts.join(''), 'utf8');
}

const set = (key: string, value: Buffer): ChangeEvent => ({
  v: 1,
  op: 'set',
  db: 0,
  key: Buffer.from(key),
  type: 'string',
  value,
  expireAt: null,
  source,
  ts: 1_700_000_000_000,
});

describe('huge byte strings in chunks (issue 16)', () => {
  const values: Array<[string, Buffer]> = [
    ['binary, not a multiple of 3', randomBytes(3 * 1024 * 1024 + 1, 1)],
    ['binary, one byte over a chunk', randomBytes(999_999 + 2, 2)],
    ['valid UTF-8 with escapes', escapyText(2_500_000, 3)],
    ['printable ASCII', Buffer.alloc(1_100_000, 0x61)],
    ['control bytes only (6-byte escapes)', Buffer.alloc(700_001, 0x01)],
    ['UTF-8 but for its last byte', Buffer.concat([escapyText(600_000, 4), Buffer.of(0xc3)])],
  ];
  for (const [what, value] of values) {
    it(`${what}: the chunked line is byte for byte the whole-value line`, () => {
      const events = [set('k', value), set('small', Buffer.from('x"y'))];
      const reference = whole(events);
      // Chunk sizes that cut multi-byte characters and escapes anywhere; 3 MB is the sinks' default.
      for (const chunk of [7, 65_536, 1_000_003, 3 << 20]) {
        if (chunk < 1000 && value.length > 800_000) continue;
        const got = chunked(events, 1024, chunk);
        expect(Buffer.compare(got.bytes, reference), `${what}, chunk ${chunk}`).toBe(0);
        expect(got.chunks).toBeGreaterThanOrEqual(Math.ceil(value.length / chunk) + 2);
      }
    });
  }

  it('small chunk sizes on a short value cut every escape and character', () => {
    const value = escapyText(5000, 9);
    const reference = whole([set('k', value)]);
    for (const chunk of [1, 2, 3, 4, 5, 7, 11])
      expect(Buffer.compare(chunked([set('k', value)], 100, chunk).bytes, reference)).toBe(0);
    const bin = randomBytes(5000, 10);
    for (const chunk of [3, 6, 9, 30])
      expect(Buffer.compare(chunked([set('k', bin)], 100, chunk).bytes, whole([set('k', bin)]))).toBe(0);
  });

  it('huge list elements, hash values and snapshot values between small ones', () => {
    const big = escapyText(1_500_000, 5);
    const bin = randomBytes(1_200_000, 6);
    const events: ChangeEvent[] = [
      {
        v: 1,
        op: 'push',
        db: 0,
        key: Buffer.from('l'),
        type: 'list',
        side: 'right',
        elements: [Buffer.from('a'), big, bin],
        source,
        ts: 1,
      },
      {
        v: 1,
        op: 'hset',
        db: 0,
        key: Buffer.from('h'),
        type: 'hash',
        fields: [
          [Buffer.from('f'), bin],
          [big, Buffer.from('v')],
        ],
        fieldExpireAt: null,
        source,
        ts: 2,
      },
      {
        v: 1,
        op: 'xadd',
        db: 0,
        key: Buffer.from('s'),
        type: 'stream',
        id: '1-1',
        fields: [[Buffer.from('f'), big]],
        source,
        ts: 3,
      },
      {
        v: 1,
        op: 'snapshot',
        db: 0,
        key: bin,
        type: 'list',
        encoding: 'list-quicklist2',
        value: [big, Buffer.from('z')],
        expireAt: null,
        source: { ...source, snapshot: true },
        ts: 4,
      },
    ];
    const reference = whole(events);
    const got = chunked(events, 1 << 20, 1 << 20);
    expect(Buffer.compare(got.bytes, reference)).toBe(0);
    expect(got.chunks).toBeGreaterThan(6);
  });

  it('decides base64 over the whole value, never per chunk', () => {
    const h = new HugeValue(Buffer.concat([Buffer.alloc(10, 0x61), Buffer.of(0xff)]));
    expect(h.base64).toBe(true);
    // Each chunk is copied before the next is asked for (they share one buffer).
    const chunks: Buffer[] = [];
    for (const c of hugeValueChunks(h, 3)) chunks.push(Buffer.from(c));
    const text = Buffer.concat(chunks).toString('latin1');
    expect(JSON.parse(text)).toEqual({ base64: h.value.toString('base64') });
  });

  it('deferredBytes counts what each event left out; truncate drops a line with its deferred values', () => {
    const w = new NdjsonWriter(16).deferHuge(100);
    const a = set('a', Buffer.alloc(150, 0x61));
    const b = set('b', Buffer.from('small'));
    const c = { ...set('c', Buffer.alloc(120, 0xff)), key: Buffer.alloc(100, 0x6b) } as ChangeEvent;
    w.event(a);
    expect(w.deferredBytes).toBe(150);
    const start = w.length;
    w.event(c);
    // The key and the value of c, both at the threshold or above.
    expect(w.deferredBytes - 150).toBe(220);
    w.truncate(start);
    w.event(b);
    expect(w.deferredBytes).toBe(370);
    // What is left is a's line and b's, exactly as the whole-value encoder writes them.
    const out: Buffer[] = [];
    for (const p of w.pieces())
      out.push(Buffer.isBuffer(p) ? p : Buffer.concat([...hugeValueChunks(p)].map((x) => Buffer.from(x))));
    expect(Buffer.concat(out).toString()).toBe(whole([a, b]).toString());
    w.reset();
    expect(w.deferredBytes).toBe(0);
  });
});
