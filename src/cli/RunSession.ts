import type { StateLocks } from '../checkpoint/StateLock.js';
import { EventFilter, parseEventFilterConfig } from '../commands/EventFilter.js';
import { normalizeCommand, normalizeCounters } from '../commands/normalize.js';
import { ConfigError, type RedtailConfig, spoolDir } from '../config/Config.js';
import type { ReplicationPosition } from '../events/ChangeEvent.js';
import { isFatal } from '../link/errors.js';
import type { MasterLocator } from '../link/MasterLocator.js';
import { ReplicaLink } from '../link/ReplicaLink.js';
import type { MasterTls } from '../link/tls.js';
import { type Logger, prettyLogs } from '../observe/logger.js';
import { Observability } from '../observe/Observability.js';
import { displayEndpoint, scrubbedMessage } from '../observe/redact.js';
import { StatsReporter } from '../observe/StatsReporter.js';
import { Pipeline } from '../pipeline/Pipeline.js';
import { type CommandNormalizer, Replicator } from '../pipeline/Replicator.js';
import type { Sink } from '../pipeline/Sink.js';
import { type SnapshotDecoderFactory, skipSnapshot } from '../pipeline/SnapshotDecoder.js';
import { SpooledStream } from '../spool/SpooledStream.js';
import { Shutdown, StoppedWhileOpening } from './Shutdown.js';
import { createSinks } from './sinks.js';
import { lockLocalState } from './stateLocks.js';

export interface RunHooks {
  normalize?: CommandNormalizer;
  snapshot?: SnapshotDecoderFactory;
}

export interface RunSessionOptions {
  config: RedtailConfig;
  logger: Logger;
  locator: MasterLocator;
  masterTls: MasterTls;
  hooks: RunHooks;
}

/**
 * One `redtail run` from the sinks opening to the last log line: the parts (sinks, pipeline, spool, link, stats) are
 * built in that order and stopped in the reverse one. The order matters: the local locks come before any sink opens
 * (the file sink truncates on open), and the link starts last, once the sinks said where to resume.
 */
export class RunSession {
  private readonly config: RedtailConfig;
  private readonly logger: Logger;
  private readonly observe: Observability;
  private readonly shutdown: Shutdown;
  /** Ends a wait for another instance's lock at the first signal. */
  private readonly stopping = new AbortController();
  private link: ReplicaLink | null = null;
  private stats: StatsReporter | null = null;
  private pipeline: Pipeline | null = null;
  private spooled: SpooledStream | null = null;
  private sinkError: Error | null = null;
  private readonly sinkFailed: Promise<never>;
  private sinkFailure: (err: Error) => void = () => {};

  constructor(private readonly options: RunSessionOptions) {
    this.config = options.config;
    this.logger = options.logger;
    this.sinkFailed = new Promise<never>((_, reject) => {
      this.sinkFailure = reject;
    });
    this.sinkFailed.catch(() => {});
    this.observe = new Observability(
      {
        http: this.config.http,
        readiness: this.config.readiness,
        progress: prettyLogs(this.config.logFormat) && !!process.stderr.isTTY,
      },
      this.logger,
    );
    this.shutdown = new Shutdown({
      logger: this.logger,
      timeoutMs: this.config.shutdownTimeoutMs,
      unflushed: () => this.observe.unflushed(),
    }).install();
    this.shutdown.requested.then(() => this.stopping.abort());
  }

  /** The exit status: 0 after a stop, 1 after a failure, 2 for a configuration error. */
  async run(): Promise<number> {
    try {
      return await this.stream();
    } catch (err) {
      return await this.failed(err);
    } finally {
      this.stats?.stop();
      await this.observe.stop();
      this.shutdown.dispose();
      // A client library may keep timers or sockets alive (kafkajs retrying an unreachable broker): once redtail has
      // said its last line, nothing it still holds matters.
      setTimeout(() => process.exit(), 2_000).unref();
    }
  }

  private async stream(): Promise<number> {
    await this.observe.start();
    const filter = eventFilter(this.config);
    // Before any sink opens (the file sink truncates on open): a second instance must fail without writing.
    const locks = await lockLocalState(this.config, this.logger, this.stopping.signal);
    if (!locks) return 0; // stopped while waiting for the lock
    this.shutdown.phase = 'opening the sinks';
    const sinks = this.observe.wrapSinks(await this.createSinks());
    const pipeline = this.createPipeline(sinks);
    const start = await this.openPipeline(pipeline, sinks);
    this.shutdown.phase = 'streaming';
    this.logger.info(
      {
        master: this.options.locator.describe(),
        sinks: this.config.sinks.map(displayEndpoint),
        resume: start ?? 'full resync',
      },
      'starting replication',
    );
    const replicator = this.createReplicator(pipeline, start, filter);
    if (this.config.spool.enabled) this.spooled = this.createSpool(pipeline, start, replicator);
    const link = this.createLink(replicator);
    this.startStats(link, pipeline, replicator, sinks);
    await this.follow(link);
    return this.stop(pipeline, locks);
  }

  private createSinks(): Promise<Sink[]> {
    return createSinks(
      this.config,
      this.logger,
      () => this.link?.connectedMaster ?? null,
      this.options.masterTls,
      (reason) => this.link?.requestHandshake(reason),
    );
  }

  private createPipeline(sinks: Sink[]): Pipeline {
    const { pipeline: limits } = this.config;
    this.pipeline = new Pipeline(sinks, {
      logger: this.logger,
      maxBatchEvents: limits.maxBatchEvents,
      lingerMs: limits.lingerMs,
      highWaterEvents: limits.highWaterEvents,
      highWaterBytes: limits.highWaterBytes,
      maxInFlightBatches: limits.maxInFlightBatches,
      // With the spool the sinks' pace holds back the replay, never the link: the master sees a fast replica.
      onBackpressure: (paused) => {
        if (this.spooled) this.spooled.sinkBackpressure(paused);
        else if (paused) this.link?.pause();
        else this.link?.resume();
      },
      onDurable: (position) => {
        this.spooled?.durable(position);
        this.link?.ackAdvanced();
      },
      onError: (err) => {
        this.sinkError = err;
        this.sinkFailure(err);
      },
    });
    return this.pipeline;
  }

  /** Where to resume; a stop while a sink still connects (brokers down) must not wait for it: nothing is streamed yet. */
  private async openPipeline(pipeline: Pipeline, sinks: Sink[]): Promise<ReplicationPosition | null> {
    const opening = pipeline.open().then((p) => ({ p }));
    opening.catch(() => {});
    const opened = await Promise.race([opening, this.shutdown.requested]);
    if (!opened) throw new StoppedWhileOpening(sinks.map((s) => s.name));
    return opened.p;
  }

  private createReplicator(
    pipeline: Pipeline,
    start: ReplicationPosition | null,
    filter: EventFilter,
  ): Replicator {
    const { config, options } = this;
    return new Replicator({
      pipeline,
      logger: this.logger,
      start,
      ack: config.ack === 'received' ? 'received' : 'durable',
      filter,
      normalize: options.hooks.normalize ?? normalizeCommand,
      snapshot: this.observe.wrapSnapshot(
        config.snapshot === 'skip' ? skipSnapshot : (options.hooks.snapshot ?? skipSnapshot),
      ),
    });
  }

  private createSpool(
    pipeline: Pipeline,
    start: ReplicationPosition | null,
    replicator: Replicator,
  ): SpooledStream {
    const { spool } = this.config;
    return new SpooledStream({
      dir: spoolDir(this.config),
      maxBytes: spool.maxBytes,
      segmentBytes: spool.segmentBytes,
      fsyncIntervalMs: spool.fsyncIntervalMs,
      ack: this.config.ack,
      from: start,
      replicator,
      durableOffset: () => pipeline.durableOffset,
      linkBackpressure: (full) => (full ? this.link?.pause() : this.link?.resume()),
      ackAdvanced: () => this.link?.ackAdvanced(),
      logger: this.logger,
    });
  }

  private createLink(replicator: Replicator): ReplicaLink {
    const { link: options } = this.config;
    this.link = new ReplicaLink({
      locator: this.options.locator,
      target: this.spooled?.target ?? replicator,
      targetCopies: this.spooled !== null,
      logger: this.logger,
      listeningPort: options.listeningPort,
      announceIp: options.announceIp,
      readTimeoutMs: options.readTimeoutMs,
      minFullSyncIntervalMs: options.minFullSyncIntervalMs,
      connectTimeoutMs: options.connectTimeoutMs,
      ackIntervalMs: options.ackIntervalMs,
    });
    return this.link;
  }

  private startStats(link: ReplicaLink, pipeline: Pipeline, replicator: Replicator, sinks: Sink[]): void {
    const spool = this.spooled;
    this.observe.attach({ link, pipeline, replicator, normalizer: normalizeCounters, spool });
    this.stats = new StatsReporter(this.logger, {
      link,
      pipeline,
      replicator,
      sinks,
      spool,
      lagSeconds: () => this.observe.lagSeconds(),
    });
    this.stats.start(this.config.statsIntervalMs);
  }

  /** Streams until the link ends, a sink or the spool fails, or a signal asks to stop. */
  private async follow(link: ReplicaLink): Promise<void> {
    const running = link.run();
    const spoolFailed = this.spooled ? [this.spooled.failed] : [];
    await Promise.race([running, this.sinkFailed, this.shutdown.requested, ...spoolFailed]);
    this.shutdown.phase = 'draining the sinks';
    await link.stop();
    await running;
  }

  private async stop(pipeline: Pipeline, locks: StateLocks): Promise<number> {
    this.spooled?.close();
    await pipeline.close();
    // Only after the sinks are closed; after a failure the process's exit frees the locks, once nothing can write.
    locks.release();
    this.stats?.stop();
    this.logger.info({ ...this.stats?.snapshot(), position: pipeline.durablePosition }, 'stopped');
    return 0;
  }

  private async failed(err: unknown): Promise<number> {
    await this.link?.stop().catch(() => {});
    this.spooled?.close();
    // Never advance a checkpoint past a failure: close the sinks without flushing what is queued. Closing them also
    // ends their clients (a fenced Kafka sink's admin connection would otherwise keep the process alive).
    if (err === this.sinkError) await this.pipeline?.close().catch(() => {});
    const message = scrubbedMessage(err);
    this.logger.error({ err: message }, 'fatal');
    process.stderr.write(`redtail: ${message}\n`);
    if (err instanceof StoppedWhileOpening) return 1;
    if (!isFatal(err) && !(err instanceof ConfigError))
      this.logger.debug({ stack: (err as Error).stack }, 'stack');
    return err instanceof ConfigError ? 2 : 1;
  }
}

function eventFilter(config: RedtailConfig): EventFilter {
  try {
    return new EventFilter(parseEventFilterConfig(config.filter));
  } catch (err) {
    throw new ConfigError(`invalid config: ${(err as Error).message}`);
  }
}
