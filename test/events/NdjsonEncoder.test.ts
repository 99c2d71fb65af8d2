import { isUtf8 } from 'node:buffer';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { normalizeCommand } from '../../src/commands/normalize.js';
import type { ChangeEvent } from '../../src/events/ChangeEvent.js';
import { encodeEventLine } from '../../src/events/EventEncoder.js';
import { encodeEventString, NdjsonWriter } from '../../src/events/NdjsonEncoder.js';
import { rdbSnapshot } from '../../src/pipeline/RdbSnapshot.js';
import type { RdbKeyRecord } from '../../src/rdb/records.js';
import { snapshotBeginEvent, snapshotEndEvent, snapshotEvent } from '../../src/rdb/snapshotEvent.js';
import { hashFieldExpiryCases } from '../commands/hashFieldExpiryCases.js';
import { coreCases } from '../commands/propagationCases.js';
import type { Case, Cmd } from '../commands/propagationSuite.js';
import { vectorSetCases } from '../commands/vectorSetCases.js';
import { prng } from '../harness/prng.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// ../shared beside the main checkout; a worktree under /work/wt/<name> finds it one level further up.
const fixturesDir =
  [
    path.resolve(repoRoot, '../shared/fixtures/rdb'),
    path.resolve(repoRoot, '../../shared/fixtures/rdb'),
  ].find(existsSync) ?? path.resolve(repoRoot, '../shared/fixtures/rdb');
const REPLID = 'f'.repeat(40);

/** Both encoders on one event; the line must be the same bytes (compared as Buffers, so no string coercion hides a difference). */
/** A writer that lives across events, so what it caches (replid prefix, ts digits) is reused as in a sink. */
const longLived = new NdjsonWriter(16);

function same(ev: ChangeEvent): void {
  const reference = Buffer.from(`${encodeEventLine(ev)}\n`, 'utf8');
  const w = new NdjsonWriter(16);
  w.event(ev);
  expect(Buffer.compare(w.view(), reference), `${reference.toString()}\nvs\n${w.view().toString()}`).toBe(0);
  longLived.reset();
  longLived.event(ev);
  expect(Buffer.compare(longLived.view(), reference)).toBe(0);
  expect(encodeEventString(ev)).toBe(encodeEventLine(ev));
}

function argv(cmd: Cmd): Buffer[] {
  return cmd.map((a) => (Buffer.isBuffer(a) ? a : Buffer.from(String(a))));
}

/** Every literal command of the propagation cases (setup and run), normalized as the replicator would. */
function caseCommands(cases: Case[]): Cmd[] {
  const out: Cmd[] = [];
  for (const c of cases) {
    if (Array.isArray(c.setup)) out.push(...c.setup);
    if (Array.isArray(c.run)) out.push(...c.run);
  }
  return out;
}

describe('NdjsonWriter writes the bytes encodeEventLine writes', () => {
  it('for every command of the propagation cases, plus what masters rewrite them to', () => {
    const commands = [
      ...caseCommands(coreCases),
      ...caseCommands(hashFieldExpiryCases),
      ...caseCommands(vectorSetCases),
    ];
    // Forms masters send instead of what clients issue (docs/events.md), and options in unusual orders.
    commands.push(
      ['SET', 'k', 'v', 'PXAT', 4_102_444_800_000],
      ['SET', 'k', 'v', 'KEEPTTL'],
      ['SET', 'k', 'v', 'PX', 100],
      ['PEXPIREAT', 'k', 4_102_444_800_000],
      ['EXPIRE', 'k', 10],
      ['HPEXPIREAT', 'h', 4_102_444_800_000, 'NX', 'FIELDS', 2, 'a', 'b'],
      ['HSETEX', 'h', 'PXAT', 4_102_444_800_000, 'FIELDS', 1, 'f', 'v'],
      ['HSETEX', 'h', 'KEEPTTL', 'FIELDS', 1, 'f', 'v'],
      ['XADD', 's', 'NOMKSTREAM', 'MAXLEN', '=', '10', 'LIMIT', '5', '1-1', 'f', 'v'],
      ['XADD', 's', 'KEEPREF', 'MINID', '~', '0-1', '2-1', 'f', 'v'],
      [
        'XCLAIM',
        's',
        'g',
        'c',
        '0',
        '1-1',
        'LASTID',
        '1-1',
        'JUSTID',
        'FORCE',
        'RETRYCOUNT',
        '2',
        'TIME',
        '5',
      ],
      ['XAUTOCLAIM', 's', 'g', 'c', '0', '0-0', 'JUSTID', 'COUNT', '5'],
      ['XSETID', 's', '5-5', 'MAXDELETEDID', '1-1', 'ENTRIESADDED', '99999999999999999999'],
      ['XDELEX', 's', 'ACKED', 'IDS', '1', '1-1'],
      ['XACKDEL', 's', 'g', 'IDS', '1', '1-1'],
      ['RESTORE', 'k', '0', Buffer.from([0, 1, 2, 0xff]), 'REPLACE', 'IDLETIME', '5', 'FREQ', '3'],
      ['INCRBY', 'k', '-9223372036854775808'],
      ['ZADD', 'z', 'GT', 'CH', '+inf', 'a', '-inf', 'b', '1e300', 'c', '-0', 'd', '0.1', 'e'],
      [
        'BITFIELD',
        'b',
        'SET',
        'u8',
        '#1',
        '255',
        'INCRBY',
        'i64',
        '0',
        '-9223372036854775808',
        'OVERFLOW',
        'SAT',
      ],
      ['EVAL', 'return 1', '0'],
      ['NOT-A-COMMAND', Buffer.from([0xc3, 0x28]), '\u0000\u001f"\\'],
      ['SPOP', 'k'],
    );
    let events = 0;
    for (const [i, cmd] of commands.entries()) {
      const evs = normalizeCommand(argv(cmd), {
        db: i % 3,
        replid: REPLID,
        offset: 1000 + i,
        ts: 1_700_000_000_000 + i,
      });
      // Inside MULTI/EXEC the replicator sets `txn` after the fact, which puts it after `snapshot`; the normalizer's
      // own `txn` (from the context) sits before it: both orders must survive.
      if (i % 4 === 1) for (const e of evs) e.source.txn = String(i);
      for (const e of evs) same(e);
      if (i % 5 === 2) {
        const inTxn = normalizeCommand(argv(cmd), { db: 0, replid: REPLID, offset: 5, ts: 1, txn: '5' });
        for (const e of inTxn) same(e);
      }
      events += evs.length;
    }
    expect(events).toBeGreaterThan(300);
  });

  it('for every key of the 44 RDB fixtures, with the snapshot-begin and snapshot-end events', () => {
    const files = readdirSync(fixturesDir).filter((f) => f.endsWith('.rdb'));
    expect(files.length).toBeGreaterThanOrEqual(44);
    let keys = 0;
    for (const file of files) {
      const buf = readFileSync(path.join(fixturesDir, file));
      for (const streamThreshold of [64 * 1024 * 1024, 64]) {
        const events: ChangeEvent[] = [];
        const decoder = rdbSnapshot({ streamThreshold })({
          replid: REPLID,
          offset: 77,
          emit: (evs) => events.push(...evs),
        });
        let summary: ReturnType<typeof decoder.end> | null = null;
        try {
          for (let i = 0; i < buf.length; i += 4096) decoder.write(buf.subarray(i, i + 4096));
          summary = decoder.end();
        } catch {
          // Truncated or corrupt fixtures: what was decoded before the error still goes out.
        }
        for (const e of events) same(e);
        keys += events.length;
        same(
          snapshotBeginEvent({ replid: REPLID, offset: 77, seq: 0 }, { rdbVersion: 9, expectedKeys: null }),
        );
        if (summary)
          same(
            snapshotEndEvent(
              {
                version: Number(summary.rdbVersion),
                flavor: 'redis',
                keys: summary.keys,
                keysPerDb: summary.keysPerDb as Record<number, number>,
                bytes: summary.bytes,
                checksum: summary.checksum as never,
                functions: summary.functions as never,
              } as never,
              { replid: REPLID, offset: 77, seq: 1 },
            ),
          );
      }
    }
    expect(keys).toBeGreaterThan(1000);
  });

  it('for random binary and unicode keys, values, members and scores', () => {
    const rand = prng(11);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const pieces = [
      'a',
      'é',
      '😀',
      '\u2028',
      '\u0000',
      '\u001f',
      '"',
      '\\',
      '\n',
      '\t',
      '\u007f',
      '\ufeff',
      'ÿ',
    ];
    const bytes = (): Buffer => {
      const n = Math.floor(rand() * 40);
      if (rand() < 0.4) return Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
      // Runs of one escaped byte (zero padding, newlines) are copied from prebuilt runs, also past their length.
      if (rand() < 0.2)
        return Buffer.alloc(Math.floor(rand() * 600), pick(['x', '"', 'é', '\u0000', '\n', '\u001f']));
      return Buffer.from(Array.from({ length: n }, () => pick(pieces)).join(''), 'utf8');
    };
    const score = (): string =>
      pick([
        'inf',
        '-inf',
        '+inf',
        '0',
        '-0',
        '1e-7',
        '123456789012345678',
        '3.14159',
        '-2.5e+10',
        String(rand()),
      ]);
    let n = 0;
    for (let i = 0; i < 3000; i++) {
      const k = bytes();
      const cmds: Cmd[] = [
        ['SET', k, bytes(), 'PXAT', Math.floor(rand() * 4e12)],
        ['HSET', k, bytes(), bytes(), bytes(), bytes()],
        ['ZADD', k, score(), bytes(), score(), bytes()],
        ['LPUSH', k, bytes(), bytes()],
        ['SADD', k, bytes()],
        ['APPEND', k, bytes()],
        ['PUBLISH', bytes(), bytes()],
        ['RENAME', k, bytes()],
        ['XADD', k, `${i}-1`, bytes(), bytes()],
        ['INCRBY', k, String(Math.floor((rand() - 0.5) * 2 ** 60))],
        [bytes(), k, bytes()],
      ];
      for (const cmd of cmds) {
        const replid = i % 7 === 0 ? 'e'.repeat(40) : REPLID;
        const evs = normalizeCommand(argv(cmd), { db: i % 16, replid, offset: i, ts: i >> 2 });
        for (const e of evs) same(e);
        n += evs.length;
      }
    }
    expect(n).toBeGreaterThan(30_000);
  });

  it('reuses its buffer across lines and grows it for big values', () => {
    const w = new NdjsonWriter(8);
    const big = Buffer.alloc(1 << 20, 'v');
    const evs = normalizeCommand(argv(['SET', 'k', big]), { db: 0, replid: REPLID, offset: 1, ts: 1 });
    const small = normalizeCommand(argv(['DEL', 'k']), { db: 0, replid: REPLID, offset: 2, ts: 2 });
    w.event(evs[0]!);
    w.event(small[0]!);
    expect(w.view().toString()).toBe(`${encodeEventLine(evs[0]!)}\n${encodeEventLine(small[0]!)}\n`);
    w.reset();
    w.event(small[0]!);
    expect(w.view().toString()).toBe(`${encodeEventLine(small[0]!)}\n`);
  });

  it('writes a byte string as UTF-8 text exactly when isUtf8 accepts it, at every sequence boundary', () => {
    // Lead bytes and continuation candidates around every limit of Unicode's table 3-7 (overlongs, surrogates,
    // past U+10FFFF), whole, truncated at the end, and followed by an escaped byte.
    const leads = [
      0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5,
      0xff,
    ];
    const conts = [0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff];
    let utf8 = 0;
    let other = 0;
    for (const lead of leads)
      for (const c1 of conts)
        for (const c2 of conts)
          for (const c3 of [0x80, 0xc0]) {
            for (const tail of [[], [0x22, 0x00]]) {
              for (const n of [1, 2, 3, 4]) {
                const b = Buffer.from([0x61, 0x00, lead, c1, c2, c3].slice(0, 2 + n).concat(tail));
                same(
                  normalizeCommand([Buffer.from('SET'), b, b], {
                    db: 0,
                    replid: REPLID,
                    offset: 1,
                    ts: 1,
                  })[0]!,
                );
                if (isUtf8(b)) utf8++;
                else other++;
              }
            }
          }
    expect(utf8).toBeGreaterThan(500);
    expect(other).toBeGreaterThan(500);
    // Past 4 KB a value is checked with isUtf8 before the escaping copy: binary, text with escapes, and text whose one
    // invalid byte comes last.
    const rand = prng(5);
    const big = [
      Buffer.from(Array.from({ length: 10_000 }, () => Math.floor(rand() * 256))),
      Buffer.from('é\u0000"\n😀'.repeat(1500), 'utf8'),
      Buffer.concat([Buffer.from('a\u0001'.repeat(3000)), Buffer.from([0xc3])]),
    ];
    for (const b of big)
      same(
        normalizeCommand([Buffer.from('SET'), Buffer.from('k'), b], {
          db: 0,
          replid: REPLID,
          offset: 1,
          ts: 1,
        })[0]!,
      );
  });

  it('finds a byte that needs escaping or a UTF-8 check at any position and alignment of a long string', () => {
    // Long strings are scanned four bytes at a time from a 4-byte boundary of the underlying memory: every position
    // of the one special byte, at every alignment, in the words and in the bytes before and after them. The plain
    // neighbours 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7e are the values next to each limit of the word tests.
    const specials = [
      [0x00],
      [0x1f],
      [0x22],
      [0x5c],
      [0x7f],
      [0x80],
      [0xff],
      [0xc3, 0xa9],
      [0xe2, 0x82, 0xac],
    ];
    const plain = [0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7e, 0x78];
    // Not from Buffer's pool: offset 0 of its own memory, so `align` is the alignment.
    const backing = Buffer.alloc(256);
    const set = (v: Buffer) =>
      same(
        normalizeCommand([Buffer.from('SET'), Buffer.from('k'), v], {
          db: 0,
          replid: REPLID,
          offset: 1,
          ts: 1,
        })[0]!,
      );
    let n = 0;
    for (const len of [47, 48, 49, 64, 67, 130]) {
      for (let align = 0; align < 4; align++) {
        const value = backing.subarray(align, align + len);
        for (let i = 0; i < len; i++) value[i] = plain[(i * 5 + align) % plain.length]!;
        set(value);
        for (const sp of specials) {
          for (let at = 0; at + sp.length <= len; at++) {
            const saved = Buffer.from(value.subarray(at, at + sp.length));
            value.set(sp, at);
            set(value);
            value.set(saved, at);
            n++;
          }
        }
      }
    }
    expect(n).toBeGreaterThan(10_000);
  });

  it('does not reuse a snapshot prefix of another replid at the same offset', () => {
    const w = new NdjsonWriter(16);
    const key = {
      db: 0,
      key: Buffer.from('k'),
      type: 'string',
      encoding: 'string',
      rdbType: 0,
      layout: 'string',
    };
    const rec = { ...key, expireAt: null, value: Buffer.from('v'), offset: 9, size: 5 } as RdbKeyRecord;
    const evs: ChangeEvent[] = [
      snapshotEvent(rec, { replid: 'a'.repeat(40), offset: 0, seq: 0 }, 1),
      ...normalizeCommand(argv(['DEL', 'k']), { db: 0, replid: 'b'.repeat(40), offset: 0, ts: 2 }),
      snapshotEvent(rec, { replid: 'b'.repeat(40), offset: 0, seq: 0 }, 3),
    ];
    for (const ev of evs) w.event(ev);
    expect(w.view().toString()).toBe(evs.map((e) => `${encodeEventLine(e)}\n`).join(''));
  });
});
