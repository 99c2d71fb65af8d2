import type { ReplicationPosition } from '../events/ChangeEvent.js';
import type { StreamTarget } from '../link/ReplicationProtocol.js';
import type { Logger } from '../observe/logger.js';
import { SpoolError } from './errors.js';
import { Kind } from './records.js';
import type { Spool } from './Spool.js';

export type SpoolAck = 'durable' | 'received' | 'spooled';

export interface SpoolTargetOptions {
  /** The sinks' lowest checkpoint: where to PSYNC from while the spool holds nothing. */
  base: ReplicationPosition | null;
  ack: SpoolAck;
  durableOffset: () => number;
  /** A record was appended: the replayer has more to read. */
  appended: () => void;
  /** The spool reached spool.maxBytes (or the disk is full): stop reading the master; false: read again. */
  backpressure: (full: boolean) => void;
  logger: Logger;
  /** A record kept back by a full disk could not be written for another reason: replay cannot go on. */
  failed: (err: Error) => void;
  /** Called with the master's answer to PSYNC before its record is appended (once, for the first handshake). */
  firstHandshake?: (answer: 'continue' | 'fullresync') => void;
}

const EMPTY = Buffer.alloc(0);
/** While the disk is full, how often writing the records kept back is tried again. */
const DISK_RETRY_MS = 1_000;

interface HeldRecord {
  kind: Kind;
  payload: Buffer;
  offset: number;
  replid?: string | undefined;
}

/**
 * The link's target when spooling: every handshake outcome, snapshot byte and command goes to the spool as it
 * arrives, so the master sees a replica reading at wire speed however slow the sinks are. The PSYNC position is the
 * spool's end, not the sinks': what the spool holds need not be sent again.
 */
export class SpoolTarget implements StreamTarget {
  private snapshotOffset = 0;
  private full = false;
  private diskFull = false;
  /**
   * Records that met a full disk. The link stops reading at once, so these are at most the rest of one socket
   * chunk; they are written, in order and before anything else, once space comes back. Ending the connection
   * instead would throw away a snapshot download, which the master can only restart from the beginning: with a
   * snapshot larger than the free disk that would be a full-sync loop.
   */
  private held: HeldRecord[] = [];
  private retryTimer: NodeJS.Timeout | null = null;
  /** The spool's size when it (or the disk) became full. */
  private bytesAtFull = 0;

  constructor(
    private readonly spool: Spool,
    private readonly opts: SpoolTargetOptions,
  ) {}

  /** True while the link is held back because the spool is full (spool.maxBytes or the disk). */
  get isFull(): boolean {
    return this.full;
  }

  resumePosition(): { replid: string; offset: number } | null {
    const end = this.spool.end;
    if (end) return end;
    // Records without an end: a snapshot download that was cut off, so only a new full sync helps.
    if (this.spool.hasRecords) return null;
    return this.opts.base ? { replid: this.opts.base.replid, offset: this.opts.base.offset } : null;
  }

  fullResync(replid: string, offset: number): void {
    this.handshake('fullresync');
    this.snapshotOffset = offset;
    this.append(Kind.FullResync, Buffer.from(replid, 'latin1'), offset, replid);
  }

  partialResync(replid: string, offset: number): void {
    this.handshake('continue');
    this.append(Kind.Continue, Buffer.from(replid, 'latin1'), offset, replid);
  }

  snapshotData(chunk: Buffer): void {
    this.append(Kind.Snapshot, chunk, this.snapshotOffset);
  }

  snapshotEnd(): void {
    this.append(Kind.SnapshotEnd, EMPTY, this.snapshotOffset);
  }

  commands(bytes: Buffer, endOffset: number): void {
    if (this.inParts) {
      this.inParts = false;
      this.spool.finishCommands(bytes, endOffset);
      this.opts.appended();
      if (!this.full && this.spool.full) this.fill(false);
      return;
    }
    this.append(Kind.Commands, bytes, endOffset);
  }

  /** True while a big command is being written to the spool in parts. */
  private inParts = false;

  /**
   * A big command's beginning (issue 16): written to the spool as it arrives, so a 512 MB value is never held in
   * memory by the link. A full disk in the middle of one cannot be ridden out by holding records back (its start is
   * already on disk, half a record): replay stops with the error, and the next start truncates the torn record
   * and asks the master for the command again (docs/resume.md).
   */
  commandPart(bytes: Buffer): void {
    if (this.held.length > 0)
      throw new SpoolError(
        'a command of more than 1 MB arrived while the disk was full; restart redtail once there is space (the master sends it again)',
        undefined,
        true,
      );
    this.inParts = true;
    this.spool.appendCommandsPart(bytes);
  }

  ackOffset(): number {
    switch (this.opts.ack) {
      case 'spooled':
        return this.spool.syncedThrough;
      case 'received':
        return this.spool.end?.offset ?? 0;
      default:
        return this.opts.durableOffset();
    }
  }

  /**
   * Segments were released (or the replayer caught up, or, with a full disk, a retry is due): read the master again
   * once there is room.
   */
  roomMaybe(_replayerCaughtUp: boolean, retry = false): void {
    if (!this.full) return;
    if (this.diskFull) {
      // Whether space came back is learnt by writing: after a release, or on the periodic retry.
      if (!(retry || this.spool.bytes < this.bytesAtFull)) return;
      if (!this.writeHeld()) {
        this.bytesAtFull = this.spool.bytes;
        return;
      }
    } else if (this.spool.bytes >= this.spool.maxBytes * 0.9) {
      return;
    }
    this.full = false;
    this.diskFull = false;
    this.spool.underPressure = false;
    this.opts.logger.info(
      { dir: this.spool.dir, bytes: this.spool.bytes },
      'spool has room again: reading the master',
    );
    this.opts.backpressure(false);
  }

  private handshake(answer: 'continue' | 'fullresync'): void {
    // A big command cut off by a lost connection: the master sends it again from the spool's end.
    if (this.inParts) {
      this.inParts = false;
      this.spool.abortCommands();
    }
    // A new PSYNC was asked from the spool's end, which excludes what is held: the master sends it again.
    this.held = [];
    const first = this.opts.firstHandshake;
    this.opts.firstHandshake = undefined;
    first?.(answer);
  }

  private append(kind: Kind, payload: Buffer, offset: number, replid?: string): void {
    if (this.held.length > 0) {
      this.held.push({ kind, payload: Buffer.from(payload), offset, replid });
      return;
    }
    try {
      this.spool.append(kind, payload, offset, replid);
    } catch (err) {
      if (!(err instanceof SpoolError && err.diskFull)) throw err;
      this.held.push({ kind, payload: Buffer.from(payload), offset, replid });
      this.fill(true, err.message);
      return;
    }
    this.opts.appended();
    if (!this.full && this.spool.full) this.fill(false);
  }

  /** Writes the records a full disk kept back; false while the disk is still full. */
  private writeHeld(): boolean {
    while (this.held.length > 0) {
      const r = this.held[0]!;
      try {
        this.spool.append(r.kind, r.payload, r.offset, r.replid);
      } catch (err) {
        if (err instanceof SpoolError && err.diskFull) return false;
        throw err;
      }
      this.held.shift();
      this.opts.appended();
    }
    return true;
  }

  private retryDisk(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.diskFull) return;
      try {
        this.roomMaybe(false, true);
      } catch (err) {
        this.opts.failed(err as Error);
      }
      if (this.diskFull) this.retryDisk();
    }, DISK_RETRY_MS);
    this.retryTimer.unref();
  }

  /** Stops the disk retries (at stop). */
  close(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private fill(diskFull: boolean, message?: string): void {
    if (this.full && !diskFull) return;
    this.full = true;
    this.diskFull = diskFull;
    this.bytesAtFull = this.spool.bytes;
    // Lets the replayer delete the snapshot segments it has replayed (a snapshot larger than the room left).
    this.spool.underPressure = true;
    if (diskFull) this.retryDisk();
    const details = { dir: this.spool.dir, bytes: this.spool.bytes, maxBytes: this.spool.maxBytes };
    if (diskFull)
      this.opts.logger.error(
        { ...details, err: message },
        'spool: the disk is full; the link stops reading the master until released segments free space, then writes what it holds and reads on',
      );
    else
      this.opts.logger.warn(
        details,
        'spool is full (spool.maxBytes): the link stops reading the master until the sinks catch up; if the master drops redtail for its output buffer meanwhile, raise spool.maxBytes',
      );
    this.opts.backpressure(true);
  }
}
