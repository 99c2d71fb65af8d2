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
  /** Called with the master's answer to PSYNC before its record is appended (once, for the first handshake). */
  firstHandshake?: (answer: 'continue' | 'fullresync') => void;
}

const EMPTY = Buffer.alloc(0);

/**
 * The link's target when spooling: every handshake outcome, snapshot byte and command goes to the spool as it
 * arrives, so the master sees a replica reading at wire speed however slow the sinks are. The PSYNC position is the
 * spool's end, not the sinks': what the spool holds need not be sent again.
 */
export class SpoolTarget implements StreamTarget {
  private snapshotOffset = 0;
  private full = false;
  private diskFull = false;
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
    this.append(Kind.Commands, bytes, endOffset);
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

  /** Segments were released (or the replayer caught up): read the master again once there is room. */
  roomMaybe(replayerCaughtUp: boolean): void {
    if (!this.full) return;
    // A full disk: read again once a segment was released. The replayer having caught up is no sign of space (it
    // catches up into the pipeline's memory while the sinks, and with them the releases, stand still): retrying
    // then only fills the disk again at once, a PSYNC and an error line per backoff turn. Only when no checkpoint can
    // release anything (the disk is full of other files, or the spool ends in a snapshot download, which the master
    // restarts anyway) is a new try the one way to learn whether space came back.
    const nothingToRelease = this.spool.segments.length <= 1 || this.spool.end === null;
    const room = this.diskFull
      ? this.spool.bytes < this.bytesAtFull || (replayerCaughtUp && nothingToRelease)
      : this.spool.bytes < this.spool.maxBytes * 0.9;
    if (room) {
      this.full = false;
      this.diskFull = false;
      this.opts.logger.info(
        { dir: this.spool.dir, bytes: this.spool.bytes },
        'spool has room again: reading the master',
      );
      this.opts.backpressure(false);
    }
  }

  private handshake(answer: 'continue' | 'fullresync'): void {
    const first = this.opts.firstHandshake;
    this.opts.firstHandshake = undefined;
    first?.(answer);
  }

  private append(kind: Kind, payload: Buffer, offset: number, replid?: string): void {
    try {
      this.spool.append(kind, payload, offset, replid);
    } catch (err) {
      if (err instanceof SpoolError && err.diskFull) this.fill(true, err.message);
      throw err;
    }
    this.opts.appended();
    if (!this.full && this.spool.full) this.fill(false);
  }

  private fill(diskFull: boolean, message?: string): void {
    if (this.full && !diskFull) return;
    this.full = true;
    this.diskFull = diskFull;
    this.bytesAtFull = this.spool.bytes;
    const details = { dir: this.spool.dir, bytes: this.spool.bytes, maxBytes: this.spool.maxBytes };
    if (diskFull)
      this.opts.logger.error(
        { ...details, err: message },
        'spool: the disk is full; the link stops reading the master until released segments free space (the master resends what was not written)',
      );
    else
      this.opts.logger.warn(
        details,
        'spool is full (spool.maxBytes): the link stops reading the master until the sinks catch up; if the master drops redtail for its output buffer meanwhile, raise spool.maxBytes',
      );
    this.opts.backpressure(true);
  }
}
