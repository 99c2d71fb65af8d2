import { defaults } from '../config/defaults.js';
import type { ChangeEvent, ReplicationPosition } from '../events/ChangeEvent.js';
import type { Logger } from '../observe/logger.js';
import type { EventBatch, Sink } from './Sink.js';

export interface PipelineOptions {
  logger: Logger;
  /** Flush when this many events are waiting. */
  maxBatchEvents?: number;
  /** Flush at most this long after the first waiting event (or position change). */
  lingerMs?: number;
  /**
   * Batches handed to the sinks before the first of them is durable, when every sink is `pipelined` (otherwise 1):
   * encoding and writing the next batches overlaps the commit (fsync, checkpoint) of the earlier ones.
   */
  maxInFlightBatches?: number;
  /** Ask the link to stop reading when this many events are buffered or in flight... */
  highWaterEvents?: number;
  /** ...and to read again below this many. */
  lowWaterEvents?: number;
  /**
   * The same bound in bytes of replication stream (or snapshot) behind the queued events, which tracks memory far
   * better than an event count when values are large. Reading resumes below half of it.
   */
  highWaterBytes?: number;
  /** Called with true to pause the replication socket, false to resume it. */
  onBackpressure?: (paused: boolean) => void;
  /** Called after every batch that became durable in all sinks, with its checkpoint. */
  onDurable?: (position: ReplicationPosition) => void;
  /** Called once when a sink write fails; nothing is written after it. */
  onError?: (err: Error) => void;
}

interface SinkState {
  sink: Sink;
  /** Events at or below this offset were committed before a restart; skipped for this sink only. */
  skipThrough: ReplicationPosition | null;
}

/** Events queued together: a run of `push` calls, so it ends at a position the caller gave (a safe boundary). */
interface Segment {
  events: ChangeEvent[];
  checkpoint: ReplicationPosition | null;
  bytes: number;
}

/** What the pipeline keeps of a batch handed to the sinks until it is durable. */
interface InFlight {
  events: number;
  bytes: number;
  checkpoint: ReplicationPosition | null;
}

/**
 * Batches events, hands each batch to every sink and tracks what is durable. Sinks see batches in stream order. One
 * batch is in flight at a time, or up to `maxInFlightBatches` when every sink is `pipelined`; completions are taken
 * in order, so the durable position never passes a batch that is not durable yet. While batches are in flight the
 * next ones queue up, which batches naturally under load. Queued events are kept in segments of about `maxBatchEvents`, cut only between `push` calls, so a batch is
 * bounded (one slow commit does not make the next batch, and its latency, grow without limit) and never ends inside
 * a MULTI/EXEC (the caller only pushes at command boundaries outside one).
 */
export class Pipeline {
  private readonly sinks: SinkState[];
  /** What waits to be written (events or only a newer position), oldest first. */
  private queue: Segment[] = [];
  private queuedEvents = 0;
  private queuedBytes = 0;
  /** Batches handed to the sinks and not yet durable, and the events and stream bytes behind them. */
  private inFlight = 0;
  private inFlightCount = 0;
  private inFlightBytes = 0;
  /** Settles after the last batch handed out is durable (or failed); completions chain on it in order. */
  private tail: Promise<void> = Promise.resolve();
  private readonly maxInFlight: number;
  private timer: NodeJS.Timeout | null = null;
  private paused = false;
  private failure: Error | null = null;
  private closed = false;
  private durable: ReplicationPosition | null = null;
  private readonly maxBatch: number;
  private readonly linger: number;
  private readonly high: number;
  private readonly low: number;
  private readonly highBytes: number;
  readonly stats = { events: 0, batches: 0, skipped: 0 };

  constructor(
    sinks: Sink[],
    private readonly opts: PipelineOptions,
  ) {
    this.sinks = sinks.map((sink) => ({ sink, skipThrough: null }));
    const d = defaults.pipeline;
    this.maxBatch = opts.maxBatchEvents ?? d.maxBatchEvents;
    this.linger = opts.lingerMs ?? d.lingerMs;
    this.high = opts.highWaterEvents ?? d.highWaterEvents;
    this.low = opts.lowWaterEvents ?? Math.floor(this.high / 2);
    this.highBytes = opts.highWaterBytes ?? d.highWaterBytes;
    this.maxInFlight = sinks.every((s) => s.pipelined)
      ? Math.max(1, opts.maxInFlightBatches ?? d.maxInFlightBatches)
      : 1;
  }

  /**
   * Opens every sink and returns where to resume: the lowest position any sink has, so that none misses anything.
   * Sinks that are further along skip events up to their own position. Positions of different replication histories
   * cannot be ordered; then the lowest offset still wins and the master decides (it answers +FULLRESYNC if it cannot
   * continue from there).
   */
  async open(): Promise<ReplicationPosition | null> {
    let resume: ReplicationPosition | null = null;
    let anyWithout = false;
    for (const s of this.sinks) {
      const pos = await s.sink.open();
      s.skipThrough = pos;
      if (!pos) anyWithout = true;
      else if (!resume || pos.offset < resume.offset) resume = pos;
    }
    // A sink without any checkpoint needs the whole dataset: only a full resync gives it.
    if (anyWithout) return null;
    this.durable = resume;
    return resume;
  }

  /** The highest offset every sink has durably committed (the `REPLCONF ACK` offset in durable mode). */
  get durableOffset(): number {
    return this.durable?.offset ?? 0;
  }

  get durablePosition(): ReplicationPosition | null {
    return this.durable;
  }

  /** Set when a sink failed; the caller stops and exits without advancing checkpoints. */
  get error(): Error | null {
    return this.failure;
  }

  /** A full resync starts a new history: nothing of it is in any sink yet. */
  forgetSkips(): void {
    for (const s of this.sinks) s.skipThrough = null;
  }

  /**
   * Queues events that end at `position` (null while a snapshot is loading: no resumable position exists then).
   * A position without events still matters: it advances checkpoints past PINGs and empty transactions.
   */
  push(events: ChangeEvent[], position: ReplicationPosition | null, bytes = 0): void {
    if (this.failure) throw this.failure;
    const last = this.queue[this.queue.length - 1];
    if (last && last.events.length < this.maxBatch) {
      for (let i = 0; i < events.length; i++) last.events.push(events[i]!);
      last.checkpoint = position;
      last.bytes += bytes;
    } else {
      this.queue.push({ events: events.slice(), checkpoint: position, bytes });
    }
    this.queuedEvents += events.length;
    this.queuedBytes += bytes;
    this.stats.events += events.length;
    this.schedule();
    if (
      !this.paused &&
      (this.queuedEvents + this.inFlightCount >= this.high ||
        this.queuedBytes + this.inFlightBytes >= this.highBytes)
    ) {
      this.paused = true;
      this.opts.onBackpressure?.(true);
    }
  }

  /** Writes everything queued and waits until it is durable. */
  async flush(): Promise<void> {
    while (this.inFlight > 0 || this.queue.length > 0) {
      if (this.failure) throw this.failure;
      if (this.queue.length > 0 && this.inFlight < this.maxInFlight) this.startWrite();
      else await this.tail;
    }
    if (this.failure) throw this.failure;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.failure) await this.flush();
    } finally {
      // After a failure nothing queued is written, so no checkpoint moves past what is really in the sinks.
      this.closed = true;
      if (this.timer) clearTimeout(this.timer);
      for (const s of this.sinks) await s.sink.close();
    }
  }

  private schedule(): void {
    if (this.inFlight >= this.maxInFlight) return;
    while (this.inFlight < this.maxInFlight && (this.queue.length > 1 || this.queuedEvents >= this.maxBatch))
      this.startWrite();
    if (this.queue.length > 0 && !this.timer && this.inFlight < this.maxInFlight) {
      this.timer = setTimeout(() => {
        this.timer = null;
        if (this.inFlight < this.maxInFlight && this.queue.length > 0) this.startWrite();
      }, this.linger);
    }
  }

  private startWrite(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const segment = this.queue.shift()!;
    const batch: EventBatch = { events: segment.events, checkpoint: segment.checkpoint };
    this.queuedEvents -= segment.events.length;
    this.queuedBytes -= segment.bytes;
    this.inFlight++;
    // Only the figures of the batch are kept until it is durable, not its events: a sink that encodes at `write`
    // (file, Kafka) lets them die young, instead of surviving scavenges while the fsync runs and being promoted
    // to the old generation (which made GC a quarter of redtail's time while draining, bench/NOTES.md S3).
    const done: InFlight = {
      events: segment.events.length,
      bytes: segment.bytes,
      checkpoint: segment.checkpoint,
    };
    this.inFlightCount += done.events;
    this.inFlightBytes += done.bytes;
    // Handed to the sinks now (in stream order); taken as durable only after every earlier batch was.
    const written = this.writeAll(batch);
    this.tail = Promise.all([this.tail, written]).then(
      () => this.written(done),
      (err: Error) => this.failed(err, done),
    );
  }

  private written(done: InFlight): void {
    this.inFlight--;
    this.inFlightCount -= done.events;
    this.inFlightBytes -= done.bytes;
    if (this.failure) return;
    this.stats.batches++;
    if (done.checkpoint) {
      this.durable = done.checkpoint;
      this.opts.onDurable?.(done.checkpoint);
    }
    // Bytes count what is in flight too, as when pausing: a huge value (issue 16) stays in memory until its batch is
    // durable, and reading on as soon as earlier small batches were done let the next huge value in beside it.
    if (
      this.paused &&
      this.queuedEvents < this.low &&
      this.queuedBytes + this.inFlightBytes < this.highBytes / 2
    ) {
      this.paused = false;
      this.opts.onBackpressure?.(false);
    }
    if (this.queue.length > 0 && !this.closed) {
      // Far behind: the next full batches go out at once, without waiting for the linger timer.
      while (this.queuedEvents > 0 && this.queue.length > 0 && this.inFlight < this.maxInFlight)
        this.startWrite();
      if (this.queue.length > 0) this.schedule();
    }
  }

  private failed(err: Error, done: InFlight): void {
    this.inFlight--;
    this.inFlightCount -= done.events;
    this.inFlightBytes -= done.bytes;
    if (this.failure) return;
    this.failure = err;
    this.opts.logger.error(
      { err: err.message },
      'sink write failed; stopping without advancing the checkpoint',
    );
    this.opts.onError?.(err);
  }

  /** Not an async function: its suspended frame would hold the batch (and its events) until every sink is done. */
  private writeAll(batch: EventBatch): Promise<unknown> {
    try {
      if (this.sinks.length === 1) return this.sinks[0]!.sink.write(this.forSink(this.sinks[0]!, batch));
      return Promise.all(this.sinks.map((s) => s.sink.write(this.forSink(s, batch))));
    } catch (err) {
      // A sink that throws instead of rejecting fails the same way.
      return Promise.reject(err);
    }
  }

  private forSink(s: SinkState, batch: EventBatch): EventBatch {
    const skip = s.skipThrough;
    if (!skip) return batch;
    const events = batch.events.filter((e) => e.source.snapshot || e.source.offset > skip.offset);
    this.stats.skipped += batch.events.length - events.length;
    const checkpoint = batch.checkpoint && batch.checkpoint.offset >= skip.offset ? batch.checkpoint : null;
    if (batch.checkpoint && batch.checkpoint.offset > skip.offset) s.skipThrough = null;
    return { events, checkpoint };
  }
}
