import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { decodeDumpPayload } from '../../src/rdb/dump.js';
import { RdbFormatError } from '../../src/rdb/RdbFormatError.js';
import { RdbParser } from '../../src/rdb/RdbParser.js';
import { prng } from '../harness/prng.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// Beside the main checkout, or one level higher from a worktree under wt/.
const fixturesDir =
  [
    path.resolve(repoRoot, '../shared/fixtures/rdb'),
    path.resolve(repoRoot, '../../shared/fixtures/rdb'),
  ].find(existsSync) ?? path.resolve(repoRoot, '../shared/fixtures/rdb');
const files = readdirSync(fixturesDir)
  .filter((f) => f.endsWith('.rdb'))
  .sort()
  .map((f) => ({ name: f, buf: readFileSync(path.join(fixturesDir, f)) }));

type Outcome = 'ok' | 'format-error';

function run(buf: Buffer, chunk: number, ignoreChecksum: boolean): Outcome {
  const p = new RdbParser({
    onKey: (r) => {
      // Touch the value so lazily built structures are exercised too.
      JSON.stringify(r.value ?? null, (_k, v) => (typeof v === 'bigint' ? String(v) : v));
    },
    ignoreChecksum,
  });
  try {
    for (let i = 0; i < buf.length; i += chunk) p.write(buf.subarray(i, i + chunk));
    p.end();
    return 'ok';
  } catch (err) {
    if (err instanceof RdbFormatError) {
      expect(err.message).toMatch(/^RdbFormatError at offset \d+: /);
      expect(err.offset).toBeGreaterThanOrEqual(0);
      expect(err.offset).toBeLessThanOrEqual(buf.length);
      return 'format-error';
    }
    throw err;
  }
}

describe('corrupt input', () => {
  it('every truncation of every fixture ends with an RdbFormatError at the truncation point', () => {
    const rand = prng(1);
    let cases = 0;
    for (const { buf } of files) {
      const offsets =
        buf.length <= 1500
          ? Array.from({ length: buf.length }, (_, i) => i)
          : Array.from({ length: 300 }, () => Math.floor(rand() * buf.length));
      for (const cut of offsets) {
        const chunk = 1 + Math.floor(rand() * 64);
        const p = new RdbParser({ onKey: () => {} });
        const prefix = buf.subarray(0, cut);
        let error: unknown;
        try {
          for (let i = 0; i < prefix.length; i += chunk) p.write(prefix.subarray(i, i + chunk));
          p.end();
        } catch (err) {
          error = err;
        }
        expect(error, `cut at ${cut}`).toBeInstanceOf(RdbFormatError);
        expect((error as RdbFormatError).offset).toBeLessThanOrEqual(cut);
        cases++;
      }
    }
    expect(cases).toBeGreaterThan(5000);
  });

  it('random bit flips end in a clean parse or an RdbFormatError, never another exception', () => {
    const rand = prng(42);
    const outcomes = { ok: 0, 'format-error': 0 };
    for (const { buf } of files) {
      for (let round = 0; round < 60; round++) {
        const copy = Buffer.from(buf);
        const flips = 1 + Math.floor(rand() * 3);
        for (let f = 0; f < flips; f++) {
          const at = 9 + Math.floor(rand() * (copy.length - 9));
          copy[at]! ^= 1 << Math.floor(rand() * 8);
        }
        const chunk = round % 2 === 0 ? copy.length : 1 + Math.floor(rand() * 100);
        outcomes[run(copy, chunk, round % 3 === 0)]++;
      }
    }
    // With the CRC64 checked, almost every flip must be caught one way or another.
    expect(outcomes['format-error']).toBeGreaterThan(outcomes.ok);
  });

  it('with the checksum ignored, byte-level garbage still only yields RdbFormatErrors', () => {
    const rand = prng(7);
    for (const { buf } of files) {
      for (let round = 0; round < 30; round++) {
        const copy = Buffer.from(buf);
        const at = 9 + Math.floor(rand() * (copy.length - 9));
        const len = Math.min(copy.length - at, 1 + Math.floor(rand() * 16));
        for (let k = 0; k < len; k++) copy[at + k] = Math.floor(rand() * 256);
        run(copy, 1 + Math.floor(rand() * 512), true);
      }
    }
  });

  it('a flipped bit is caught by the CRC64 even where the structure still parses', () => {
    const { buf } = files.find((f) => f.name === 'rdb_version_5_with_checksum.rdb')!;
    // Flip a bit inside a string value's bytes: "def" -> "deg".
    const copy = Buffer.from(buf);
    const at = copy.indexOf('def');
    copy[at + 2]! ^= 1;
    expect(() => run(copy, copy.length, false)).not.toThrow();
    expect(run(copy, copy.length, false)).toBe('format-error');
    expect(run(copy, copy.length, true)).toBe('ok');
  });

  it('corrupt huge lengths are rejected without allocating them', () => {
    const header = Buffer.from('REDIS0011');
    const cases: Array<[string, Buffer]> = [
      // A 4 GiB string value.
      ['32-bit length', Buffer.from([0x00, 0x01, 0x6b, 0x80, 0xff, 0xff, 0xff, 0xff, 0x61])],
      // A 2^60-byte string.
      ['64-bit length', Buffer.from([0x00, 0x01, 0x6b, 0x81, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x61])],
      // LZF claiming 2 GiB from 4 compressed bytes.
      [
        'LZF output size',
        Buffer.from([0x00, 0x01, 0x6b, 0xc3, 0x04, 0x80, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3, 4]),
      ],
      // A list of 2^32-1 elements with one present.
      ['element count', Buffer.from([0x01, 0x01, 0x6b, 0x80, 0xff, 0xff, 0xff, 0xff, 0x01, 0x61, 0xff])],
      // An intset blob claiming 2^32-1 entries.
      [
        'intset count',
        Buffer.from([0x0b, 0x01, 0x6b, 0x0c, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 0, 2, 0, 0xff]),
      ],
    ];
    for (const [what, body] of cases) {
      const before = process.memoryUsage().rss;
      const err = (() => {
        try {
          const p = new RdbParser({ onKey: () => {} });
          p.write(Buffer.concat([header, body]));
          p.end();
        } catch (e) {
          return e;
        }
        return null;
      })();
      expect(err, what).toBeInstanceOf(RdbFormatError);
      expect(process.memoryUsage().rss - before, what).toBeLessThan(200 * 1024 * 1024);
    }
  });

  it('DUMP payloads: truncations and flips give RdbFormatErrors', () => {
    // Type 0, the string "foo", RDB version 10, and a zero CRC64 footer.
    const rand = prng(3);
    const good = Buffer.from('0003666f6f0a00', 'hex');
    const withFooter = (body: Buffer) => Buffer.concat([body, Buffer.alloc(8)]);
    // A zero CRC means "not checked", like a server with rdbchecksum no.
    expect(decodeDumpPayload(withFooter(good)).value).toEqual(Buffer.from('foo'));
    for (let cut = 0; cut < good.length + 8; cut++) {
      const p = withFooter(good).subarray(0, cut);
      expect(() => decodeDumpPayload(p)).toThrow(RdbFormatError);
    }
    for (let i = 0; i < 200; i++) {
      const p = withFooter(good);
      p[Math.floor(rand() * 4)]! ^= 1 << Math.floor(rand() * 8);
      try {
        decodeDumpPayload(p);
      } catch (err) {
        expect(err).toBeInstanceOf(RdbFormatError);
      }
    }
  });
});
