import type { ReplicationPosition } from '../events/ChangeEvent.js';
import type { EventBatch, Sink } from '../pipeline/Sink.js';
import { LATENCY_BUCKETS, type Metrics } from './Metrics.js';

/** Why a sink counts as failing for /readyz, or null while it is healthy. */
export type SinkHealth = { failing: false } | { failing: true; reason: string };

interface Watched {
  sink: Sink;
  /** Start times of the writes in flight, oldest first (several for a pipelined sink). */
  writing: number[];
  /** The sink's own `stats.retries` after its last successful write: more now means it is retrying. */
  retriesAtLastSuccess: number;
}

/** Events of a batch by op, and the receive time of its oldest event. */
interface OpTally {
  byOp: Map<string, number>;
  oldest: number;
}

function tallyOps(batch: EventBatch): OpTally {
  const byOp = new Map<string, number>();
  let oldest = Number.POSITIVE_INFINITY;
  for (const e of batch.events) {
    byOp.set(e.op, (byOp.get(e.op) ?? 0) + 1);
    if (e.ts < oldest) oldest = e.ts;
  }
  return { byOp, oldest };
}

/** `stats.retries` of the sinks that count retries (Kafka, Postgres); 0 for the others. */
function retriesOf(sink: Sink): number {
  const r = (sink as { stats?: { retries?: unknown } }).stats?.retries;
  return typeof r === 'number' ? r : 0;
}

/**
 * Watches each sink from the outside, as a decorator the pipeline writes through: events by op, how long each
 * batch takes to become durable, how old a batch's oldest event is when it does (the end-to-end commit latency),
 * and whether the sink is failing (retrying, or one write stuck longer than `stallMs`). The sinks themselves are
 * unchanged; their own `stats` stay reachable through the decorator for the `stats` log line.
 */
export class SinkMonitor {
  private readonly watched: Watched[] = [];
  private readonly events;
  private readonly batchSeconds;
  private readonly commitLatency;

  constructor(
    metrics: Metrics,
    private readonly stallMs: number,
  ) {
    this.events = metrics.pushCounter(
      'redtail_sink_events_total',
      'Change events committed by a sink, by sink and op (snapshot events included; filtered-out ones are not).',
      ['sink', 'op'],
    );
    this.batchSeconds = metrics.histogram(
      'redtail_sink_batch_duration_seconds',
      "Time a sink took to write one batch and its checkpoint durably (the sink's write call).",
      ['sink'],
      LATENCY_BUCKETS,
    );
    this.commitLatency = metrics.histogram(
      'redtail_sink_commit_latency_seconds',
      "Time from the oldest event of a batch being read from the master to the batch's commit in the sink.",
      ['sink'],
      LATENCY_BUCKETS,
    );
    metrics.gauge({
      name: 'redtail_sink_failing',
      help: '1 while a sink is retrying a write or a write has been in flight longer than the stall limit.',
      label: 'sink',
      read: () => this.watched.map((w) => [w.sink.name, this.health(w).failing ? 1 : 0] as const),
    });
    metrics.counter({
      name: 'redtail_sink_retries_total',
      help: 'Failed sink writes (or opens) that the sink retried, from the Kafka and Postgres sinks.',
      label: 'sink',
      read: () => this.watched.map((w) => [w.sink.name, retriesOf(w.sink)] as const),
    });
  }

  /** The sink as the pipeline should see it. */
  wrap(sink: Sink): Sink {
    const w: Watched = { sink, writing: [], retriesAtLastSuccess: 0 };
    this.watched.push(w);
    const monitor = this;
    return {
      name: sink.name,
      // Forwarded, or the pipeline would keep one batch in flight for every sink behind the monitor.
      pipelined: sink.pipelined,
      get stats() {
        return (sink as { stats?: unknown }).stats;
      },
      open: (): Promise<ReplicationPosition | null> => sink.open(),
      close: () => sink.close(),
      write(batch: EventBatch): Promise<void> {
        const started = Date.now();
        // Counted now, applied once committed: holding the batch until then (an async function's frame would) keeps
        // its events alive through the sink's fsync (see Pipeline.startWrite).
        const tally = batch.events.length > 0 ? tallyOps(batch) : null;
        w.writing.push(started);
        // The oldest write still in flight is what a stall is measured from.
        const settled = () => w.writing.splice(w.writing.indexOf(started), 1);
        return sink.write(batch).then(
          () => {
            settled();
            monitor.committed(w, tally, started);
          },
          (err: unknown) => {
            settled();
            throw err;
          },
        );
      },
    } as Sink;
  }

  private committed(w: Watched, tally: OpTally | null, started: number): void {
    const now = Date.now();
    const name = w.sink.name;
    w.retriesAtLastSuccess = retriesOf(w.sink);
    this.batchSeconds.observe({ sink: name }, (now - started) / 1000);
    if (!tally) return;
    for (const [op, n] of tally.byOp) this.events.inc({ sink: name, op }, n);
    if (Number.isFinite(tally.oldest))
      this.commitLatency.observe({ sink: name }, Math.max(0, now - tally.oldest) / 1000);
  }

  private health(w: Watched, now = Date.now()): SinkHealth {
    if (retriesOf(w.sink) > w.retriesAtLastSuccess)
      return { failing: true, reason: `sink ${w.sink.name} is retrying a failed write` };
    const since = w.writing[0] ?? 0;
    if (since > 0 && now - since > this.stallMs)
      return {
        failing: true,
        reason: `sink ${w.sink.name} has been writing one batch for ${Math.round((now - since) / 1000)} s`,
      };
    return { failing: false };
  }

  /** Reasons why sinks are failing now (empty when none is). */
  failures(): string[] {
    const out: string[] = [];
    for (const w of this.watched) {
      const h = this.health(w);
      if (h.failing) out.push(h.reason);
    }
    return out;
  }
}
