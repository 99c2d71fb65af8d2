import type { SnapshotDecoderFactory } from '../pipeline/SnapshotDecoder.js';

/** The snapshot being loaded (or the last one), as counted by the decoder wrapper below. */
export interface SnapshotState {
  loading: boolean;
  keys: number;
  bytes: number;
  startedAt: number;
  finishedAt: number | null;
  /** The +FULLRESYNC position the snapshot stands for (null before any snapshot). */
  replid: string | null;
  offset: number;
  /** Set once the sinks committed it (see `uncommitted`); a later failover's new replid does not undo that. */
  committed: boolean;
}

/**
 * Counts a snapshot's keys and bytes as the decoder sees them, for the metrics, /readyz and the progress line: the
 * decoder factory is wrapped, so neither the link nor the replicator needs to know. A value streamed in parts
 * counts as one key at its last part.
 */
export class SnapshotTracker {
  readonly state: SnapshotState = {
    loading: false,
    keys: 0,
    bytes: 0,
    startedAt: 0,
    finishedAt: null,
    replid: null,
    offset: 0,
    committed: false,
  };

  wrap(factory: SnapshotDecoderFactory): SnapshotDecoderFactory {
    return (ctx) => {
      const s = this.state;
      s.loading = true;
      s.keys = 0;
      s.bytes = 0;
      s.startedAt = Date.now();
      s.finishedAt = null;
      s.replid = ctx.replid;
      s.offset = ctx.offset;
      s.committed = false;
      const decoder = factory({
        ...ctx,
        emit: (events, bytes) => {
          for (const e of events) if (e.op === 'snapshot' && e.last !== false) s.keys++;
          ctx.emit(events, bytes);
        },
      });
      return {
        write: (chunk) => {
          // Rates count from the first byte, not from +FULLRESYNC: the master's own save comes before it.
          if (s.bytes === 0) s.startedAt = Date.now();
          s.bytes += chunk.length;
          decoder.write(chunk);
        },
        end: () => {
          const summary = decoder.end();
          s.loading = false;
          s.finishedAt = Date.now();
          return summary;
        },
      };
    };
  }

  /**
   * True from a snapshot's start until the sinks have committed it, i.e. until the durable position is in the
   * snapshot's history at or past its offset.
   */
  uncommitted(durable: { replid: string; offset: number } | null): boolean {
    const s = this.state;
    if (s.replid === null || s.committed) return false;
    if (!durable || durable.replid !== s.replid || durable.offset < s.offset) return true;
    s.committed = true;
    return false;
  }
}
