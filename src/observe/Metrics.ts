import { Counter, collectDefaultMetrics, Histogram, type Metric, Registry } from 'prom-client';

/**
 * What a read-on-scrape metric returns: one value, one value per label value (e.g. per sink), or null/undefined when
 * the value is not known (then no sample is exported, rather than a made-up 0).
 */
export type Reading = number | null | undefined | Iterable<readonly [string, number]>;

export interface ReadSpec {
  /** Full metric name, `redtail_…` with its unit (`_bytes`, `_seconds`, `_total` for counters). */
  name: string;
  help: string;
  /** The label that tells the values of an iterable reading apart (e.g. `sink`, `command`). */
  label?: string;
  read: () => Reading;
}

/**
 * The metrics registry of one redtail process. Most of redtail already counts what it does in `stats` objects
 * (link, pipeline, replicator, sinks, normalizer); a metric here reads such a value when Prometheus scrapes, so the
 * hot paths pay nothing. Adding a source (e.g. the spool's bytes) is one `gauge` or `counter` call with a `read`
 * function. Values that happen at a moment (a batch's latency, events by op) are pushed into `histogram`/`counter`
 * metrics created with `pushCounter`/`histogram` instead.
 */
export class Metrics {
  readonly registry = new Registry();

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics !== false) this.processMetrics();
  }

  /**
   * prom-client's process and Node.js metrics, less the three gauges it names `..._total` (promtool rejects a
   * gauge with a counter's suffix); `nodejs_active_resources` (by type) and `nodejs_active_handles` carry the same.
   */
  private processMetrics(): void {
    collectDefaultMetrics({ register: this.registry });
    for (const n of [
      'nodejs_active_handles_total',
      'nodejs_active_requests_total',
      'nodejs_active_resources_total',
    ])
      this.registry.removeSingleMetric(n);
  }

  /** A value that goes up and down (offsets, lag, queue sizes), read at scrape time. */
  gauge(spec: ReadSpec): void {
    this.registry.registerMetric(new ReadMetric(spec, 'gauge') as unknown as Metric);
  }

  /**
   * A cumulative count kept elsewhere (e.g. `link.stats.fullResyncs`), read at scrape time. The source must only
   * grow for the life of the process, as Prometheus's rate() assumes; it starts at 0 with the process.
   */
  counter(spec: ReadSpec): void {
    this.registry.registerMetric(new ReadMetric(spec, 'counter') as unknown as Metric);
  }

  /** A counter redtail increments itself, for things counted nowhere else (events by op and sink). */
  pushCounter<L extends string>(name: string, help: string, labelNames: L[]): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  histogram<L extends string>(name: string, help: string, labelNames: L[], buckets: number[]): Histogram<L> {
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }

  /** The text format Prometheus scrapes. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/**
 * A metric whose samples are read from `spec.read` at each scrape, registered with prom-client's registry through
 * the small interface it calls (`get`, `reset`). Unlike prom-client's own Gauge, an unknown value exports no sample
 * at all instead of 0: a snapshot size of 0 would be a lie when the master did not announce one.
 */
class ReadMetric {
  readonly name: string;
  readonly help: string;
  readonly aggregator = 'sum';

  constructor(
    private readonly spec: ReadSpec,
    readonly type: 'gauge' | 'counter',
  ) {
    this.name = spec.name;
    this.help = spec.help;
  }

  get(): {
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: { labels: Record<string, string>; value: number }[];
  } {
    const values: { labels: Record<string, string>; value: number }[] = [];
    const r = this.spec.read();
    if (typeof r === 'number') {
      if (Number.isFinite(r)) values.push({ labels: {}, value: r });
    } else if (r !== null && r !== undefined) {
      const label = this.spec.label;
      if (!label) throw new Error(`metric ${this.name} read several values but names no label`);
      for (const [k, v] of r) if (Number.isFinite(v)) values.push({ labels: { [label]: k }, value: v });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {}
}

/** Latency buckets in seconds, from sub-millisecond file writes to Kafka transactions stuck on retries. */
export const LATENCY_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];
