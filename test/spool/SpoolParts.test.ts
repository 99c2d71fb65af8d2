import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Kind } from '../../src/spool/records.js';
import { Spool } from '../../src/spool/Spool.js';
import { SpoolReplayer } from '../../src/spool/SpoolReplayer.js';
import { readSpool } from './segments.js';

/** Issue 16: a big command's COMMANDS record written in parts as it arrives. */
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function open(dir: string): Spool {
  return Spool.open({ dir, maxBytes: 1 << 30, segmentBytes: 1 << 20, logger: pino({ level: 'silent' }) });
}

function setup(): { dir: string; spool: Spool } {
  const dir = mkdtempSync(join(tmpdir(), 'redtail-spool-parts-'));
  dirs.push(dir);
  const spool = open(dir);
  spool.append(Kind.Continue, Buffer.from('r'.repeat(40), 'latin1'), 100, 'r'.repeat(40));
  spool.append(Kind.Commands, Buffer.from('*1\r\n$4\r\nPING\r\n'), 114);
  return { dir, spool };
}

describe('Spool: COMMANDS records written in parts', () => {
  it('become one valid record, checksum and all, readable like any other', () => {
    const { dir, spool } = setup();
    const parts = [Buffer.alloc(700_000, 1), Buffer.alloc(900_000, 2), Buffer.alloc(3, 3)];
    spool.appendCommandsPart(parts[0]!);
    spool.appendCommandsPart(parts[1]!);
    spool.finishCommands(parts[2]!, 114 + 1_600_003);
    spool.append(Kind.Commands, Buffer.from('*1\r\n$4\r\nPING\r\n'), 1_600_117 + 14);
    expect(spool.end?.offset).toBe(1_600_131);
    spool.close();
    const records = readSpool(dir);
    const big = records.find((r) => r.payload.length === 1_600_003);
    expect(big).toBeDefined();
    expect(Buffer.compare(big!.payload, Buffer.concat(parts))).toBe(0);
    // Reopened, the spool verifies every checksum and keeps all four records.
    const again = open(dir);
    expect(again.end?.offset).toBe(1_600_131);
    again.close();
  });

  it('one cut off by a crash (never finished) is a torn tail: the next open drops it and keeps what came before', () => {
    const { dir, spool } = setup();
    spool.appendCommandsPart(Buffer.alloc(500_000, 7));
    spool.close();
    const again = open(dir);
    expect(again.end?.offset).toBe(114);
    again.close();
    expect(readSpool(dir).every((r) => r.payload.length < 500_000)).toBe(true);
  });

  it('one aborted by a lost connection leaves nothing behind', () => {
    const { dir, spool } = setup();
    spool.appendCommandsPart(Buffer.alloc(500_000, 7));
    spool.abortCommands();
    spool.append(Kind.Commands, Buffer.from('*1\r\n$4\r\nPING\r\n'), 128);
    spool.close();
    expect(readSpool(dir).map((r) => r.payload.length)).not.toContain(500_000);
    const again = open(dir);
    expect(again.end?.offset).toBe(128);
    again.close();
  });

  it('a replayer that read up to the start of one being written reads it whole once finished (no stale window)', async () => {
    const { spool } = setup();
    const got: Buffer[] = [];
    const errors: Error[] = [];
    const target = {
      resumePosition: () => null,
      ackOffset: () => 0,
      fullResync: () => {},
      partialResync: () => {},
      snapshotData: () => {},
      snapshotEnd: () => {},
      commands: (bytes: Buffer) => {
        got.push(Buffer.from(bytes));
      },
    };
    const replayer = new SpoolReplayer(spool, {
      target,
      logger: pino({ level: 'silent' }),
      onError: (e) => errors.push(e),
    });
    // The big record's first part is on disk (its header not yet) before the replayer reads the PING before it.
    spool.appendCommandsPart(Buffer.alloc(40_000, 5));
    replayer.start({ seq: spool.lastSeq, pos: 0, skip: 0 }, null);
    await new Promise((r) => setTimeout(r, 20));
    expect(got.map((b) => b.length)).toEqual([14]);
    spool.finishCommands(Buffer.alloc(10, 6), 114 + 40_010);
    replayer.appended();
    await new Promise((r) => setTimeout(r, 20));
    replayer.stop();
    spool.close();
    expect(errors.map((e) => e.message)).toEqual([]);
    expect(got.map((b) => b.length)).toEqual([14, 40_010]);
  });
});
