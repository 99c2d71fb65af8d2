import type { Metrics } from './Metrics.js';

/** What the metrics read of the spool (src/spool/SpooledStream.ts). */
export interface SpoolView {
  readonly spool: {
    readonly bytes: number;
    readonly maxBytes: number;
    readonly segments: readonly unknown[];
    readonly stats: { bytesWritten: number; segmentsDeleted: number; fsyncs: number };
  };
  readonly replayer: { readonly behindBytes: number };
  readonly target: { readonly isFull: boolean };
}

/** The spool's gauges and counters (docs/metrics.md#spool). */
export function registerSpoolMetrics(m: Metrics, v: SpoolView): void {
  m.gauge({
    name: 'redtail_spool_bytes',
    help: 'Bytes the spool segments take on disk.',
    read: () => v.spool.bytes,
  });
  m.gauge({
    name: 'redtail_spool_max_bytes',
    help: 'spool.maxBytes: the disk the spool may take.',
    read: () => v.spool.maxBytes,
  });
  m.gauge({
    name: 'redtail_spool_segments',
    help: 'Segment files in the spool.',
    read: () => v.spool.segments.length,
  });
  m.gauge({
    name: 'redtail_spool_unreplayed_bytes',
    help: 'Spool bytes received from the master but not yet handed to the sinks (the lag held on disk).',
    read: () => v.replayer.behindBytes,
  });
  m.gauge({
    name: 'redtail_spool_full',
    help: '1 while the spool is full (spool.maxBytes or a full disk) and the link has stopped reading the master.',
    read: () => (v.target.isFull ? 1 : 0),
  });
  m.counter({
    name: 'redtail_spool_written_bytes_total',
    help: 'Bytes appended to the spool.',
    read: () => v.spool.stats.bytesWritten,
  });
  m.counter({
    name: 'redtail_spool_segments_deleted_total',
    help: 'Segments deleted once every sink had committed past them.',
    read: () => v.spool.stats.segmentsDeleted,
  });
  m.counter({
    name: 'redtail_spool_fsyncs_total',
    help: 'fsyncs of the segment being written.',
    read: () => v.spool.stats.fsyncs,
  });
}
