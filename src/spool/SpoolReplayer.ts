import { closeSync, openSync, readSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { ReplicationPosition } from '../events/ChangeEvent.js';
import type { StreamTarget } from '../link/ReplicationProtocol.js';
import type { Logger } from '../observe/logger.js';
import { SpoolError, spoolFsError } from './errors.js';
import { checksumOk, decodeHeader, HEADER_BYTES, Kind, kindName } from './records.js';
import type { ReplayStart, Spool } from './Spool.js';

export interface SpoolReplayerOptions {
  /** The replicator: it gets the spooled stream exactly as it would get it from the link. */
  target: StreamTarget;
  logger: Logger;
  /** Called once when replay cannot go on (a corrupt record, an error while handling the stream). */
  onError: (err: Error) => void;
  /** Called after each released segment and whenever replay catches up with the spool's end. */
  progressed?: (caughtUp: boolean) => void;
}

/** Reads are done in windows of this size; each window is a fresh buffer, since events keep slices of it. */
const WINDOW = 64 * 1024;
/** How long one turn of replay may hold the event loop before it lets the socket and the sinks run. */
const TURN_MS = 20;
/**
 * A COMMANDS record this large is read into a buffer of its own, whose memory is given back as soon as a durable
 * checkpoint passes the record (`HeldRecord`). The framer's threshold for writing a command in parts (1 MB), so
 * every big command is one; smaller records share 64 KB windows and are left to the GC.
 */
export const OWN_BUFFER_BYTES = 1 << 20;

/**
 * A big record's buffer, handed to the replicator (its events hold views of it: the value, the key), and the
 * position the record ends at. Issue 16: left to the GC, a 500 MB value's buffer was still in memory when the next
 * huge record was read (V8 collects external memory only once the next allocation has pushed it past a limit set
 * at the previous collection), so two values' buffers were resident at once (bench/NOTES.md, branch hugestream).
 * Once a durable checkpoint is at or past the record's end, every sink has written the events made from it
 * (Sink.write resolves only then) and nothing reads it again: the buffer is detached, which frees its memory at
 * once, before the pipeline lets replay go on (it reports durability before it resumes).
 */
interface HeldRecord {
  buffer: ArrayBuffer;
  replid: string;
  offset: number;
}

/** A spool segment's start as the replicator stood there: what a durable checkpoint must reach to release it. */
interface SegmentMark {
  seq: number;
  replid: string;
  offset: number;
}

/**
 * Feeds the spool to the replicator at the sinks' pace: paused while the pipeline is above its high-water mark,
 * waiting when it has read everything the link appended. Releases segments once a durable checkpoint has passed
 * them.
 */
export class SpoolReplayer {
  private seq = 0;
  private pos = 0;
  private skip = 0;
  private paused = false;
  private stopped = false;
  private scheduled = false;
  private caughtUp = false;
  private failed = false;
  private fd: number | null = null;
  private fdSeq = -1;
  private window: Buffer = Buffer.alloc(0);
  /** Segment position of `window[0]`. */
  private windowPos = 0;
  /** The replicator's position as replay goes: replid and offset (-1 inside a snapshot). */
  private replid = '';
  private offset = -1;
  private marks: SegmentMark[] = [];
  private held: HeldRecord[] = [];
  readonly stats = { records: 0, bytes: 0, releasedBytes: 0 };

  constructor(
    private readonly spool: Spool,
    private readonly opts: SpoolReplayerOptions,
  ) {}

  /** Starts replay at `start` (the sinks' checkpoint `from` is already there), or at what the link appends next. */
  start(start: ReplayStart | null, from: ReplicationPosition | null): void {
    if (start) {
      this.seq = start.seq;
      this.pos = start.pos;
      this.skip = start.skip;
    } else {
      this.seq = this.spool.lastSeq;
      this.pos = this.spool.segment(this.seq)?.size ?? 0;
    }
    if (from) {
      this.replid = from.replid;
      this.offset = from.offset;
      // Positions the stream at the checkpoint; the first spooled record continues it byte for byte.
      if (start) this.opts.target.partialResync(from.replid, from.offset);
    }
    this.schedule();
  }

  /** The spool has a new record. */
  appended(): void {
    if (this.caughtUp) {
      this.caughtUp = false;
      this.schedule();
    }
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    this.closeFd();
  }

  /** The replicator's position as replay stands: the oldest offset the sinks have not been handed yet. */
  get position(): { replid: string; offset: number } | null {
    return this.offset >= 0 ? { replid: this.replid, offset: this.offset } : null;
  }

  /** True when everything the link appended has been handed to the replicator. */
  get isCaughtUp(): boolean {
    return this.caughtUp;
  }

  /** Spool bytes not yet replayed. */
  get behindBytes(): number {
    let n = 0;
    for (const s of this.spool.segments)
      if (s.seq >= this.seq) n += s.seq === this.seq ? s.size - this.pos : s.size;
    return n;
  }

  /** A checkpoint became durable in every sink: segments wholly before it are no longer needed for a restart. */
  durable(position: ReplicationPosition): void {
    this.releaseHeld(position);
    let release = -1;
    let i = 0;
    for (let j = 0; j < this.marks.length; j++) {
      const m = this.marks[j]!;
      if (m.replid === position.replid && m.offset <= position.offset) {
        release = m.seq;
        i = j;
      }
    }
    if (release < 0) return;
    this.marks.splice(0, i);
    if (this.spool.releaseBefore(release) > 0) this.opts.progressed?.(this.caughtUp);
  }

  /** Detaches the buffers of big records that `position` has passed (and of any held before them). */
  private releaseHeld(position: ReplicationPosition): void {
    let last = -1;
    for (let j = 0; j < this.held.length; j++) {
      const r = this.held[j]!;
      if (r.replid === position.replid && r.offset <= position.offset) last = j;
    }
    if (last < 0) return;
    for (const r of this.held.splice(0, last + 1)) {
      this.stats.releasedBytes += r.buffer.byteLength;
      // transfer(0) detaches the buffer: its views (the event's value, the key) become empty, its memory is freed.
      r.buffer.transfer(0);
    }
  }

  /** Bytes of big records' buffers not yet released. */
  get heldBytes(): number {
    let n = 0;
    for (const r of this.held) n += r.buffer.byteLength;
    return n;
  }

  private schedule(): void {
    if (this.scheduled || this.stopped || this.failed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.turn();
    });
  }

  private turn(): void {
    const until = performance.now() + TURN_MS;
    try {
      while (!this.paused && !this.stopped) {
        if (!this.step()) {
          this.caughtUp = true;
          this.opts.progressed?.(true);
          return;
        }
        if (performance.now() > until) {
          this.schedule();
          return;
        }
      }
    } catch (err) {
      this.failed = true;
      this.closeFd();
      this.opts.onError(err as Error);
    }
  }

  /** Hands one record to the replicator; false when there is nothing more to read yet. */
  private step(): boolean {
    let seg = this.spool.segment(this.seq);
    if (!seg || this.pos >= seg.size) {
      const next = this.spool.nextSegment(this.seq);
      if (!next || (seg && this.pos < seg.size)) return false;
      this.enterSegment(next.seq);
      seg = next;
      if (seg.size === 0) return false;
    }
    const header = this.read(this.pos, HEADER_BYTES, seg);
    const h = decodeHeader(header);
    if (!h) throw this.corrupt(seg.path, 'invalid record header');
    const at = this.pos + HEADER_BYTES;
    const own =
      h.kind === Kind.Commands && h.length >= OWN_BUFFER_BYTES ? this.readOwn(at, h.length, seg.path) : null;
    const payload = own ?? this.read(at, h.length, seg);
    if (!checksumOk(header, 0, payload, h.crc))
      throw this.corrupt(seg.path, `${kindName(h.kind)} record fails its checksum`);
    this.pos += HEADER_BYTES + h.length;
    this.stats.records++;
    this.stats.bytes += HEADER_BYTES + h.length;
    this.dispatch(h.kind, payload, h.offset);
    if (own) this.held.push({ buffer: own.buffer, replid: this.replid, offset: h.offset });
    return true;
  }

  private dispatch(kind: Kind, payload: Buffer, offset: number): void {
    const t = this.opts.target;
    switch (kind) {
      case Kind.FullResync:
        this.replid = payload.toString('latin1');
        this.offset = -1;
        t.fullResync(this.replid, offset);
        return;
      case Kind.Snapshot:
        t.snapshotData(payload);
        return;
      case Kind.SnapshotEnd:
        t.snapshotEnd();
        this.offset = offset;
        return;
      case Kind.Continue:
        this.replid = payload.toString('latin1');
        this.offset = offset;
        t.partialResync(this.replid, offset);
        return;
      case Kind.Commands: {
        const skip = this.skip;
        this.skip = 0;
        this.offset = offset;
        if (skip < payload.length) t.commands(skip > 0 ? payload.subarray(skip) : payload, offset);
        return;
      }
    }
  }

  private enterSegment(seq: number): void {
    this.seq = seq;
    this.pos = 0;
    this.skip = 0;
    // Inside a snapshot no checkpoint exists; the first segment after its end gets a mark.
    if (this.offset >= 0) this.marks.push({ seq, replid: this.replid, offset: this.offset });
    else if (this.spool.full || this.spool.underPressure) this.trimSnapshot(seq);
  }

  /**
   * The spool is full in the middle of a snapshot, which no checkpoint can release until it ends: drop the snapshot
   * segments already replayed so the link can read on. A restart before the snapshot completes then finds no
   * snapshot in the spool and asks the master for a new full sync: slower, never wrong.
   */
  private trimSnapshot(seq: number): void {
    const n = this.spool.releaseBefore(seq);
    if (n === 0) return;
    this.opts.logger.warn(
      { dir: this.spool.dir, segments: n, maxBytes: this.spool.maxBytes },
      'spool full during a snapshot larger than spool.maxBytes: replayed snapshot segments deleted early (a restart before the snapshot completes needs a new full sync)',
    );
    this.opts.progressed?.(false);
  }

  /**
   * `length` bytes at `pos`, from the window read ahead or a new one. A window never reaches past the segment's
   * `size`: the file may already hold the start of a record still being written in parts (Spool.appendCommandsPart),
   * its header a hole of zeros until the record is finished, and a window that kept those bytes would later show
   * that record with no header (issue 16: a replayer behind the link, reading just before a huge command).
   */
  private read(pos: number, length: number, seg: { path: string; size: number }): Buffer {
    const path = seg.path;
    if (
      pos >= this.windowPos &&
      pos + length <= this.windowPos + this.window.length &&
      this.fdSeq === this.seq
    )
      return this.window.subarray(pos - this.windowPos, pos - this.windowPos + length);
    const buf = Buffer.allocUnsafe(Math.max(length, Math.min(WINDOW, seg.size - pos)));
    const got = this.readInto(buf, pos, length, path);
    this.window = buf.subarray(0, got);
    this.windowPos = pos;
    return this.window.subarray(0, length);
  }

  /** A big record's payload in a buffer of exactly its size, not kept as the window (see `HeldRecord`). */
  private readOwn(pos: number, length: number, path: string): Buffer<ArrayBuffer> {
    // Not allocUnsafe's pool (it serves only small sizes), so the buffer's ArrayBuffer is this payload alone.
    const buf = Buffer.allocUnsafeSlow(length);
    this.readInto(buf, pos, length, path);
    return buf;
  }

  /** Fills `buf` from `pos` of the segment (less at the file's end); throws unless at least `length` bytes came. */
  private readInto(buf: Buffer, pos: number, length: number, path: string): number {
    const fd = this.openFd(path);
    let got = 0;
    try {
      while (got < buf.length) {
        const n = readSync(fd, buf, got, buf.length - got, pos + got);
        if (n === 0) break;
        got += n;
      }
    } catch (err) {
      throw spoolFsError(err, `reading spool segment ${path}`);
    }
    if (got < length)
      throw this.corrupt(path, `record ends past the end of the file (${got} of ${length} bytes)`);
    return got;
  }

  private openFd(path: string): number {
    if (this.fd !== null && this.fdSeq === this.seq) return this.fd;
    this.closeFd();
    try {
      this.fd = openSync(path, 'r');
    } catch (err) {
      throw spoolFsError(err, `opening spool segment ${path}`);
    }
    this.fdSeq = this.seq;
    this.window = Buffer.alloc(0);
    return this.fd;
  }

  private closeFd(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    this.fdSeq = -1;
  }

  private corrupt(path: string, reason: string): SpoolError {
    return new SpoolError(
      `spool segment ${path} is corrupt at byte ${this.pos}: ${reason}. Restart redtail: on start the spool is verified and cut before the bad record, and the master resends the rest (PSYNC, or a full sync if its backlog no longer has it)`,
      undefined,
      true,
    );
  }
}
