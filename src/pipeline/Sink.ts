import type { ChangeEvent, ReplicationPosition } from '../events/ChangeEvent.js';

/**
 * A batch the pipeline hands to every sink. It never splits a MULTI/EXEC transaction.
 */
export interface EventBatch {
  events: ChangeEvent[];
  /**
   * The resume position after this batch (covers non-event bytes such as PING too), to be stored atomically with
   * the events. `null` while a snapshot is still loading: a position inside a snapshot cannot be resumed from, so the
   * sink must not advance its checkpoint for such a batch.
   */
  checkpoint: ReplicationPosition | null;
}

/**
 * A destination for change events. The contract that makes exactly-once possible: `write` resolves only when the
 * events and the checkpoint are durable together, and `open` returns the last checkpoint so the pipeline can resume
 * with PSYNC and skip what this sink already has.
 */
export interface Sink {
  /** Stable name, also the key of this sink's checkpoint. */
  readonly name: string;
  /**
   * True when `write` may be called again before the previous call resolved: the sink commits batches in the order
   * of the calls and resolves them in that order (e.g. the file sink appends the next batch while the previous one is
   * fsynced). Sinks without it get one batch at a time.
   */
  readonly pipelined?: boolean;
  /** Connects and prepares; returns the last durably committed position, or null when there is none. */
  open(): Promise<ReplicationPosition | null>;
  /**
   * Durably writes the events and the checkpoint as one unit. The events' Buffers are valid until the returned
   * promise resolves, not after: the spool replayer then frees a big record's buffer, which empties every view of it
   * (src/spool/SpoolReplayer.ts, `HeldRecord`). Copy what you keep.
   */
  write(batch: EventBatch): Promise<void>;
  /** Flushes and releases resources; no write follows. */
  close(): Promise<void>;
}
