import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeEventLine } from '../../src/events/EventEncoder.js';
import { crc64 } from '../../src/rdb/crc64.js';
import { RdbFormatError } from '../../src/rdb/RdbFormatError.js';
import { RdbParser } from '../../src/rdb/RdbParser.js';
import type { RdbKeyRecord, RdbSummary } from '../../src/rdb/records.js';
import { snapshotBeginEvent, snapshotEndEvent, snapshotEvent } from '../../src/rdb/snapshotEvent.js';
import { repoRoot } from '../harness/RedtailProcess.js';

const bin = path.join(repoRoot, 'bin', 'redtail.js');
const fixturesDir =
  [
    path.resolve(repoRoot, '../shared/fixtures/rdb'),
    path.resolve(repoRoot, '../../shared/fixtures/rdb'),
  ].find(existsSync) ?? path.resolve(repoRoot, '../shared/fixtures/rdb');

/** Event times differ between two runs; everything else must be the same bytes. */
const sameTimes = (s: string) => s.replace(/"ts":\d+/g, '"ts":0');

/**
 * What `redtail rdb FILE --markers [--stream-threshold N]` printed before its lines went through NdjsonWriter:
 * the RDB parser's records as snapshot events through JSON.stringify (encodeEventLine), one line each.
 */
function reference(
  file: Buffer,
  threshold: number | undefined,
  wanted: (rec: RdbKeyRecord) => boolean = () => true,
): string {
  let replid = '';
  let offset = 0;
  let seq = 0;
  let begun = false;
  const lines: string[] = [];
  const begin = (version: number) => {
    if (begun) return;
    begun = true;
    lines.push(encodeEventLine(snapshotBeginEvent({ replid, offset, seq: seq++ }, { rdbVersion: version })));
  };
  const parser = new RdbParser({
    streamThreshold: threshold,
    onAux(name, value) {
      if (name === 'repl-id') replid = value.toString('latin1');
      else if (name === 'repl-offset') offset = Number(value.toString('latin1'));
    },
    onKey(rec) {
      begin(0);
      if (!wanted(rec)) return;
      lines.push(encodeEventLine(snapshotEvent(rec, { replid, offset, seq: seq++ })));
    },
  });
  let summary: RdbSummary;
  try {
    parser.write(file);
    summary = parser.end();
  } catch (err) {
    if (!(err instanceof RdbFormatError)) throw err;
    // The CLI prints the same error after the lines (run() appends its stderr).
    return `${lines.map((l) => `${l}\n`).join('')}${err.message}\n`;
  }
  begin(summary.version);
  lines.push(encodeEventLine(snapshotEndEvent(summary, { replid, offset, seq: seq++ })));
  return lines.map((l) => `${l}\n`).join('');
}

function run(file: string, threshold: number | undefined, filters: string[] = []): string {
  const extra = threshold === undefined ? [] : ['--stream-threshold', String(threshold)];
  const r = spawnSync(process.execPath, [bin, 'rdb', file, '--markers', ...extra, ...filters], {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  return r.stdout + r.stderr;
}

/** An RDB 9 file (no checksum) of string keys with big values, so one read makes several MB of lines. */
function bigValues(withCrc = false): Buffer {
  const parts: Buffer[] = [Buffer.from('REDIS0009', 'latin1'), Buffer.from([0xfe, 0x00])];
  for (let i = 0; i < 12; i++) {
    const key = Buffer.from(`big:${i}`);
    const value = Buffer.alloc(700_000 + i, i % 2 === 0 ? 'v' : '\u0000');
    const len = Buffer.alloc(5);
    len[0] = 0x80;
    len.writeUInt32BE(value.length, 1);
    parts.push(Buffer.from([0x00, key.length]), key, len, value);
  }
  parts.push(Buffer.from([0xff]));
  const body = Buffer.concat(parts);
  const trailer = Buffer.alloc(8);
  if (withCrc) trailer.writeBigUInt64LE(crc64(body));
  return Buffer.concat([body, trailer]);
}

describe('redtail rdb prints the lines encodeEventLine printed', () => {
  it('for the 44 RDB fixtures, whole and with values in parts', () => {
    const files = readdirSync(fixturesDir).filter((f) => f.endsWith('.rdb'));
    expect(files.length).toBe(44);
    for (const f of files) {
      const file = path.join(fixturesDir, f);
      for (const threshold of [undefined, 16]) {
        const want = sameTimes(reference(readFileSync(file), threshold));
        expect(sameTimes(run(file, threshold)), `${f} ${threshold}`).toBe(want);
      }
    }
    // 88 runs of the CLI: on the shared 2-core machine under load this passed 60 s; a failure detector, not a limit.
  }, 240_000);

  it('for values that make more lines than one write takes', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'redtail-rdb-out-'));
    try {
      const file = path.join(dir, 'big.rdb');
      writeFileSync(file, bigValues());
      const got = run(file, undefined);
      expect(got.length).toBeGreaterThan(12 * 700_000);
      expect(sameTimes(got)).toBe(sameTimes(reference(readFileSync(file), undefined)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ends with exit 0 and says nothing when its reader quits early (`redtail rdb big.rdb | head`)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'redtail-rdb-epipe-'));
    try {
      const file = path.join(dir, 'big.rdb');
      writeFileSync(file, bigValues());
      // The reader takes the first chunk and closes the pipe while megabytes are still to come: the next write
      // fails with EPIPE (it was "redtail rdb: write EPIPE", exit 1).
      const child = spawn(process.execPath, [bin, 'rdb', file], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      let first = 0;
      child.stdout.once('data', (d: Buffer) => {
        first = d.length;
        child.stdout.destroy();
      });
      const [code] = (await once(child, 'close')) as [number | null];
      expect(first).toBeGreaterThan(0);
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with --db, --type and --key-pattern, and counts the same keys with --stats and --stats --deep', () => {
    const files = readdirSync(fixturesDir).filter((f) => f.endsWith('.rdb'));
    let checked = 0;
    for (const f of files) {
      const file = path.join(fixturesDir, f);
      const buf = readFileSync(file);
      const full = reference(buf, undefined);
      // Fixtures with string keys, several types or dbs: string keys take the parser's direct path.
      if (!full.includes('"type":"string"') || checked >= 4) continue;
      checked++;
      const keyText = (rec: RdbKeyRecord) => rec.key.toString('latin1');
      const cases: Array<[string[], (rec: RdbKeyRecord) => boolean]> = [
        [['--type', 'string'], (rec) => rec.type === 'string'],
        [['--type', 'hash'], (rec) => rec.type === 'hash'],
        [['--db', '1'], (rec) => rec.db === 1],
        [['--key-pattern', '*1*'], (rec) => keyText(rec).includes('1')],
      ];
      for (const [filters, wanted] of cases) {
        const want = sameTimes(reference(buf, undefined, wanted));
        expect(sameTimes(run(file, undefined, filters)), `${f} ${filters.join(' ')}`).toBe(want);
      }
      const stats = (deep: string[]) => {
        const r = spawnSync(process.execPath, [bin, 'rdb', file, '--stats', ...deep, '--ignore-checksum'], {
          encoding: 'utf8',
        });
        if (r.status !== 0) return null;
        const j = JSON.parse(r.stdout) as { types: unknown; encodings: unknown; keys: number };
        return { types: j.types, encodings: j.encodings, keys: j.keys };
      };
      expect(stats(['--deep']), f).toEqual(stats([]));
    }
    expect(checked).toBe(4);
  }, 240_000);

  it('checks the CRC64 of a big file on its second thread as the parser checks it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'redtail-rdb-crc-'));
    try {
      const good = bigValues(true);
      expect(good.length).toBeGreaterThan(4 << 20);
      const bad = Buffer.from(good);
      bad[bad.length - 3]! ^= 0x40;
      const inProcess = (buf: Buffer): string => {
        const parser = new RdbParser({ onKey() {} });
        try {
          parser.write(buf);
          return parser.end().checksum;
        } catch (err) {
          return (err as Error).message;
        }
      };
      expect(inProcess(good)).toBe('ok');
      expect(inProcess(bad)).toMatch(
        /^RdbFormatError at offset \d+: CRC64 mismatch: file says [0-9a-f]{16}, computed/,
      );
      for (const [name, buf] of [
        ['good', good],
        ['bad', bad],
      ] as const) {
        const file = path.join(dir, `${name}.rdb`);
        writeFileSync(file, buf);
        for (const mode of [['--stats'], ['--stats', '--deep'], ['--markers']]) {
          const r = spawnSync(process.execPath, [bin, 'rdb', file, ...mode], {
            encoding: 'utf8',
            maxBuffer: 1 << 28,
          });
          if (name === 'good') {
            expect(r.status, r.stderr).toBe(0);
            if (mode[0] === '--stats') expect(JSON.parse(r.stdout).checksum).toBe('ok');
            // Compared as a boolean: a diff of these lines would be megabytes.
            else expect(sameTimes(r.stdout) === sameTimes(reference(buf, undefined))).toBe(true);
          } else {
            expect(r.status).toBe(1);
            expect(r.stderr.trim()).toBe(inProcess(bad));
          }
        }
        const ignored = spawnSync(process.execPath, [bin, 'rdb', file, '--stats', '--ignore-checksum'], {
          encoding: 'utf8',
        });
        expect(JSON.parse(ignored.stdout).checksum).toBe(name === 'good' ? 'ok' : 'skipped');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
