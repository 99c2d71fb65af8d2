import type { ReplicationPosition } from '../events/ChangeEvent.js';
import type { StreamTarget } from '../link/ReplicationProtocol.js';
import type { Logger } from '../observe/logger.js';
import { Spool } from './Spool.js';
import { SpoolReplayer } from './SpoolReplayer.js';
import { type SpoolAck, SpoolTarget } from './SpoolTarget.js';

export interface SpooledStreamOptions {
  dir: string;
  maxBytes: number;
  segmentBytes: number;
  fsyncIntervalMs: number;
  ack: SpoolAck;
  /** The sinks' lowest checkpoint (null: they need a full sync). */
  from: ReplicationPosition | null;
  /** The replicator, which gets the spooled stream at the sinks' pace. */
  replicator: StreamTarget;
  durableOffset: () => number;
  /** Pauses (true) or resumes the link's reading when the spool is full or has room again. */
  linkBackpressure: (full: boolean) => void;
  /** The ACK offset moved (spooled mode: an fsync completed). */
  ackAdvanced: () => void;
  logger: Logger;
}

/**
 * The spool wired between the link and the replicator: the link writes into `target`; the replayer feeds the
 * replicator; the pipeline's backpressure pauses the replayer instead of the link; durable checkpoints release
 * segments. On open, what the spool holds past the sinks' checkpoint is replayed before the link asks the master
 * for anything, and the link then continues (PSYNC) from the spool's end.
 */
export class SpooledStream {
  readonly spool: Spool;
  readonly target: SpoolTarget;
  readonly replayer: SpoolReplayer;
  private timer: NodeJS.Timeout | null = null;
  private failure: ((err: Error) => void) | null = null;
  /** Rejects when replay cannot go on. */
  readonly failed: Promise<never>;

  constructor(opts: SpooledStreamOptions) {
    const { logger } = opts;
    this.failed = new Promise<never>((_, reject) => {
      this.failure = reject;
    });
    this.failed.catch(() => {});
    this.spool = Spool.open({
      dir: opts.dir,
      maxBytes: opts.maxBytes,
      segmentBytes: opts.segmentBytes,
      logger,
    });
    const start = this.spool.locate(opts.from);
    if (!start)
      this.spool.discardAll(
        opts.from
          ? `it does not hold the sinks' checkpoint ${opts.from.replid}:${opts.from.offset}`
          : 'it holds no complete snapshot and the sinks need one',
      );
    this.replayer = new SpoolReplayer(this.spool, {
      target: opts.replicator,
      logger,
      onError: (err) => this.failure?.(err),
      progressed: (caughtUp) => this.target.roomMaybe(caughtUp),
    });
    // A checkpoint found in the spool proves the spool is this master's history (replication ids are random). A
    // spooled snapshot for sinks that have nothing proves nothing yet: the spool may come from another master
    // (a reused volume). The master's answer to PSYNC from the spool's end decides: +CONTINUE, it is ours, replay
    // it; +FULLRESYNC, it is not, drop it and load the new snapshot.
    const validate = start !== null && opts.from === null;
    this.target = new SpoolTarget(this.spool, {
      base: opts.from,
      ack: opts.ack,
      durableOffset: opts.durableOffset,
      appended: () => this.replayer.appended(),
      backpressure: opts.linkBackpressure,
      failed: (err) => this.failure?.(err),
      logger,
      ...(validate
        ? {
            firstHandshake: (answer: 'continue' | 'fullresync') => {
              if (answer === 'continue') {
                logger.info(
                  { dir: opts.dir, end: this.spool.end },
                  'the master continues the spooled history: replaying its snapshot',
                );
                this.replayer.start(start, null);
                return;
              }
              this.spool.discardAll('the master does not continue its history (+FULLRESYNC)');
              this.replayer.start(null, null);
            },
          }
        : {}),
    });
    if (!validate) {
      if (start)
        logger.info(
          {
            dir: opts.dir,
            bytes: this.spool.bytes,
            segments: this.spool.segments.length,
            from: opts.from,
            end: this.spool.end,
          },
          'replaying the spool before continuing from the master',
        );
      this.replayer.start(start, opts.from);
    }
    this.timer = setInterval(
      () => this.spool.sync(() => opts.ack === 'spooled' && opts.ackAdvanced()),
      opts.fsyncIntervalMs,
    );
    this.timer.unref();
  }

  /** The pipeline is above (true) or back below (false) its high-water mark. */
  sinkBackpressure(paused: boolean): void {
    if (paused) this.replayer.pause();
    else this.replayer.resume();
  }

  durable(position: ReplicationPosition): void {
    this.replayer.durable(position);
  }

  /** Figures for the stats line and metrics. */
  get stats(): Record<string, unknown> {
    return {
      dir: this.spool.dir,
      bytes: this.spool.bytes,
      segments: this.spool.segments.length,
      end: this.spool.end,
      unreplayedBytes: this.replayer.behindBytes,
      /** The oldest offset not yet handed to the sinks (the replayer's position). */
      replayedOffset: this.replayer.position,
      ...this.spool.stats,
      replayedRecords: this.replayer.stats.records,
    };
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.target.close();
    this.replayer.stop();
    this.spool.close();
  }
}
