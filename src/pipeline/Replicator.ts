import type { EventFilter } from '../commands/EventFilter.js';
import type { CommandContext } from '../commands/types.js';
import type { ChangeEvent, ControlEvent, ReplicationPosition } from '../events/ChangeEvent.js';
import type { StreamTarget } from '../link/ReplicationProtocol.js';
import type { Logger } from '../observe/logger.js';
import { argIs, argLatin1, type CommandArgs } from '../resp/CommandArgs.js';
import { RespReader } from '../resp/RespReader.js';
import type { Pipeline } from './Pipeline.js';
import type { SnapshotDecoder, SnapshotDecoderFactory } from './SnapshotDecoder.js';

/**
 * Turns one replicated command into zero or more change events. The arguments are a view the reader reuses for the
 * next command: keep only Buffers taken from it.
 */
export type CommandNormalizer = (args: CommandArgs, ctx: CommandContext) => ChangeEvent[];

export interface ReplicatorOptions {
  pipeline: Pipeline;
  normalize: CommandNormalizer;
  snapshot: SnapshotDecoderFactory;
  logger: Logger;
  /** `durable` (default): ACK what every sink committed, so WAIT means "in the sinks". `received`: ACK on receipt. */
  ack?: 'durable' | 'received';
  /** Where to resume from (the pipeline's lowest sink checkpoint). */
  start: ReplicationPosition | null;
  /** The config's include/exclude rules, applied to every event before any sink sees it. */
  filter?: EventFilter;
}

/**
 * The replica's view of the stream: tracks the replication id, offset and selected database, frames MULTI/EXEC,
 * drives the snapshot decoder, and turns commands into events for the pipeline.
 *
 * The resume position only moves at command boundaries outside a transaction: if the link drops inside MULTI,
 * the buffered part is discarded and PSYNC asks for the whole transaction again.
 */
export class Replicator implements StreamTarget {
  private replid: string | null;
  private offset: number;
  private db: number;
  /** Position at the last boundary outside a transaction. */
  private boundary: ReplicationPosition | null;
  private txn: ChangeEvent[] | null = null;
  private txnDb = 0;
  /** Stream bytes behind the events not yet handed to the pipeline (for its memory bound). */
  private pendingBytes = 0;
  private snapshot: SnapshotDecoder | null = null;
  /** Frames the stream into commands; a new one starts at every full or partial resync. */
  private reader: RespReader | null = null;
  readonly stats = { commands: 0, transactions: 0 };
  private readonly ctx: CommandContext = { db: 0, replid: '', offset: 0, ts: 0 };

  constructor(private readonly opts: ReplicatorOptions) {
    this.boundary = opts.start;
    this.replid = opts.start?.replid ?? null;
    this.offset = opts.start?.offset ?? 0;
    this.db = opts.start?.db ?? 0;
  }

  /** The last position whose effects have been handed to the pipeline. */
  get position(): ReplicationPosition | null {
    return this.boundary;
  }

  resumePosition(): { replid: string; offset: number } | null {
    if (this.snapshot) return null;
    return this.boundary ? { replid: this.boundary.replid, offset: this.boundary.offset } : null;
  }

  fullResync(replid: string, offset: number): void {
    const previous = this.boundary;
    // A snapshot still open here was cut off (the master's save failed or was aborted, the link dropped): its
    // first keys may already be downstream, and the new snapshot may lack some of them.
    const interrupted = this.snapshot !== null;
    this.opts.logger.info({ replid, offset, previous }, 'full resynchronization: loading the snapshot');
    this.replid = replid;
    this.offset = offset;
    // A master selects the database again before the first command after a full sync.
    this.db = 0;
    this.txn = null;
    this.pendingBytes = 0;
    this.boundary = null;
    this.opts.pipeline.forgetSkips();
    this.reader = this.newReader(offset);
    const events: ChangeEvent[] = [];
    if (previous) {
      // The master could not continue from our position (backlog overrun, another dataset, a new master without
      // our history). What the sinks hold may contain keys the new snapshot lacks; the snapshot that follows is
      // the whole truth, and sinks that keep state (Postgres mirror, Kafka state topic) drop what it lacks.
      this.opts.logger.warn(
        { requested: previous, replid, offset },
        'master refused to continue from the checkpoint; full resync',
      );
      events.push(
        this.control('resync', {
          reason: 'master answered +FULLRESYNC to PSYNC from the checkpoint',
          requested: { replid: previous.replid, offset: previous.offset },
        }),
      );
    }
    events.push(
      this.control(
        'snapshot-begin',
        interrupted ? { resync: true, interrupted: true } : { resync: previous !== null },
      ),
    );
    this.opts.pipeline.push(events, null);
    this.snapshot = this.opts.snapshot({
      replid,
      offset,
      emit: (decoded, bytes) => this.opts.pipeline.push(this.filtered(decoded), null, bytes),
    });
  }

  partialResync(replid: string, offset: number): void {
    if (this.reader?.atBoundary && offset === this.offset) {
      // The stream goes on byte for byte where it stopped (the spool's next segment after a reconnect, or a
      // PSYNC from this very position): an open MULTI stays open, since the master continues it.
      if (replid !== this.replid)
        this.opts.logger.info(
          { from: this.replid, to: replid, offset },
          'master history switched (failover)',
        );
      this.replid = replid;
      if (!this.txn) this.boundary = { replid, offset, db: this.db };
      return;
    }
    const pos = this.boundary!;
    if (replid !== pos.replid)
      this.opts.logger.info({ from: pos.replid, to: replid, offset }, 'master history switched (failover)');
    this.replid = replid;
    this.offset = offset;
    this.db = pos.db;
    this.txn = null;
    this.pendingBytes = 0;
    this.boundary = { replid, offset, db: pos.db };
    this.reader = this.newReader(offset);
  }

  /** Whole commands of the stream, as the link or the spool hands them over. */
  commands(bytes: Buffer, _endOffset: number): void {
    this.reader!.feed(bytes);
  }

  /**
   * The beginning of a big command, straight from the link (no spool). The reader assembles each bulk argument once,
   * at its announced length; the part is copied because the reader keeps views of short arguments (the key) until
   * the command ends, and the link's buffer may be reused.
   */
  commandPart(bytes: Buffer): void {
    this.reader!.feed(Buffer.from(bytes));
  }

  private newReader(offset: number): RespReader {
    return new RespReader({ lazy: (args, end) => this.command(args, end) }, offset);
  }

  snapshotData(chunk: Buffer): void {
    this.snapshot!.write(chunk);
  }

  snapshotEnd(): void {
    const summary = this.snapshot!.end();
    this.snapshot = null;
    this.boundary = { replid: this.replid!, offset: this.offset, db: this.db };
    this.opts.pipeline.push([this.control('snapshot-end', { ...summary })], this.boundary);
    this.opts.logger.info({ keys: summary.keys, bytes: summary.bytes }, 'snapshot loaded');
  }

  private command(args: CommandArgs, endOffset: number): void {
    this.pendingBytes += endOffset - this.offset;
    this.offset = endOffset;
    this.stats.commands++;
    if (argIs(args, 0, 'ping') || argIs(args, 0, 'replconf')) {
      if (!this.txn) this.advance([]);
      return;
    }
    if (argIs(args, 0, 'select')) {
      const db = args.length > 1 ? Number(argLatin1(args, 1)) : Number.NaN;
      if (Number.isInteger(db) && db >= 0) this.db = db;
      if (!this.txn) this.advance([]);
      return;
    }
    if (argIs(args, 0, 'multi')) {
      this.txn = [];
      this.txnDb = this.db;
      return;
    }
    if (argIs(args, 0, 'exec') && this.txn) {
      const events = this.txn;
      this.txn = null;
      const id = String(endOffset);
      for (const e of events) e.source.txn = id;
      this.stats.transactions++;
      this.advance(events);
      return;
    }
    // One context object, refilled per command: the normalizer reads it while it runs and keeps nothing of it.
    const ctx = this.ctx;
    ctx.db = this.db;
    ctx.replid = this.replid!;
    ctx.offset = endOffset;
    ctx.ts = Date.now();
    const events = this.opts.normalize(args, ctx);
    if (this.txn) {
      for (const e of events) this.txn.push(e);
      return;
    }
    this.advance(events);
  }

  ackOffset(): number {
    if (this.opts.ack === 'received') return this.boundary?.offset ?? this.offset;
    return this.opts.pipeline.durableOffset;
  }

  /** Offset just past the last command handed to the replicator (inside a transaction too). */
  get streamOffset(): number {
    return this.offset;
  }

  /** Database that was selected when the open transaction began (unused outside one). */
  get transactionDb(): number {
    return this.txnDb;
  }

  /** Filtered-out events still move the position: the checkpoint passes them like PINGs. */
  private filtered(events: ChangeEvent[]): ChangeEvent[] {
    const f = this.opts.filter;
    return f && events.length > 0 ? f.apply(events) : events;
  }

  private advance(events: ChangeEvent[]): void {
    this.boundary = { replid: this.replid!, offset: this.offset, db: this.db };
    this.opts.pipeline.push(this.filtered(events), this.boundary, this.pendingBytes);
    this.pendingBytes = 0;
  }

  private control(op: ControlEvent['op'], fields: Record<string, unknown>): ChangeEvent {
    return {
      v: 1,
      op,
      db: 0,
      ...fields,
      source: { replid: this.replid!, offset: this.offset, seq: 0, snapshot: true },
      ts: Date.now(),
    };
  }
}
