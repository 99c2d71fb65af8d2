import { LagTracker } from './LagTracker.js';
import type { Metrics } from './Metrics.js';
import type { SnapshotState } from './SnapshotTracker.js';

/** The link as the metrics see it: the `status` getter and the `stats` counters of src/link/ReplicaLink.ts. */
export interface LinkView {
  readonly status: {
    phase: 'connecting' | 'handshake' | 'snapshot' | 'streaming' | 'stopped';
    receivedOffset: number | null;
    snapshotBytesTotal: number | null;
  };
  readonly stats: {
    connects: number;
    fullResyncs: number;
    partialResyncs: number;
    snapshotBytes: number;
    streamBytes: number;
    droppedWhileHoldingBack: number;
  };
}

/** The counters of src/commands/normalize.ts (`normalizeCounters`). */
export interface NormalizerView {
  commands: number;
  events: number;
  unknown: number;
  parseErrors: number;
  unknownByCommand: ReadonlyMap<string, number>;
}

/**
 * Everything the replication metrics read, as small views rather than the classes themselves, so that a rewrite of
 * the link or the pipeline only has to keep these shapes (or its wiring in runCommand adapts them).
 */
export interface ReplicationViews {
  link: LinkView;
  /** The last position handed to the pipeline (the replicator's `position`). */
  processedOffset(): number | null;
  /** The highest offset every sink has committed (the pipeline's `durablePosition`). */
  durableOffset(): number | null;
  pipeline: { readonly stats: { events: number; batches: number; skipped: number } };
  replicator: { readonly stats: { commands: number; transactions: number } };
  normalizer: NormalizerView;
  snapshot: SnapshotState;
}

const PHASES = ['connecting', 'handshake', 'snapshot', 'streaming', 'stopped'] as const;

/**
 * Registers redtail's replication metrics (docs/metrics.md) and returns the lag tracker, which the caller samples
 * on a timer too so the lag in seconds does not depend on how often Prometheus scrapes.
 */
export function registerReplicationMetrics(m: Metrics, v: ReplicationViews): LagTracker {
  const lag = new LagTracker();
  registerOffsetMetrics(m, v, lag);
  registerLinkMetrics(m, v.link);
  registerSnapshotMetrics(m, v);
  registerPipelineMetrics(m, v);
  return lag;
}

/** Where the stream is: received, processed, durable, and the lag between the first and the last. */
function registerOffsetMetrics(m: Metrics, v: ReplicationViews, lag: LagTracker): void {
  const received = () => v.link.status.receivedOffset;
  const sampleLag = () => lag.sample(received(), v.durableOffset());

  m.gauge({
    name: 'redtail_master_offset_bytes',
    help: "The master's replication offset just past the last complete command redtail received.",
    read: received,
  });
  m.gauge({
    name: 'redtail_processed_offset_bytes',
    help: 'Replication offset of the last command turned into events and handed to the sinks.',
    read: () => v.processedOffset(),
  });
  m.gauge({
    name: 'redtail_durable_offset_bytes',
    help: 'Replication offset every sink has committed with its checkpoint (what a restart resumes from).',
    read: () => v.durableOffset(),
  });
  m.gauge({
    name: 'redtail_lag_bytes',
    help: 'Bytes of the replication stream received from the master but not yet committed by every sink.',
    read: () => {
      const r = received();
      return r === null ? null : Math.max(0, r - (v.durableOffset() ?? 0));
    },
  });
  m.gauge({
    name: 'redtail_lag_seconds',
    help: 'Seconds since the oldest data received but not yet committed by every sink was received; 0 when none.',
    read: () => {
      sampleLag();
      return lag.seconds();
    },
  });
  m.gauge({
    name: 'redtail_link_up',
    help: '1 while the replication link streams from the master (handshake done, snapshot received), else 0.',
    read: () => (v.link.status.phase === 'streaming' ? 1 : 0),
  });
}

/** The link to the master: its phase, connections, resyncs and bytes. */
function registerLinkMetrics(m: Metrics, link: LinkView): void {
  m.gauge({
    name: 'redtail_link_phase',
    help: 'The replication link phase: 1 for the current one (connecting, handshake, snapshot, streaming, stopped).',
    label: 'phase',
    read: () => PHASES.map((p) => [p, link.status.phase === p ? 1 : 0] as const),
  });
  const linkCounter = (name: string, help: string, read: () => number) => m.counter({ name, help, read });
  const s = () => link.stats;
  linkCounter(
    'redtail_link_connections_total',
    'TCP (or TLS) connections made to a master.',
    () => s().connects,
  );
  linkCounter(
    'redtail_link_reconnects_total',
    'Connections after the first one (the link was lost or moved to another master).',
    () => Math.max(0, s().connects - 1),
  );
  linkCounter(
    'redtail_full_resyncs_total',
    'Full resynchronizations (+FULLRESYNC: a snapshot followed).',
    () => s().fullResyncs,
  );
  linkCounter(
    'redtail_partial_resyncs_total',
    'Partial resynchronizations (+CONTINUE).',
    () => s().partialResyncs,
  );
  linkCounter(
    'redtail_link_dropped_while_holding_back_total',
    'Links the master closed while redtail held back for slow sinks (its replica output buffer limit, most likely).',
    () => s().droppedWhileHoldingBack,
  );
  m.counter({
    name: 'redtail_link_received_bytes_total',
    help: 'Bytes received from the master, by part of the stream (snapshot, stream).',
    label: 'part',
    read: () => [
      ['snapshot', s().snapshotBytes],
      ['stream', s().streamBytes],
    ],
  });
}

/** The snapshot being loaded, or the last one. */
function registerSnapshotMetrics(m: Metrics, v: ReplicationViews): void {
  m.gauge({
    name: 'redtail_snapshot_loading',
    help: '1 while a snapshot (full sync) is being loaded.',
    read: () => (v.snapshot.loading ? 1 : 0),
  });
  m.gauge({
    name: 'redtail_snapshot_loaded_keys',
    help: 'Keys decoded from the snapshot being loaded (or the last one).',
    read: () => v.snapshot.keys,
  });
  m.gauge({
    name: 'redtail_snapshot_loaded_bytes',
    help: 'Bytes of the snapshot being loaded (or the last one) read so far.',
    read: () => v.snapshot.bytes,
  });
  m.gauge({
    name: 'redtail_snapshot_size_bytes',
    help: 'Size of the snapshot being loaded (or the last one) when the master announced it ($<len>); absent for diskless transfers.',
    read: () => v.link.status.snapshotBytesTotal,
  });
}

/** What the replicator, the normalizer and the pipeline did with the commands. */
function registerPipelineMetrics(m: Metrics, v: ReplicationViews): void {
  const counter = (name: string, help: string, read: () => number) => m.counter({ name, help, read });
  counter(
    'redtail_commands_total',
    'Commands of the replication stream processed (PING and REPLCONF included).',
    () => v.replicator.stats.commands,
  );
  counter(
    'redtail_transactions_total',
    'MULTI/EXEC transactions processed.',
    () => v.replicator.stats.transactions,
  );
  counter(
    'redtail_pipeline_events_total',
    'Events handed to the pipeline (after filters).',
    () => v.pipeline.stats.events,
  );
  counter('redtail_pipeline_batches_total', 'Batches every sink committed.', () => v.pipeline.stats.batches);
  counter(
    'redtail_pipeline_skipped_events_total',
    'Events not written to a sink because its checkpoint already covered them (after a restart).',
    () => v.pipeline.stats.skipped,
  );
  counter(
    'redtail_command_parse_errors_total',
    'Commands whose arguments could not be parsed (sent on as op "command").',
    () => v.normalizer.parseErrors,
  );
  m.counter({
    name: 'redtail_unknown_commands_total',
    help: 'Commands redtail could not normalize, by command name (sent on as op "command").',
    label: 'command',
    read: () => v.normalizer.unknownByCommand,
  });
}
