import type { ReplicationPosition } from '../events/ChangeEvent.js';
import type { Sink } from '../pipeline/Sink.js';
import type { SnapshotDecoderFactory } from '../pipeline/SnapshotDecoder.js';
import { HttpEndpoint } from './HttpEndpoint.js';
import type { LagTracker } from './LagTracker.js';
import type { Logger } from './logger.js';
import { Metrics } from './Metrics.js';
import { ProgressLine } from './progress.js';
import { SinkMonitor } from './SinkMonitor.js';
import { SnapshotTracker } from './SnapshotTracker.js';
import { type LinkView, type NormalizerView, registerReplicationMetrics } from './sources.js';
import { registerSpoolMetrics, type SpoolView } from './spoolMetrics.js';

export interface ObservabilitySettings {
  /** `host:port` of the HTTP endpoint, or undefined for none. */
  http?: string;
  readiness: { duringSnapshot: boolean; sinkStallMs: number };
  /** Show the snapshot progress line (stderr is a terminal with readable logs). */
  progress: boolean;
}

/** The running parts, once they exist (after the sinks are open). */
export interface RunningParts {
  link: LinkView;
  pipeline: {
    readonly stats: { events: number; batches: number; skipped: number };
    readonly durablePosition: ReplicationPosition | null;
  };
  replicator: {
    readonly stats: { commands: number; transactions: number };
    readonly position: ReplicationPosition | null;
  };
  normalizer: NormalizerView;
  /** The spool, when on. */
  spool?: SpoolView | null;
}

/**
 * Metrics, probes and the progress line of `redtail run`, kept out of runCommand: it wraps the sinks and the
 * snapshot decoder to count what passes, reads the link, pipeline and replicator through small views once they
 * exist (`attach`), and serves them over HTTP from the start, so a liveness probe answers while the sinks open.
 */
export class Observability {
  readonly metrics = new Metrics();
  private readonly snapshots = new SnapshotTracker();
  private readonly sinkMonitor: SinkMonitor;
  private http: HttpEndpoint | null = null;
  private parts: RunningParts | null = null;
  private lag: LagTracker | null = null;
  private sampler: NodeJS.Timeout | null = null;
  private progress: ProgressLine | null = null;

  constructor(
    private readonly settings: ObservabilitySettings,
    private readonly logger: Logger,
  ) {
    this.sinkMonitor = new SinkMonitor(this.metrics, settings.readiness.sinkStallMs);
    this.metrics.gauge({
      name: 'redtail_ready',
      help: '1 when /readyz answers 200 (link streaming, snapshot committed, no sink failing), else 0.',
      read: () => (this.notReady().length === 0 ? 1 : 0),
    });
  }

  /** Starts the HTTP endpoint when configured; rejects with a clear message when it cannot listen. */
  async start(): Promise<void> {
    if (!this.settings.http) return;
    this.http = new HttpEndpoint({
      listen: this.settings.http,
      metrics: this.metrics,
      ready: () => this.notReady(),
      logger: this.logger,
    });
    await this.http.start();
  }

  wrapSinks(sinks: Sink[]): Sink[] {
    return sinks.map((s) => this.sinkMonitor.wrap(s));
  }

  wrapSnapshot(factory: SnapshotDecoderFactory): SnapshotDecoderFactory {
    return this.snapshots.wrap(factory);
  }

  attach(parts: RunningParts): void {
    this.parts = parts;
    this.lag = registerReplicationMetrics(this.metrics, {
      link: parts.link,
      processedOffset: () => parts.replicator.position?.offset ?? null,
      durableOffset: () => parts.pipeline.durablePosition?.offset ?? null,
      pipeline: parts.pipeline,
      replicator: parts.replicator,
      normalizer: parts.normalizer,
      snapshot: this.snapshots.state,
    });
    if (parts.spool) registerSpoolMetrics(this.metrics, parts.spool);
    this.sampler = setInterval(() => {
      this.lag?.sample(parts.link.status.receivedOffset, parts.pipeline.durablePosition?.offset ?? null);
      this.snapshots.uncommitted(parts.pipeline.durablePosition);
    }, 200);
    this.sampler.unref();
    if (this.settings.progress) {
      const s = this.snapshots.state;
      this.progress = new ProgressLine('snapshot', () =>
        s.loading
          ? {
              keys: s.keys,
              bytes: s.bytes,
              totalBytes: parts.link.status.snapshotBytesTotal,
              startedAt: s.startedAt,
            }
          : null,
      ).start();
    }
  }

  /** Seconds since the oldest received-but-not-durable offset was seen (0 when caught up); null before attach. */
  lagSeconds(): number | null {
    return this.lag ? this.lag.seconds() : null;
  }

  /** Why /readyz says no; empty when ready. */
  notReady(): string[] {
    const p = this.parts;
    if (!p) return ['starting: the sinks are not open yet'];
    const reasons: string[] = [];
    const phase = p.link.status.phase;
    const snapshotOk = this.settings.readiness.duringSnapshot;
    if (phase !== 'streaming' && !(snapshotOk && phase === 'snapshot'))
      reasons.push(`the replication link is ${phase === 'snapshot' ? 'receiving a snapshot' : phase}`);
    if (!snapshotOk && this.snapshots.uncommitted(p.pipeline.durablePosition))
      reasons.push('a full sync is loading: the sinks have not committed the snapshot yet');
    reasons.push(...this.sinkMonitor.failures());
    return reasons;
  }

  /** What a forced stop leaves uncommitted, and where the next start resumes. */
  unflushed(): string {
    const p = this.parts;
    if (!p) return 'nothing was streamed yet (the sinks were still opening)';
    const durable = p.pipeline.durablePosition;
    const received = p.link.status.receivedOffset;
    const at = durable
      ? `the checkpoint is at ${durable.replid}:${durable.offset}`
      : 'no checkpoint yet (the next start does a full sync)';
    if (received === null || (durable && received <= durable.offset)) return `nothing (${at})`;
    const from = durable ? durable.offset : 0;
    return `${received - from} bytes of the replication stream (offsets ${from}..${received}) received but not committed by every sink; ${at}`;
  }

  async stop(): Promise<void> {
    this.progress?.stop();
    if (this.sampler) clearInterval(this.sampler);
    await this.http?.stop();
  }
}
