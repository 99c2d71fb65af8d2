import {
  closeSync,
  existsSync,
  fsync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  statSync,
  unlinkSync,
  writevSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { crc32 } from 'node:zlib';
import type { ReplicationPosition } from '../events/ChangeEvent.js';
import type { Logger } from '../observe/logger.js';
import { spoolFsError } from './errors.js';
import {
  checksumOk,
  commandsHeader,
  decodeHeader,
  encodeHeader,
  HEADER_BYTES,
  Kind,
  kindName,
} from './records.js';

export interface SpoolOptions {
  dir: string;
  /** Disk the segments may take; past it the link stops reading (today's backpressure) until sinks catch up. */
  maxBytes: number;
  /** A segment is closed and a new one begun once it holds this much. */
  segmentBytes: number;
  logger: Logger;
}

/** One record as the spool indexes it (payloads stay on disk). */
export interface SpoolRecord {
  seq: number;
  /** Byte position of the record's header in its segment. */
  pos: number;
  kind: Kind;
  length: number;
  /** The offset the record ends at (see records.ts). */
  offset: number;
  /** FULLRESYNC and CONTINUE: the history's replication id. */
  replid?: string;
}

export interface Segment {
  seq: number;
  path: string;
  size: number;
  /**
   * How many records it holds. Records themselves are not kept in memory: a slow stream makes many tiny ones, and an
   * index of them would grow with the lag. What a restart needs is found by reading the files (`locate`).
   */
  records: number;
}

/** Where replay starts: a record's place, and how many payload bytes of it (a COMMANDS record) the sinks have. */
export interface ReplayStart {
  seq: number;
  pos: number;
  skip: number;
}

function after(r: SpoolRecord): ReplayStart {
  return { seq: r.seq, pos: r.pos + HEADER_BYTES + r.length, skip: 0 };
}

const SEGMENT_NAME = /^(\d{16})\.seg$/;

/**
 * `mkdir -p` that reports why it failed. Node's recursive mkdir answers a refused mkdir (EACCES, EROFS) with the
 * ENOENT of the stat it makes afterwards, which would tell the user the wrong thing; creating the missing components
 * one at a time gives the real error.
 */
function makeDirectory(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const missing: string[] = [];
    for (let d = resolve(dir); !existsSync(d) && dirname(d) !== d; d = dirname(d)) missing.unshift(d);
    for (const d of missing) mkdirSync(d);
  }
}

const EMPTY_PAYLOAD = Buffer.alloc(0);

/** CRC-32 of `length` bytes of the file from `at`, continuing `seed`, read in 4 MB pieces. */
function crcOfFile(path: string, at: number, length: number, seed: number): number {
  // The writer's descriptor is write-only: read through one of our own.
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(Math.min(length, 4 << 20));
    let crc = seed;
    for (let done = 0; done < length; ) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, length - done), at + done);
      if (n === 0) throw Object.assign(new Error('short read of a spooled command'), { code: 'EIO' });
      crc = crc32(buf.subarray(0, n), crc);
      done += n;
    }
    return crc;
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes header and payload at `at`, continuing after short writes. A disk that fills up mid-record first shows as a
 * short write (the kernel writes what fits and returns the count); only the write of the rest fails with ENOSPC,
 * which is what says "disk full" rather than an I/O error.
 */
function writeWhole(fd: number, header: Buffer, payload: Buffer, at: number): void {
  const size = header.length + payload.length;
  let n = writevSync(fd, [header, payload], at);
  while (n < size) {
    const rest = n < header.length ? [header.subarray(n), payload] : [payload.subarray(n - header.length)];
    const m = writevSync(fd, rest, at + n);
    if (m === 0) throw Object.assign(new Error(`short write (${n} of ${size} bytes)`), { code: 'EIO' });
    n += m;
  }
}

/**
 * The spool: the master's replication stream (a full sync's RDB payload, then every command) appended to local
 * segment files as fast as the master sends it, and read back by the replayer at the sinks' pace. It is a cache in
 * front of the sinks' checkpoints, which stay the truth: whatever is lost from it (a torn tail after a crash, a
 * corrupt record, a deleted directory) is asked of the master again with PSYNC, or a full sync if the master no
 * longer has it.
 *
 * Writes are synchronous (`writev` into the page cache, a few microseconds) so a record is readable by the replayer
 * the moment it is appended; `fsync` runs off the event loop on a schedule and when a segment is closed.
 */
export class Spool {
  readonly segments: Segment[] = [];
  private fd: number | null = null;
  private syncing = false;
  private dirty = false;
  /** Position of the last complete history (the PSYNC position); null while empty or inside a snapshot. */
  private endPos: ReplicationPosition | null = null;
  private syncedOffset = 0;
  private total = 0;
  readonly stats = { bytesWritten: 0, records: 0, segmentsDeleted: 0, fsyncs: 0 };
  /** Set while the writer is held back (spool.maxBytes or a full disk): replayed snapshot segments may go early. */
  underPressure = false;

  private constructor(private readonly opts: SpoolOptions) {}

  /** Opens (creating) the directory, verifies every record and truncates a torn or corrupt tail. */
  static open(opts: SpoolOptions): Spool {
    const spool = new Spool(opts);
    spool.load();
    return spool;
  }

  get dir(): string {
    return this.opts.dir;
  }

  /** Bytes on disk in all segments. */
  get bytes(): number {
    return this.total;
  }

  get full(): boolean {
    return this.total >= this.opts.maxBytes;
  }

  get maxBytes(): number {
    return this.opts.maxBytes;
  }

  /** The PSYNC position the spool can continue from: null when empty or when its last snapshot is incomplete. */
  get end(): { replid: string; offset: number } | null {
    return this.endPos ? { replid: this.endPos.replid, offset: this.endPos.offset } : null;
  }

  /** Offset of the last record whose bytes are known to be on disk (fsynced). */
  get syncedThrough(): number {
    return this.syncedOffset;
  }

  get lastSeq(): number {
    return this.segments[this.segments.length - 1]?.seq ?? 0;
  }

  segment(seq: number): Segment | undefined {
    return this.segments.find((s) => s.seq === seq);
  }

  /** The segment after `seq`, if any. */
  nextSegment(seq: number): Segment | undefined {
    return this.segments.find((s) => s.seq > seq);
  }

  /**
   * Where replay must start for sinks whose lowest checkpoint is `from` (null: they need a full sync, i.e. the newest
   * complete snapshot). Null when the spool does not hold that position: then it is of no use and the caller
   * discards it. Reads the record headers of the segments (called once, at start).
   */
  locate(from: ReplicationPosition | null): ReplayStart | null {
    let found: ReplayStart | null = null;
    let replid: string | null = null;
    let offset = -1;
    let last: SpoolRecord | null = null;
    this.eachRecord((r) => {
      last = r;
      switch (r.kind) {
        case Kind.FullResync:
          if (!from) found = { seq: r.seq, pos: r.pos, skip: 0 };
          replid = r.replid ?? null;
          offset = -1;
          return true;
        case Kind.SnapshotEnd:
          offset = r.offset;
          if (from && replid === from.replid && offset === from.offset) found = after(r);
          break;
        case Kind.Continue:
          // The old history's position is one of the new history too (PSYNC's replid2). Replay starts *at* the
          // record, so the replicator takes the new replid before the commands that follow.
          if (
            from &&
            r.offset === from.offset &&
            (r.replid === from.replid || (replid === from.replid && offset === r.offset))
          )
            found = { seq: r.seq, pos: r.pos, skip: 0 };
          replid = r.replid ?? null;
          offset = r.offset;
          break;
        case Kind.Commands: {
          const start = r.offset - r.length;
          if (from && replid === from.replid && start <= from.offset && from.offset < r.offset)
            found = { seq: r.seq, pos: r.pos, skip: from.offset - start };
          offset = r.offset;
          break;
        }
        default:
          return true;
      }
      // A checkpoint's position is found once; the newest snapshot needs the whole spool read.
      return !(from && found);
    });
    if (found || !from) return found;
    // The checkpoint is the spool's very end: nothing to replay, the link continues from there.
    const end = last as SpoolRecord | null;
    if (end && this.endPos && this.endPos.replid === from.replid && this.endPos.offset === from.offset)
      return after(end);
    return null;
  }

  /** Whether any record is on disk. */
  get hasRecords(): boolean {
    return this.segments.some((s) => s.records > 0);
  }

  /** Deletes every segment: the spool does not hold what the sinks need. */
  discardAll(reason: string): void {
    if (this.segments.length === 0) return;
    this.opts.logger.info(
      { dir: this.opts.dir, segments: this.segments.length, bytes: this.total, reason },
      'discarding the spool',
    );
    this.closeWriter();
    for (const s of this.segments.splice(0)) this.unlink(s);
    this.total = 0;
    this.endPos = null;
  }

  /** Deletes the segments wholly before segment `seq` (never the one being written). */
  releaseBefore(seq: number): number {
    let n = 0;
    while (this.segments.length > 1 && this.segments[0]!.seq < seq) {
      const s = this.segments.shift()!;
      this.total -= s.size;
      this.unlink(s);
      n++;
    }
    return n;
  }

  /** Appends one record; the payload is written before this returns (not yet fsynced). */
  append(kind: Kind, payload: Buffer, offset: number, replid?: string): void {
    if (this.fd === null || this.current().size >= this.opts.segmentBytes) this.rollover();
    // Every segment of the stream begins by naming the history it continues: the segments before it are deleted
    // once the sinks pass them, and after a crash the spool is only of use if its first record says whose offsets
    // its commands carry. The replayer takes it for the no-op it is (a CONTINUE at the position it is at).
    const end = this.endPos;
    if (this.current().size === 0 && end && kind === Kind.Commands)
      this.write(Kind.Continue, Buffer.from(end.replid, 'latin1'), end.offset, end.replid);
    this.write(kind, payload, offset, replid);
  }

  /**
   * Writes part of a COMMANDS record whose size is not known yet: a command of hundreds of MB (issue 16) goes to disk
   * as it arrives instead of being held in memory whole. The record's header is written by `finishCommands`; until
   * then the record is not part of the segment (`size` does not cover it), so the replayer does not see it, and a
   * crash leaves a torn tail that the next open truncates (the master then sends the command again).
   */
  appendCommandsPart(payload: Buffer): void {
    let open = this.openRecord;
    if (!open) {
      if (this.fd === null || this.current().size >= this.opts.segmentBytes) this.rollover();
      const end = this.endPos;
      if (this.current().size === 0 && end)
        this.write(Kind.Continue, Buffer.from(end.replid, 'latin1'), end.offset, end.replid);
      open = { at: this.current().size, length: 0 };
      this.openRecord = open;
    }
    this.writeOpen(payload);
  }

  /** Ends the record `appendCommandsPart` began with its last bytes; it ends at stream offset `offset`. */
  finishCommands(payload: Buffer, offset: number): void {
    const open = this.openRecord;
    if (!open) throw new Error('finishCommands without appendCommandsPart');
    this.writeOpen(payload);
    const seg = this.current();
    try {
      // The header's CRC covers the header (with the length, known only now) and the payload, which is read back
      // from the page cache in pieces rather than kept.
      const header = commandsHeader(open.length, offset, (seed) =>
        crcOfFile(seg.path, open.at + HEADER_BYTES, open.length, seed),
      );
      writeWhole(this.fd!, header, EMPTY_PAYLOAD, open.at);
    } catch (err) {
      this.abortOpen();
      throw spoolFsError(err, `writing to spool segment ${seg.path}`);
    }
    this.openRecord = null;
    this.appended(seg, HEADER_BYTES + open.length, Kind.Commands, offset);
  }

  /** A COMMANDS record being written in parts: where its header goes, and its payload bytes so far. */
  private openRecord: { at: number; length: number } | null = null;

  private writeOpen(payload: Buffer): void {
    const open = this.openRecord!;
    try {
      writeWhole(this.fd!, EMPTY_PAYLOAD, payload, open.at + HEADER_BYTES + open.length);
    } catch (err) {
      this.abortOpen();
      throw spoolFsError(err, `writing to spool segment ${this.current().path}`);
    }
    open.length += payload.length;
  }

  /** Drops a record begun by `appendCommandsPart` (the link was lost mid-command); leaves no partial record behind. */
  abortCommands(): void {
    if (this.openRecord) this.abortOpen();
  }

  private abortOpen(): void {
    this.openRecord = null;
    try {
      ftruncateSync(this.fd!, this.current().size);
    } catch {}
  }

  private write(kind: Kind, payload: Buffer, offset: number, replid?: string): void {
    const seg = this.current();
    const header = encodeHeader(kind, payload, offset);
    const size = HEADER_BYTES + payload.length;
    try {
      writeWhole(this.fd!, header, payload, seg.size);
    } catch (err) {
      // Leave no partial record behind: the next start would take it for a torn tail, but this run goes on.
      try {
        ftruncateSync(this.fd!, seg.size);
      } catch {}
      throw spoolFsError(err, `writing to spool segment ${seg.path}`);
    }
    this.appended(seg, size, kind, offset, replid);
  }

  /** Starts an fsync of the segment being written, unless one is running; `done` gets the offset it covered. */
  sync(done?: (offset: number) => void): void {
    if (this.fd === null || this.syncing || !this.dirty) return;
    const fd = this.fd;
    const covered = this.lastOffset();
    this.syncing = true;
    this.dirty = false;
    fsync(fd, (err) => {
      this.syncing = false;
      if (err) {
        this.opts.logger.error({ dir: this.opts.dir, err: err.message }, 'fsync of the spool failed');
        this.dirty = true;
        return;
      }
      this.stats.fsyncs++;
      this.syncedOffset = covered;
      done?.(covered);
    });
  }

  close(): void {
    this.closeWriter();
  }

  private current(): Segment {
    return this.segments[this.segments.length - 1]!;
  }

  private lastOffset(): number {
    return this.lastAppended;
  }

  /** Offset of the newest record (what an fsync now covers). */
  private lastAppended = 0;

  /** Counts a record now whole in `seg`, and moves the PSYNC position with it. */
  private appended(seg: Segment, size: number, kind: Kind, offset: number, replid?: string): void {
    seg.records++;
    seg.size += size;
    this.lastAppended = offset;
    this.total += size;
    this.stats.bytesWritten += size;
    this.stats.records++;
    this.dirty = true;
    this.track(kind, offset, replid);
  }

  /** Keeps the PSYNC position in step with what was appended. */
  private track(kind: Kind, offset: number, replid?: string): void {
    switch (kind) {
      case Kind.FullResync:
        this.endPos = null;
        this.pendingReplid = replid ?? null;
        break;
      case Kind.SnapshotEnd:
        this.endPos = { replid: this.pendingReplid!, offset, db: 0 };
        break;
      case Kind.Continue:
        this.endPos = { replid: replid!, offset, db: 0 };
        break;
      case Kind.Commands:
        if (this.endPos) this.endPos.offset = offset;
        break;
      default:
        break;
    }
  }

  private pendingReplid: string | null = null;

  private rollover(): void {
    if (this.fd !== null) {
      // The closed segment is complete: make it durable before the next one holds anything after it. Synchronous, so
      // that its file is closed (and its space free once released) when this returns; the timed fsync has already
      // written all but the last second of it, so this is short.
      const fd = this.fd;
      this.fd = null;
      try {
        fsyncSync(fd);
        this.syncedOffset = this.lastAppended;
      } catch (err) {
        throw spoolFsError(err, `syncing spool segment ${this.current().path}`);
      } finally {
        closeSync(fd);
      }
    }
    const seq = this.lastSeq + 1;
    const path = join(this.opts.dir, `${String(seq).padStart(16, '0')}.seg`);
    try {
      this.fd = openSync(path, 'wx');
      this.syncDir();
    } catch (err) {
      throw spoolFsError(err, `creating spool segment ${path}`);
    }
    this.segments.push({ seq, path, size: 0, records: 0 });
  }

  private closeWriter(): void {
    if (this.fd === null) return;
    try {
      fsyncSync(this.fd);
    } catch {}
    closeSync(this.fd);
    this.fd = null;
  }

  private syncDir(): void {
    const d = openSync(this.opts.dir, 'r');
    try {
      fsyncSync(d);
    } finally {
      closeSync(d);
    }
  }

  private unlink(s: Segment): void {
    try {
      unlinkSync(s.path);
      this.stats.segmentsDeleted++;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw spoolFsError(err, `deleting spool segment ${s.path}`);
    }
  }

  // ---- reading records ----------------------------------------------------------------------------------------

  /** Calls `visit` for every record in order (headers only) until it returns false. */
  private eachRecord(visit: (r: SpoolRecord) => boolean): void {
    for (const seg of this.segments) {
      let stop = false;
      scanSegment(seg.path, seg.size, false, (r) => {
        const keep = visit({ ...r, seq: seg.seq });
        stop = !keep;
        return keep;
      });
      if (stop) return;
    }
  }

  // ---- open: scan, verify, truncate -------------------------------------------------------------------------

  private load(): void {
    const { dir } = this.opts;
    let names: string[];
    try {
      makeDirectory(dir);
      names = readdirSync(dir);
      // Prove now that the directory takes writes, rather than at the first record with the master waiting.
      const probe = join(dir, '.probe');
      closeSync(openSync(probe, 'w'));
      unlinkSync(probe);
    } catch (err) {
      throw spoolFsError(err, `opening spool directory ${dir}`);
    }
    const seqs = names
      .map((n) => SEGMENT_NAME.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    /** The newest FULLRESYNC not yet followed by its SNAPSHOT_END: a download cut off, if it stays so. */
    let openSnapshot: { seq: number; pos: number; replid?: string } | null = null;
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i]!;
      const path = join(dir, `${String(seq).padStart(16, '0')}.seg`);
      const seg: Segment = { seq, path, size: 0, records: 0 };
      this.segments.push(seg);
      const bad = scanSegment(path, null, true, (r) => {
        seg.records++;
        this.track(r.kind, r.offset, r.replid);
        this.lastAppended = r.offset;
        if (r.kind === Kind.FullResync)
          openSnapshot = { seq, pos: r.pos, ...(r.replid ? { replid: r.replid } : {}) };
        else if (r.kind === Kind.SnapshotEnd) openSnapshot = null;
        return true;
      });
      seg.size = bad ? bad.pos : fileSize(path);
      this.total += seg.size;
      if (bad) {
        this.truncateAt(seg, bad.pos, seqs.slice(i + 1), bad.reason, i === seqs.length - 1);
        break;
      }
    }
    if (openSnapshot) this.dropIncompleteSnapshot(openSnapshot);
    this.syncedOffset = this.lastAppended;
  }

  /**
   * Cuts the spool at a bad record. At the end of the last segment that is the torn write of a crash: expected, and
   * the master resends the rest. Anywhere else it is damage (a disk error, a file edited by hand): said loudly, and
   * recovered the same way, since the spool holds nothing the master or the sinks' checkpoints cannot give again.
   */
  private truncateAt(seg: Segment, pos: number, later: number[], reason: string, last: boolean): void {
    const torn = last && reason.startsWith('incomplete');
    const details = { segment: seg.path, at: pos, reason, discardedSegments: later.length };
    if (torn)
      this.opts.logger.warn(
        details,
        'spool: torn record at the end (crash during a write); truncated, the master resends the rest',
      );
    else
      this.opts.logger.error(
        details,
        'spool: corrupt record; the spool is cut before it and what followed is asked of the master again (PSYNC, or a full sync if its backlog no longer has it)',
      );
    try {
      truncateFile(seg.path, pos);
      for (const s of later) unlinkSync(join(this.opts.dir, `${String(s).padStart(16, '0')}.seg`));
      // Nothing valid left in it (a segment just begun when the crash came): it goes too.
      if (seg.records === 0 && this.segments.length > 1) {
        unlinkSync(seg.path);
        this.segments.pop();
      }
    } catch (err) {
      throw spoolFsError(err, `truncating spool segment ${seg.path}`);
    }
  }

  /** A snapshot whose download was cut off (no SNAPSHOT_END) cannot be replayed: it and what follows are dropped. */
  private dropIncompleteSnapshot(at: { seq: number; pos: number; replid?: string }): void {
    this.opts.logger.info(
      { dir: this.opts.dir, replid: at.replid },
      'spool: dropping a snapshot whose download did not complete',
    );
    const idx = this.segments.findIndex((s) => s.seq === at.seq);
    for (const s of this.segments.splice(idx + 1)) {
      this.total -= s.size;
      this.unlink(s);
    }
    const seg = this.segments[idx]!;
    try {
      truncateFile(seg.path, at.pos);
    } catch (err) {
      throw spoolFsError(err, `truncating spool segment ${seg.path}`);
    }
    this.total -= seg.size - at.pos;
    seg.size = at.pos;
    // Recount what is left and where the spool now ends.
    seg.records = 0;
    this.endPos = null;
    this.pendingReplid = null;
    this.lastAppended = 0;
    this.eachRecord((r) => {
      if (r.seq === seg.seq) seg.records++;
      this.track(r.kind, r.offset, r.replid);
      this.lastAppended = r.offset;
      return true;
    });
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch (err) {
    throw spoolFsError(err, `reading spool segment ${path}`);
  }
}

function truncateFile(path: string, size: number): void {
  const fd = openSync(path, 'r+');
  try {
    ftruncateSync(fd, size);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Reads are done in windows this large; a record larger than one is read on its own. */
const SCAN_WINDOW = 1024 * 1024;

/**
 * Reads a segment's records in order, calling `visit` (which returns false to stop). `verify` checks each payload's
 * checksum. `size`: the bytes to read (null: the whole file). Returns where the records stop being valid, or null
 * when all were (or `visit` stopped).
 */
function scanSegment(
  path: string,
  size: number | null,
  verify: boolean,
  visit: (r: Omit<SpoolRecord, 'seq'>) => boolean,
): { pos: number; reason: string } | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw spoolFsError(err, `reading spool segment ${path}`);
  }
  try {
    const end = size ?? fileSize(path);
    let window = Buffer.alloc(0);
    let windowPos = 0;
    const view = (pos: number, length: number): Buffer => {
      if (pos < windowPos || pos + length > windowPos + window.length) {
        window = Buffer.allocUnsafe(Math.max(SCAN_WINDOW, length));
        const n = readSync(fd, window, 0, Math.min(window.length, end - pos), pos);
        window = window.subarray(0, n);
        windowPos = pos;
      }
      return window.subarray(pos - windowPos, pos - windowPos + length);
    };
    let pos = 0;
    while (pos < end) {
      if (end - pos < HEADER_BYTES) return { pos, reason: 'incomplete record header' };
      const header = view(pos, HEADER_BYTES);
      const h = decodeHeader(header);
      if (!h) return { pos, reason: 'invalid record header' };
      if (pos + HEADER_BYTES + h.length > end) return { pos, reason: 'incomplete record' };
      const needPayload = verify || h.kind === Kind.FullResync || h.kind === Kind.Continue;
      let replid: string | undefined;
      if (needPayload) {
        const headerCopy = Buffer.from(header);
        const payload = view(pos + HEADER_BYTES, h.length);
        if (verify && !checksumOk(headerCopy, 0, payload, h.crc))
          return { pos, reason: `${kindName(h.kind)} record fails its checksum` };
        if (h.kind === Kind.FullResync || h.kind === Kind.Continue) replid = payload.toString('latin1');
      }
      const keep = visit({
        pos,
        kind: h.kind,
        length: h.length,
        offset: h.offset,
        ...(replid ? { replid } : {}),
      });
      if (!keep) return null;
      pos += HEADER_BYTES + h.length;
    }
    return null;
  } finally {
    closeSync(fd);
  }
}
