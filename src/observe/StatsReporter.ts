import { normalizeCounters } from '../commands/normalize.js';
import type { ReplicaLink } from '../link/ReplicaLink.js';
import type { Pipeline } from '../pipeline/Pipeline.js';
import type { Replicator } from '../pipeline/Replicator.js';
import type { Sink } from '../pipeline/Sink.js';
import type { Logger } from './logger.js';

/**
 * Periodic `stats` log line: what the link, the pipeline, the normalizer (unknown commands above all) and each sink
 * (retries, the Kafka sink's delivery mode) have counted. Operators grep or ship it like any pino line.
 */
export class StatsReporter {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly logger: Logger,
    private readonly parts: {
      link: ReplicaLink;
      pipeline: Pipeline;
      replicator: Replicator;
      sinks: Sink[];
      spool?: { stats: Record<string, unknown> } | null;
      lagSeconds?: () => number | null;
    },
  ) {}

  start(intervalMs: number): void {
    if (intervalMs <= 0) return;
    this.timer = setInterval(() => this.report(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  snapshot(): Record<string, unknown> {
    const { link, pipeline, replicator, sinks } = this.parts;
    const sinkStats: Record<string, unknown> = {};
    for (const s of sinks) {
      const stats = (s as { stats?: unknown }).stats;
      if (stats !== undefined) sinkStats[s.name] = stats;
    }
    const durable = pipeline.durablePosition;
    return {
      link: { ...link.stats, phase: link.phase, receivedOffset: link.receivedOffset },
      ...(this.parts.spool ? { spool: this.parts.spool.stats } : {}),
      // Bytes of the master's stream read but not yet committed by every sink (same history only).
      lagBytes: durable && link.receivedOffset > 0 ? Math.max(0, link.receivedOffset - durable.offset) : null,
      lagSeconds: this.parts.lagSeconds?.() ?? null,
      replicator: replicator.stats,
      position: replicator.position,
      durable: pipeline.durablePosition,
      pipeline: pipeline.stats,
      commands: {
        seen: normalizeCounters.commands,
        events: normalizeCounters.events,
        unknown: normalizeCounters.unknown,
        parseErrors: normalizeCounters.parseErrors,
        unknownByCommand: Object.fromEntries(normalizeCounters.unknownByCommand),
      },
      sinks: sinkStats,
    };
  }

  report(): void {
    this.logger.info(this.snapshot(), 'stats');
  }
}
