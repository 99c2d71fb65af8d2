import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { StreamTarget } from '../../src/link/ReplicationProtocol.js';
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

  it('a replayer that read the records before one still being written reads that one whole once it is finished', async () => {
    // The replayer reads ahead in windows; the bytes of a record still in parts are in the file (its header a hole
    // of zeros until finishCommands) but not yet part of the segment, so no window may keep them.
    const { spool } = setup();
    const parts = [Buffer.alloc(10_000, 1), Buffer.alloc(20_000, 2)];
    spool.appendCommandsPart(parts[0]!);
    const got: Array<{ bytes: Buffer; offset: number }> = [];
    const errors: Error[] = [];
    const target: StreamTarget = {
      resumePosition: () => null,
      fullResync: () => {},
      partialResync: () => {},
      snapshotData: () => {},
      snapshotEnd: () => {},
      commands: (bytes, offset) => got.push({ bytes: Buffer.from(bytes), offset }),
      ackOffset: () => 0,
    };
    const replayer = new SpoolReplayer(spool, {
      target,
      logger: pino({ level: 'silent' }),
      onError: (err) => errors.push(err),
    });
    replayer.start({ seq: spool.segments[0]!.seq, pos: 0, skip: 0 }, null);
    for (let i = 0; i < 5 && !replayer.isCaughtUp; i++) await tick();
    expect(got.map((g) => g.offset)).toEqual([114]);
    spool.finishCommands(parts[1]!, 114 + 30_000);
    replayer.appended();
    for (let i = 0; i < 5 && got.length < 2; i++) await tick();
    replayer.stop();
    spool.close();
    expect(errors.map((e) => e.message)).toEqual([]);
    expect(got.map((g) => g.offset)).toEqual([114, 30_114]);
    expect(Buffer.compare(got[1]!.bytes, Buffer.concat(parts))).toBe(0);
  });
});
