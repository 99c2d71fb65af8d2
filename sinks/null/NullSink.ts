import type { ReplicationPosition } from '../../src/events/ChangeEvent.js';
import type { EventBatch, Sink } from '../../src/pipeline/Sink.js';

/**
 * `--sink null`: takes every batch and writes nothing, for benchmarks (what the link, RESP framing, normalization
 * and the pipeline cost without any output) and dry runs (does redtail understand this master's stream?). It keeps no
 * checkpoint, so every start is a full resync.
 */
export class NullSink implements Sink {
  readonly name = 'null';
  /** Nothing to wait for: batches may follow each other without waiting for the previous one's completion. */
  readonly pipelined = true;
  readonly stats = { batches: 0, events: 0 };

  async open(): Promise<ReplicationPosition | null> {
    return null;
  }

  async write(batch: EventBatch): Promise<void> {
    this.stats.batches++;
    this.stats.events += batch.events.length;
  }

  async close(): Promise<void> {}
}
