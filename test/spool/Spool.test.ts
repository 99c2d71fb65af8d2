import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { SpoolError } from '../../src/spool/errors.js';
import { checksumOk, decodeHeader, encodeHeader, HEADER_BYTES, Kind } from '../../src/spool/records.js';
import { type Segment, Spool, type SpoolRecord } from '../../src/spool/Spool.js';
import { decodeSegment, readSpool, segmentBytes, segmentFiles } from './segments.js';

/*
 * The spool against real files in a temp dir. What is on disk is read back with a decoder written here from the
 * format's description (records.ts), not with the spool's own, so a wrong writer and a wrong reader cannot agree.
 */

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'redtail-spool-'));
  dirs.push(d);
  return d;
}

const isRoot = process.getuid?.() === 0;

/**
 * A tmpfs of `size` at a new temp dir (root only), unmounted when the test ends: after what the test registers
 * later with onTestFinished (those run in reverse order), so files it holds open are closed first.
 */
function tmpfs(size: string, ro = false): string {
  const d = mkdtempSync(join(tmpdir(), 'redtail-spool-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}${ro ? ',ro' : ''}`, 'tmpfs', d]);
  onTestFinished(() => {
    execFileSync('umount', [d]);
    rmSync(d, { recursive: true, force: true });
  });
  return d;
}

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** A real pino logger whose lines are kept for the test. */
function capture(): { logger: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => lines.push(JSON.parse(l)) });
  return { logger, lines };
}

const WARN = 40;
const ERROR = 50;

function open(dir: string, segmentBytes = 1000, lines?: LogLine[]): Spool {
  const logger = lines
    ? pino({ level: 'debug' }, { write: (l: string) => lines.push(JSON.parse(l)) })
    : capture().logger;
  return Spool.open({ dir, maxBytes: 1 << 30, segmentBytes, logger });
}

const readDisk = readSpool;
const diskBytes = segmentBytes;

/** A segment's records as the files hold them (the spool keeps only their count in memory). */
function recs(s: Segment): SpoolRecord[] {
  return decodeSegment(s.path).records.map((r) => ({
    seq: s.seq,
    pos: r.at,
    kind: r.kind as Kind,
    length: r.length,
    offset: r.offset,
    ...(r.kind === Kind.FullResync || r.kind === Kind.Continue
      ? { replid: r.payload.toString('latin1') }
      : {}),
  }));
}

/** The spool's in-memory view agrees with the files: same segments, record counts and byte counts. */
function expectConsistent(spool: Spool): void {
  const disk = readDisk(spool.dir);
  const byFile = new Map<string, number>();
  for (const r of disk) byFile.set(r.file, (byFile.get(r.file) ?? 0) + 1);
  for (const s of spool.segments) expect(byFile.get(s.path.slice(spool.dir.length + 1)) ?? 0).toBe(s.records);
  expect(spool.segments.reduce((n, s) => n + s.records, 0)).toBe(disk.length);
  expect(spool.bytes).toBe(diskBytes(spool.dir));
  for (const s of spool.segments) expect(statSync(s.path).size).toBe(s.size);
}

/** One RESP command; its length is what it adds to the replication offset. */
function resp(...args: string[]): Buffer {
  return Buffer.from(
    `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`,
  );
}

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);

/**
 * Writes a history as a master sends it: FULLRESYNC A at `base`, a snapshot in `snapshotChunks` chunks, its end,
 * then `batches` COMMANDS records of `perBatch` SETs each. Returns the offsets each COMMANDS record ends at.
 */
function writeHistory(
  spool: Spool,
  { base = 1000, snapshotChunks = 3, batches = 10, perBatch = 3, replid = A } = {},
): { commandEnds: number[]; commandStarts: number[]; end: number } {
  spool.append(Kind.FullResync, Buffer.from(replid, 'latin1'), base, replid);
  for (let i = 0; i < snapshotChunks; i++) spool.append(Kind.Snapshot, Buffer.alloc(300, i), base);
  spool.append(Kind.SnapshotEnd, Buffer.alloc(0), base);
  return appendCommands(spool, base, batches, perBatch);
}

function appendCommands(
  spool: Spool,
  from: number,
  batches: number,
  perBatch: number,
  tag = 'k',
): { commandEnds: number[]; commandStarts: number[]; end: number } {
  let offset = from;
  const commandEnds: number[] = [];
  const commandStarts: number[] = [];
  for (let b = 0; b < batches; b++) {
    const bytes = Buffer.concat(
      Array.from({ length: perBatch }, (_, i) => resp('SET', `${tag}:${b}:${i}`, 'v'.repeat(20 + b))),
    );
    commandStarts.push(offset);
    offset += bytes.length;
    spool.append(Kind.Commands, bytes, offset);
    commandEnds.push(offset);
  }
  return { commandEnds, commandStarts, end: offset };
}

/** Where a record is, for comparing with `locate`. */
function placeOf(spool: Spool, pred: (r: SpoolRecord) => boolean) {
  const r = spool.segments.flatMap(recs).find(pred);
  if (!r) throw new Error('no such record');
  return r;
}

describe('records', () => {
  it('round-trips every kind, empty and large payloads, offsets up to 2^53-1', () => {
    const payloads = [Buffer.alloc(0), Buffer.from('x'), Buffer.alloc(70_000, 7)];
    for (const kind of [Kind.FullResync, Kind.Snapshot, Kind.SnapshotEnd, Kind.Continue, Kind.Commands])
      for (const payload of payloads)
        for (const offset of [0, 1, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
          const h = encodeHeader(kind, payload, offset);
          expect(h.length).toBe(HEADER_BYTES);
          const d = decodeHeader(h);
          expect(d).toEqual({ kind, length: payload.length, offset, crc: h.readUInt32BE(13) });
          expect(checksumOk(h, 0, payload, d!.crc)).toBe(true);
          // At a position inside a larger buffer too.
          const framed = Buffer.concat([Buffer.alloc(5), h]);
          expect(decodeHeader(framed, 5)).toEqual(d);
        }
  });

  it('catches a flipped bit in any header byte or in the payload', () => {
    const payload = resp('SET', 'key', 'value');
    const h = encodeHeader(Kind.Commands, payload, 12345);
    const { crc } = decodeHeader(h)!;
    for (let i = 0; i < 13; i++)
      for (let bit = 0; bit < 8; bit++) {
        const bad = Buffer.from(h);
        bad[i]! ^= 1 << bit;
        const d = decodeHeader(bad);
        // Either not a header at all, or one whose checksum fails.
        if (d) expect(checksumOk(bad, 0, payload, crc)).toBe(false);
      }
    for (let i = 0; i < payload.length; i++) {
      const bad = Buffer.from(payload);
      bad[i]! ^= 0x10;
      expect(checksumOk(h, 0, bad, crc)).toBe(false);
    }
  });

  it('refuses unknown kinds and offsets that are no replication offset', () => {
    const h = encodeHeader(Kind.Commands, Buffer.from('x'), 1);
    for (const kind of [0, 6, 255]) {
      const bad = Buffer.from(h);
      bad[0] = kind;
      expect(decodeHeader(bad)).toBeNull();
    }
    for (const offset of [-1, 1.5, Number.NaN, 2 ** 60]) {
      const bad = Buffer.from(h);
      bad.writeDoubleBE(offset, 5);
      expect(decodeHeader(bad)).toBeNull();
    }
  });
});

describe('open', () => {
  it('creates a missing directory and starts empty', () => {
    const dir = join(tempDir(), 'a', 'b', 'spool');
    const spool = open(dir);
    expect(statSync(dir).isDirectory()).toBe(true);
    expect(spool.segments).toEqual([]);
    expect(spool.bytes).toBe(0);
    expect(spool.end).toBeNull();
    expect(spool.locate(null)).toBeNull();
    expect(spool.locate({ replid: A, offset: 1, db: 0 })).toBeNull();
    // The write probe leaves nothing behind.
    expect(readdirSync(dir)).toEqual([]);
    spool.close();
  });

  it('ignores files that are not segments', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'notes.txt'), 'x');
    writeFileSync(join(dir, '12.seg'), 'not a 16-digit name');
    const spool = open(dir);
    expect(spool.segments).toEqual([]);
    spool.append(Kind.Continue, Buffer.from(A, 'latin1'), 5, A);
    expect(spool.end).toEqual({ replid: A, offset: 5 });
    expect(readFileSync(join(dir, '12.seg'), 'utf8')).toBe('not a 16-digit name');
    spool.close();
  });
});

describe('append and reopen', () => {
  it('rolls over into new segments and reads back the same records after a reopen', () => {
    const dir = tempDir();
    const spool = open(dir, 1000);
    const { end } = writeHistory(spool, { batches: 40 });
    expect(spool.end).toEqual({ replid: A, offset: end });
    expect(spool.segments.length).toBeGreaterThan(3);
    // A segment is closed once it holds segmentBytes: every closed one reached it, none got a record more.
    for (const s of spool.segments.slice(0, -1)) {
      expect(s.size).toBeGreaterThanOrEqual(1000);
      expect(s.size - HEADER_BYTES - recs(s).at(-1)!.length).toBeLessThan(1000);
    }
    expect(segmentFiles(dir)).toEqual(spool.segments.map((s) => `${String(s.seq).padStart(16, '0')}.seg`));
    expectConsistent(spool);
    const disk = readDisk(dir);
    // Each segment of the stream begins with a CONTINUE naming the history and offset it goes on from; the rest is
    // what was appended, in order.
    const heads = disk.filter((r, i) => r.at === 0 && r.kind === Kind.Continue && i > 0);
    const inSnapshot = [Kind.FullResync, Kind.Snapshot, Kind.SnapshotEnd];
    const streamSegments = spool.segments.filter((s) => !inSnapshot.includes(recs(s)[0]!.kind));
    expect(streamSegments.length).toBeGreaterThan(2);
    expect(heads.map((r) => r.file)).toEqual(streamSegments.map((s) => basename(s.path)));
    for (const head of heads) {
      const prev = disk[disk.indexOf(head) - 1]!;
      expect(head.payload.toString('latin1')).toBe(A);
      expect(head.offset).toBe(prev.offset);
      expect(disk[disk.indexOf(head) + 1]!.kind).toBe(Kind.Commands);
    }
    expect(disk.filter((r) => !heads.includes(r)).map((r) => r.kind)).toEqual([
      Kind.FullResync,
      Kind.Snapshot,
      Kind.Snapshot,
      Kind.Snapshot,
      Kind.SnapshotEnd,
      ...Array(40).fill(Kind.Commands),
    ]);
    expect(disk[0]!.payload.toString('latin1')).toBe(A);
    expect(disk.at(-1)!.offset).toBe(end);
    const before = spool.segments.map((s) => ({ ...s, list: recs(s) }));
    spool.close();

    const { logger, lines } = capture();
    const again = Spool.open({ dir, maxBytes: 1 << 30, segmentBytes: 1000, logger });
    expect(lines.filter((l) => l.level >= WARN)).toEqual([]);
    expect(again.segments.map((s) => ({ ...s, list: recs(s) }))).toEqual(before);
    expect(again.end).toEqual({ replid: A, offset: end });
    expect(again.syncedThrough).toBe(end);
    // Appends after a reopen go to a new segment and continue the history.
    const lastSeq = again.lastSeq;
    const more = appendCommands(again, end, 2, 2, 'after');
    expect(again.lastSeq).toBe(lastSeq + 1);
    expect(again.end).toEqual({ replid: A, offset: more.end });
    expectConsistent(again);
    again.close();
  });
});

describe('locate', () => {
  it('finds the newest complete snapshot, positions inside, at and after COMMANDS records, and refuses others', () => {
    const dir = tempDir();
    const spool = open(dir, 800);
    const first = writeHistory(spool, { base: 0, batches: 5, replid: B });
    // A second full sync (a new history), then its stream.
    const h = writeHistory(spool, { base: 5000, batches: 12 });

    const fulls = spool.segments.flatMap(recs).filter((r) => r.kind === Kind.FullResync);
    expect(fulls).toHaveLength(2);
    expect(spool.locate(null)).toEqual({ seq: fulls[1]!.seq, pos: fulls[1]!.pos, skip: 0 });

    // Inside a COMMANDS record: start at it, skipping what the sinks already have.
    const i = 6;
    const rec = placeOf(spool, (r) => r.kind === Kind.Commands && r.offset === h.commandEnds[i]);
    expect(spool.locate({ replid: A, offset: h.commandStarts[i]! + 7, db: 0 })).toEqual({
      seq: rec.seq,
      pos: rec.pos,
      skip: 7,
    });
    // At a record boundary: the next record, whole.
    expect(spool.locate({ replid: A, offset: h.commandEnds[i - 1]!, db: 0 })).toEqual({
      seq: rec.seq,
      pos: rec.pos,
      skip: 0,
    });
    // At the snapshot's end: the first COMMANDS record after it.
    const endRec = placeOf(spool, (r) => r.kind === Kind.SnapshotEnd && r.offset === 5000);
    expect(spool.locate({ replid: A, offset: 5000, db: 0 })).toEqual({
      seq: endRec.seq,
      pos: endRec.pos + HEADER_BYTES,
      skip: 0,
    });
    // In the older history too.
    const old = placeOf(spool, (r) => r.kind === Kind.Commands && r.offset === first.commandEnds[2]);
    expect(spool.locate({ replid: B, offset: first.commandStarts[2]! + 1, db: 0 })).toEqual({
      seq: old.seq,
      pos: old.pos,
      skip: 1,
    });
    // At the spool's end: nothing to replay, the position after the last record.
    const last = spool.segments.at(-1)!;
    expect(spool.locate({ replid: A, offset: h.end, db: 0 })).toEqual({
      seq: last.seq,
      pos: last.size,
      skip: 0,
    });

    // What the spool does not hold.
    expect(spool.locate({ replid: A, offset: h.end + 1, db: 0 })).toBeNull();
    expect(spool.locate({ replid: A, offset: 4999, db: 0 })).toBeNull();
    expect(spool.locate({ replid: 'c'.repeat(40), offset: h.commandEnds[3]!, db: 0 })).toBeNull();
    expect(spool.locate({ replid: B, offset: first.end + 1, db: 0 })).toBeNull();
    spool.close();
  });

  it('finds the old history position at a CONTINUE with a new replid (failover), and positions after it', () => {
    const dir = tempDir();
    const spool = open(dir, 600);
    const h = writeHistory(spool, { base: 100, batches: 6 });
    // The master failed over: the new one continues our offset under its own replid.
    spool.append(Kind.Continue, Buffer.from(B, 'latin1'), h.end, B);
    expect(spool.end).toEqual({ replid: B, offset: h.end });
    const after = appendCommands(spool, h.end, 6, 2, 'new');
    expect(spool.end).toEqual({ replid: B, offset: after.end });
    const cont = placeOf(spool, (r) => r.kind === Kind.Continue && r.replid === B);
    expect(cont.offset).toBe(h.end);

    // The sinks stopped exactly at the switch, in the old history: replay starts at the CONTINUE record itself,
    // so the replicator takes the new replid before the commands that follow.
    expect(spool.locate({ replid: A, offset: h.end, db: 0 })).toEqual({
      seq: cont.seq,
      pos: cont.pos,
      skip: 0,
    });
    expect(spool.locate({ replid: B, offset: h.end, db: 0 })).toEqual({
      seq: cont.seq,
      pos: cont.pos,
      skip: 0,
    });
    // After the switch only the new replid names positions.
    const rec = placeOf(spool, (r) => r.kind === Kind.Commands && r.offset === after.commandEnds[2]);
    expect(spool.locate({ replid: B, offset: after.commandStarts[2]! + 3, db: 0 })).toEqual({
      seq: rec.seq,
      pos: rec.pos,
      skip: 3,
    });
    expect(spool.locate({ replid: A, offset: after.commandStarts[2]! + 3, db: 0 })).toBeNull();
    // Before the switch, the old replid.
    const oldRec = placeOf(spool, (r) => r.kind === Kind.Commands && r.offset === h.commandEnds[1]);
    expect(spool.locate({ replid: A, offset: h.commandStarts[1]!, db: 0 })).toEqual({
      seq: oldRec.seq,
      pos: oldRec.pos,
      skip: 0,
    });
    expect(spool.locate({ replid: B, offset: h.commandStarts[1]!, db: 0 })).toBeNull();
    spool.close();
  });

  it('a spool that starts with CONTINUE (a restart that continued partially) holds nothing before it', () => {
    const dir = tempDir();
    const spool = open(dir);
    spool.append(Kind.Continue, Buffer.from(A, 'latin1'), 500, A);
    const h = appendCommands(spool, 500, 3, 2);
    expect(spool.locate(null)).toBeNull();
    expect(spool.locate({ replid: A, offset: 499, db: 0 })).toBeNull();
    const cont = placeOf(spool, (r) => r.kind === Kind.Continue);
    expect(spool.locate({ replid: A, offset: 500, db: 0 })).toEqual({
      seq: cont.seq,
      pos: cont.pos,
      skip: 0,
    });
    expect(spool.locate({ replid: A, offset: h.commandStarts[1]! + 2, db: 0 })?.skip).toBe(2);
    spool.close();
  });
});

describe('torn tail', () => {
  for (const fresh of [false, true])
    it(`is cut to the last whole record when the last segment ends at any byte${fresh ? ' (a segment just begun)' : ''}`, () => {
      const dir = tempDir();
      const spool = open(dir, fresh ? 10_000 : 1000);
      const h = writeHistory(spool, { batches: 8 });
      // Torn bytes from here to the end: the last record, or (fresh) the whole new segment, head record included.
      if (fresh) (spool as unknown as { opts: { segmentBytes: number } }).opts.segmentBytes = 1;
      const last = appendCommands(spool, h.end, 1, 2, 'last');
      spool.close();
      const lastSeg = spool.segments.at(-1)!;
      expect(recs(lastSeg).at(-1)!.offset).toBe(last.end);
      const boundaries = recs(lastSeg).map((r) => r.pos);
      const from = fresh ? 0 : boundaries.at(-1)!;
      expect(fresh ? recs(lastSeg).map((r) => r.kind) : []).toEqual(
        fresh ? [Kind.Continue, Kind.Commands] : [],
      );
      const whole = readFileSync(lastSeg.path);
      const segmentsBefore = segmentFiles(dir);
      for (let cut = from + 1; cut < whole.length; cut++) {
        writeFileSync(lastSeg.path, whole.subarray(0, cut));
        const lines: LogLine[] = [];
        const s = open(dir, 1000, lines);
        const keep = boundaries.filter((b) => b <= cut).at(-1)!;
        const warns = lines.filter((l) => l.level === WARN);
        expect(
          lines.filter((l) => l.level >= ERROR),
          `cut at ${cut}`,
        ).toEqual([]);
        if (keep === cut) expect(warns, `cut at ${cut}`).toEqual([]);
        else {
          expect(warns, `cut at ${cut}`).toHaveLength(1);
          expect(warns[0]!.segment).toBe(lastSeg.path);
          expect(warns[0]!.at).toBe(keep);
          expect(warns[0]!.msg).toMatch(/torn record/);
        }
        // The end moves back to before the torn record: the master is asked for it again.
        expect(s.end, `cut at ${cut}`).toEqual({ replid: A, offset: h.end });
        if (keep === 0) {
          // Nothing valid was left in the last segment: it is gone.
          expect(existsSync(lastSeg.path)).toBe(false);
          expect(segmentFiles(dir)).toEqual(segmentsBefore.slice(0, -1));
        } else {
          expect(statSync(lastSeg.path).size).toBe(keep);
          expect(segmentFiles(dir)).toEqual(segmentsBefore);
        }
        expectConsistent(s);
        s.close();
      }
    });

  it('a torn SNAPSHOT_END leaves an incomplete snapshot, which is dropped whole', () => {
    const dir = tempDir();
    const spool = open(dir, 500);
    spool.append(Kind.Continue, Buffer.from(B, 'latin1'), 10, B);
    const h = appendCommands(spool, 10, 3, 1);
    spool.append(Kind.FullResync, Buffer.from(A, 'latin1'), 900, A);
    for (let i = 0; i < 5; i++) spool.append(Kind.Snapshot, Buffer.alloc(300, i), 900);
    spool.append(Kind.SnapshotEnd, Buffer.alloc(0), 900);
    expect(spool.end).toEqual({ replid: A, offset: 900 });
    spool.close();
    const lastSeg = spool.segments.at(-1)!;
    truncateSync(lastSeg.path, lastSeg.size - 3);
    const lines: LogLine[] = [];
    const s = open(dir, 500, lines);
    expect(lines.some((l) => l.level === WARN && /torn/.test(l.msg))).toBe(true);
    expect(lines.some((l) => /dropping a snapshot/.test(l.msg))).toBe(true);
    expect(s.end).toEqual({ replid: B, offset: h.end });
    expect(s.segments.flatMap(recs).map((r) => r.kind)).toEqual([
      Kind.Continue,
      Kind.Commands,
      Kind.Commands,
      Kind.Commands,
    ]);
    expect(s.locate(null)).toBeNull();
    expectConsistent(s);
    s.close();
  });
});

describe('incomplete snapshot', () => {
  it('a snapshot download cut off (no SNAPSHOT_END) is dropped with the segments it spans', () => {
    const dir = tempDir();
    const spool = open(dir, 500);
    const h = writeHistory(spool, { batches: 4, replid: B });
    const before = spool.segments.length;
    // A new full sync whose transfer stopped after several segments.
    spool.append(Kind.FullResync, Buffer.from(A, 'latin1'), 7000, A);
    for (let i = 0; i < 8; i++) spool.append(Kind.Snapshot, Buffer.alloc(400, i), 7000);
    expect(spool.end).toBeNull();
    spool.close();
    const full = placeOf(spool, (r) => r.kind === Kind.FullResync && r.replid === A);
    const after = spool.segments.filter((s) => s.seq > full.seq).map((s) => s.path);
    expect(after.length).toBeGreaterThanOrEqual(3);

    const lines: LogLine[] = [];
    const again = open(dir, 500, lines);
    expect(lines.some((l) => /dropping a snapshot whose download did not complete/.test(l.msg))).toBe(true);
    expect(lines.filter((l) => l.level >= WARN)).toEqual([]);
    for (const p of after) expect(existsSync(p)).toBe(false);
    expect(statSync(join(dir, basename(spool.segments.find((s) => s.seq === full.seq)!.path))).size).toBe(
      full.pos,
    );
    expect(again.end).toEqual({ replid: B, offset: h.end });
    expect(again.segments.length).toBeLessThanOrEqual(before + 1);
    expect(again.segments.flatMap(recs).some((r) => r.kind === Kind.Snapshot && r.offset === 7000)).toBe(
      false,
    );
    // The complete snapshot before it is still the one to replay for sinks without a checkpoint.
    const older = placeOf(again, (r) => r.kind === Kind.FullResync);
    expect(again.locate(null)).toEqual({ seq: older.seq, pos: older.pos, skip: 0 });
    expectConsistent(again);
    again.close();
  });
});

describe('corrupt record in a middle segment', () => {
  /** A spool of 6+ segments; returns the middle segment and a record in it that has records after it. */
  function build(dir: string) {
    const spool = open(dir, 700);
    const h = writeHistory(spool, { batches: 30, snapshotChunks: 2 });
    spool.close();
    expect(spool.segments.length).toBeGreaterThanOrEqual(6);
    const mid = spool.segments[3]!;
    const rec = recs(mid)[1]!;
    expect(rec.kind).toBe(Kind.Commands);
    const prev = recs(mid)[0]!;
    return { spool, h, mid, rec, prev, later: spool.segments.slice(4).map((s) => s.path) };
  }

  function expectCutAt(dir: string, flip: (buf: Buffer, at: number) => void, what: string) {
    rmSync(dir, { recursive: true, force: true });
    const { mid, rec, prev, later } = build(dir);
    const buf = readFileSync(mid.path);
    flip(buf, rec.pos);
    writeFileSync(mid.path, buf);
    const lines: LogLine[] = [];
    const s = open(dir, 700, lines);
    const errors = lines.filter((l) => l.level === ERROR);
    expect(errors, what).toHaveLength(1);
    expect(errors[0]!.segment).toBe(mid.path);
    expect(errors[0]!.at).toBe(rec.pos);
    expect(errors[0]!.msg).toMatch(/corrupt record/);
    expect(errors[0]!.discardedSegments).toBe(later.length);
    // Cut before the bad record; nothing after it survives, not even whole segments.
    expect(statSync(mid.path).size, what).toBe(rec.pos);
    for (const p of later) expect(existsSync(p), `${what}: ${p}`).toBe(false);
    expect(s.segments.at(-1)!.path).toBe(mid.path);
    expect(s.end).toEqual({ replid: A, offset: prev.offset });
    expectConsistent(s);
    // The spool goes on from there.
    appendCommands(s, prev.offset, 2, 1, 'again');
    expectConsistent(s);
    s.close();
  }

  it('a flipped bit in a payload', () => {
    const dir = join(tempDir(), 'spool');
    for (const at of [0, 9, 30])
      expectCutAt(
        dir,
        (buf, pos) => {
          buf[pos + HEADER_BYTES + at]! ^= 0x04;
        },
        `payload byte ${at}`,
      );
  });

  it('a flipped bit in any byte of a header', () => {
    const dir = join(tempDir(), 'spool');
    for (let i = 0; i < HEADER_BYTES; i++)
      expectCutAt(
        dir,
        (buf, pos) => {
          buf[pos + i]! ^= i === 1 ? 0x80 : 0x01;
        },
        `header byte ${i}`,
      );
  });
});

describe('release', () => {
  it('deletes whole segments before the given one and never the last', () => {
    const dir = tempDir();
    const spool = open(dir, 500);
    const h = writeHistory(spool, { batches: 20 });
    const n = spool.segments.length;
    expect(n).toBeGreaterThan(4);
    const seqs = spool.segments.map((s) => s.seq);
    expect(spool.releaseBefore(seqs[2]!)).toBe(2);
    expect(spool.segments.map((s) => s.seq)).toEqual(seqs.slice(2));
    expectConsistent(spool);
    // Far past the end: all but the one being written.
    expect(spool.releaseBefore(Number.MAX_SAFE_INTEGER)).toBe(n - 3);
    expect(spool.segments.map((s) => s.seq)).toEqual([seqs.at(-1)]);
    expect(spool.releaseBefore(Number.MAX_SAFE_INTEGER)).toBe(0);
    expect(segmentFiles(dir)).toHaveLength(1);
    expect(spool.end).toEqual({ replid: A, offset: h.end });
    expectConsistent(spool);
    // Appending goes on in that segment (or the next).
    const more = appendCommands(spool, h.end, 3, 1, 'more');
    expect(spool.end).toEqual({ replid: A, offset: more.end });
    expectConsistent(spool);
    spool.close();
  });
});

describe('reopen after release', () => {
  // A running redtail releases the spool's first segments as the sinks pass them, the one with the FULLRESYNC or
  // CONTINUE record included; a crash must still find in what is left which history its records belong to.
  for (const start of ['FULLRESYNC', 'CONTINUE'] as const)
    it(`still knows its history and end once the segment with the ${start} record is gone`, () => {
      const dir = tempDir();
      const spool = open(dir, 500);
      const h =
        start === 'FULLRESYNC'
          ? writeHistory(spool, { batches: 20 })
          : (() => {
              spool.append(Kind.Continue, Buffer.from(A, 'latin1'), 1000, A);
              return appendCommands(spool, 1000, 20, 3);
            })();
      const released = spool.segments.slice(0, 3).map((s) => s.path);
      expect(spool.releaseBefore(spool.segments[3]!.seq)).toBe(3);
      for (const p of released) expect(existsSync(p)).toBe(false);
      expect(spool.end).toEqual({ replid: A, offset: h.end });
      // The first remaining COMMANDS record, and one further on.
      const first = recs(spool.segments[0]!).find((r) => r.kind === Kind.Commands)!;
      const i = h.commandEnds.indexOf(first.offset);
      expect(i).toBeGreaterThan(0);
      spool.close();

      const lines: LogLine[] = [];
      const again = open(dir, 500, lines);
      expect(lines.filter((l) => l.level >= WARN)).toEqual([]);
      expect(again.end).toEqual({ replid: A, offset: h.end });
      // The sinks' checkpoint where the remaining spool begins, inside it, and at its end.
      expect(again.locate({ replid: A, offset: h.commandStarts[i]!, db: 0 })).toMatchObject({
        seq: first.seq,
      });
      const later = placeOf(again, (r) => r.kind === Kind.Commands && r.offset === h.commandEnds[i + 5]);
      expect(again.locate({ replid: A, offset: h.commandStarts[i + 5]! + 4, db: 0 })).toEqual({
        seq: later.seq,
        pos: later.pos,
        skip: 4,
      });
      const last = again.segments.at(-1)!;
      expect(again.locate({ replid: A, offset: h.end, db: 0 })).toEqual({
        seq: last.seq,
        pos: last.size,
        skip: 0,
      });
      // What was released is not claimed.
      expect(again.locate({ replid: A, offset: h.commandStarts[i - 1]!, db: 0 })).toBeNull();
      again.close();
    });
});

describe('unusable directory', () => {
  it('a path under a regular file: SpoolError ENOTDIR naming the path', () => {
    const file = join(tempDir(), 'plain-file');
    writeFileSync(file, 'x');
    const dir = join(file, 'spool');
    let err: unknown;
    try {
      open(dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpoolError);
    const e = err as SpoolError;
    expect(e.code).toBe('ENOTDIR');
    expect(e.fatal).toBe(true);
    expect(e.diskFull).toBe(false);
    expect(e.message).toContain(dir);
    expect(e.message).toMatch(/fix spool\.dir/);
    expect(e.message).not.toContain('\n');
  });

  it.skipIf(!isRoot)(
    'a read-only file system: SpoolError EROFS naming the path (needs root to mount)',
    () => {
      const ro = tmpfs('1m', true);
      for (const dir of [ro, join(ro, 'sub')]) {
        let err: unknown;
        try {
          open(dir);
        } catch (e) {
          err = e;
        }
        expect(err, dir).toBeInstanceOf(SpoolError);
        expect((err as SpoolError).code).toBe('EROFS');
        expect((err as SpoolError).fatal).toBe(true);
        expect((err as SpoolError).message).toContain(dir);
        expect((err as SpoolError).message).toMatch(/read-only/);
      }
    },
  );

  it.skipIf(isRoot)('a directory without write permission: SpoolError EACCES naming the path', () => {
    const dir = tempDir();
    execFileSync('chmod', ['555', dir]);
    let err: unknown;
    try {
      open(dir);
    } catch (e) {
      err = e;
    }
    expect((err as SpoolError).code).toBe('EACCES');
    expect((err as SpoolError).message).toContain(dir);
  });
});

describe('disk full', () => {
  it.skipIf(!isRoot)(
    'gives a non-fatal SpoolError with diskFull and leaves no partial record (needs root to mount a tmpfs)',
    () => {
      const dir = tmpfs('1m');
      const { logger, lines } = capture();
      const spool = Spool.open({ dir, maxBytes: 1 << 30, segmentBytes: 300_000, logger });
      // Closed whatever happens, or the tmpfs cannot be unmounted.
      onTestFinished(() => spool.close());
      spool.append(Kind.Continue, Buffer.from(A, 'latin1'), 0, A);
      let offset = 0;
      let err: unknown;
      const written: number[] = [];
      // Records of an awkward size, so the one that does not fit is partly written by the kernel first.
      for (let i = 0; i < 100 && !err; i++) {
        const payload = Buffer.alloc(77_777, i);
        try {
          spool.append(Kind.Commands, payload, offset + payload.length);
          offset += payload.length;
          written.push(offset);
        } catch (e) {
          err = e;
        }
      }
      expect(err).toBeInstanceOf(SpoolError);
      const e = err as SpoolError;
      expect(e.diskFull).toBe(true);
      expect(e.fatal).toBe(false);
      expect(e.code).toBe('ENOSPC');
      expect(e.message).toContain(dir);
      expect(e.message).toMatch(/disk is full/);
      expect(written.length).toBeGreaterThan(5);
      // The files hold whole records only, exactly the ones that were appended.
      const disk = readDisk(dir);
      expect(disk.filter((r) => r.kind === Kind.Commands).map((r) => r.offset)).toEqual(written);
      expectConsistent(spool);
      expect(spool.end).toEqual({ replid: A, offset });
      // Another try fails the same way and still leaves nothing partial.
      expect(() => spool.append(Kind.Commands, Buffer.alloc(77_777), offset + 77_777)).toThrow(SpoolError);
      expectConsistent(spool);
      // Space released: appends work again.
      expect(spool.releaseBefore(spool.lastSeq)).toBeGreaterThan(0);
      spool.append(Kind.Commands, Buffer.alloc(77_777, 1), offset + 77_777);
      expect(spool.end).toEqual({ replid: A, offset: offset + 77_777 });
      expectConsistent(spool);
      spool.close();
      // A reopen finds no torn record: the failed writes left nothing.
      const again = Spool.open({ dir, maxBytes: 1 << 30, segmentBytes: 300_000, logger });
      onTestFinished(() => again.close());
      expect(lines.filter((l) => l.level >= WARN)).toEqual([]);
      expect(again.end).toEqual({ replid: A, offset: offset + 77_777 });
      again.close();
    },
  );
});
