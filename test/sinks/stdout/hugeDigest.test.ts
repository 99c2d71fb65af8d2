import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { binaryBlock, digestFile, textBlock } from '../../../bench/hugeValues.js';
import type { ChangeEvent } from '../../../src/events/ChangeEvent.js';
import { encodeEventLine } from '../../../src/events/EventEncoder.js';

/**
 * The checker the huge-value tests rely on (bench/hugeValues.ts digestFile): a line longer than 8 MB is scanned, its
 * string tokens over 64 KB decoded from the file in pieces. Here the lines are written by the whole-value encoder,
 * with the huge element in every position the tests meet, escapes straddling the 4 MB reads; the digest must be the
 * SHA-256 of the element, and must change when one byte of the file does.
 */
const MB = 1024 * 1024;
const source = { replid: 'c'.repeat(40), offset: 9, seq: 0, snapshot: false };
const repeat = (block: Buffer, n: number) => {
  const out = Buffer.allocUnsafe(n);
  for (let at = 0; at < n; at += block.length) block.copy(out, at, 0, Math.min(block.length, n - at));
  return out;
};
// Valid UTF-8 cut on a character boundary (the text block holds whole characters) and binary.
const text = repeat(textBlock(), textBlock().length * 1100);
const bin = repeat(binaryBlock(), 9 * MB + 7);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const key = (k: string) => Buffer.from(k);
const events: ChangeEvent[] = [
  { v: 1, op: 'hset', db: 0, key: key('h'), type: 'hash', fields: [[key('f'), text]], source, ts: 1 },
  { v: 1, op: 'sadd', db: 0, key: key('s'), type: 'set', members: [bin], source, ts: 1 },
  { v: 1, op: 'zadd', db: 0, key: key('z'), type: 'zset', members: [[text, 2]], flags: [], source, ts: 1 },
  {
    v: 1,
    op: 'snapshot',
    db: 0,
    key: key('x'),
    type: 'stream',
    encoding: 'stream-listpacks-3',
    value: { entries: [{ id: '1-1', fields: [[key('f'), bin]] }], groups: [], lastId: '1-1', length: 1 },
    expireAt: null,
    source: { ...source, snapshot: true },
    ts: 1,
  } as unknown as ChangeEvent,
];
const expected = { h: sha(text), s: sha(bin), z: sha(text), x: sha(bin) };

const dir = mkdtempSync(join(tmpdir(), 'redtail-hugedigest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('digestFile decodes huge elements from long lines', () => {
  const file = join(dir, 'events.ndjson');
  writeFileSync(file, `${events.map((e) => encodeEventLine(e)).join('\n')}\n`);

  it('every element exact, by its SHA-256', () => {
    expect(text.length).toBeGreaterThan(8 * MB);
    const d = digestFile(file, ['h', 's', 'z', 'x']);
    for (const [k, want] of Object.entries(expected)) {
      expect(d.get(k)?.lines, k).toBe(1);
      expect(d.get(k)?.sha256, k).toBe(want);
    }
    expect((d.get('z')!.events[0]!.members as unknown[][])[0]![1]).toBe(2);
  });

  it('a changed byte inside a huge element changes its digest', () => {
    // A byte in the middle of the set member's base64 (line 2): 'A' ↔ 'B' keeps it valid base64.
    const fd = openSync(file, 'r+');
    try {
      const at = Buffer.byteLength(encodeEventLine(events[0]!)) + 1 + 6 * MB;
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, at);
      b[0] = b[0] === 0x41 ? 0x42 : 0x41;
      writeSync(fd, b, 0, 1, at);
    } finally {
      closeSync(fd);
    }
    const d = digestFile(file, ['h', 's']);
    expect(d.get('h')?.sha256).toBe(expected.h);
    expect(d.get('s')?.sha256).not.toBe(expected.s);
  });
});
