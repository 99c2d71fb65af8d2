import { EventFilter, parseEventFilterConfig } from '../commands/EventFilter.js';
import { normalizeCommand, normalizeCounters } from '../commands/normalize.js';
import { ConfigError, loadConfig, type RedtailConfig, spoolDir } from '../config/Config.js';
import { isFatal } from '../link/errors.js';
import { type MasterAddress, parseMasterUrl } from '../link/MasterAddress.js';
import {
  CandidateMasters,
  type MasterLocator,
  SentinelMasters,
  StaticMaster,
} from '../link/MasterLocator.js';
import { ReplicaLink } from '../link/ReplicaLink.js';
import { loadTls, type MasterTls } from '../link/tls.js';
import { createLogger, type Logger, prettyLogs } from '../observe/logger.js';
import { Observability } from '../observe/Observability.js';
import { displayEndpoint, scrubbedMessage } from '../observe/redact.js';
import { StatsReporter } from '../observe/StatsReporter.js';
import { Pipeline } from '../pipeline/Pipeline.js';
import { type CommandNormalizer, Replicator } from '../pipeline/Replicator.js';
import { type SnapshotDecoderFactory, skipSnapshot } from '../pipeline/SnapshotDecoder.js';
import { SpooledStream } from '../spool/SpooledStream.js';
import { parseRunArgs } from './runOptions.js';
import { Shutdown, StoppedWhileOpening } from './Shutdown.js';
import { createSinks } from './sinks.js';
import { lockLocalState } from './stateLocks.js';

export const runUsage = `Usage: redtail run [options]

Tails a Redis master as a replica and writes every change to the sinks.

Options:
  --master URL        redis://[user:password@]host:port   (env REDTAIL_MASTER; default redis://127.0.0.1:6379);
                      rediss://... for TLS; repeat it to give candidates (a master and its replicas): redtail uses
                      the one that is master
  --sentinel HOST:PORT  follow the master through Redis Sentinel (repeatable; env REDTAIL_SENTINELS); the
                      master's scheme and credentials still come from --master, e.g. rediss://:password@
  --master-name NAME  the master's name in Sentinel (env REDTAIL_MASTER_NAME)
  --sentinel-tls      dial the sentinels with TLS too (env REDTAIL_SENTINEL_TLS)
  --tls-ca FILE       CA certificate(s) (PEM) that sign the server's certificate, instead of the system CAs
                      (env REDTAIL_TLS_CA)
  --tls-cert FILE     client certificate (PEM) for servers with tls-auth-clients (env REDTAIL_TLS_CERT)
  --tls-key FILE      its private key (PEM) (env REDTAIL_TLS_KEY)
  --tls-servername NAME  name to send as SNI and to verify the certificate against, instead of the host
                      (env REDTAIL_TLS_SERVERNAME)
  --tls-insecure      do not verify the server's certificate (env REDTAIL_TLS_INSECURE=true); testing only
  --sink SPEC         stdout | file:PATH | kafka://host:port[,host:port] | postgres://user@host:port/db |
                      null (normalizes, writes nothing: benchmarks, dry runs); repeatable (env REDTAIL_SINKS)
  --checkpoint PATH   checkpoint file of the stdout/file sinks (env REDTAIL_CHECKPOINT; default ./redtail.checkpoint.json)
  --spool DIR|off     local spool of the master's stream, so slow sinks become lag on disk instead of a full-sync
                      loop (env REDTAIL_SPOOL; default: the checkpoint's path with .spool; off: no spool)
  --config FILE       JSON config file (env REDTAIL_CONFIG); flags override it
  --ack MODE          durable (default): ACK to the master what the sinks committed; received: what redtail read;
                      spooled: what is fsynced in the spool
  --snapshot MODE     decode (default): one event per key of the snapshot; skip: changes only
  --wait-for-lock     when another redtail holds the checkpoint or a file sink's file, wait until it exits instead
                      of failing (env REDTAIL_WAIT_FOR_LOCK)
  Passwords apart from the URLs: REDTAIL_MASTER_PASSWORD, REDTAIL_SENTINEL_PASSWORD, REDTAIL_POSTGRES_PASSWORD,
                      REDTAIL_KAFKA_PASSWORD, each also as *_FILE naming a file (docs/secrets.md)
  --log-level LEVEL   fatal|error|warn|info|debug|trace|silent (env REDTAIL_LOG_LEVEL; default info); logs go to stderr
  --log-format FORMAT auto (default: readable lines on a terminal, JSON otherwise) | json | pretty
                      (env REDTAIL_LOG_FORMAT)
  --http HOST:PORT    serve /metrics, /healthz and /readyz (env REDTAIL_HTTP; off by default; docs/metrics.md)
  -h, --help          this text
`;

export interface RunHooks {
  normalize?: CommandNormalizer;
  snapshot?: SnapshotDecoderFactory;
}

/** `redtail run`: returns the exit status. */
export async function runCommand(argv: string[], hooks: RunHooks = {}): Promise<number> {
  let config: RedtailConfig;
  try {
    const { help, sources } = parseRunArgs(argv);
    if (help) {
      process.stdout.write(runUsage);
      return 0;
    }
    config = loadConfig(sources);
  } catch (err) {
    process.stderr.write(
      `redtail: ${scrubbedMessage(err)}\n${err instanceof ConfigError ? '' : `\n${runUsage}`}`,
    );
    return 2;
  }

  const logger = createLogger(config.logLevel, config.logFormat);
  let locator: MasterLocator;
  let masterTls: MasterTls;
  try {
    masterTls = loadTls(config.tls);
    locator = createLocator(config, masterTls, logger);
  } catch (err) {
    process.stderr.write(`redtail: ${scrubbedMessage(err)}\n`);
    return 2;
  }
  warnAboutTls(config, logger);

  let link: ReplicaLink | null = null;
  let stats: StatsReporter | null = null;
  let pipeline: Pipeline | null = null;
  let spooled: SpooledStream | null = null;
  let sinkFailure: (err: Error) => void = () => {};
  let sinkError: Error | null = null;
  const sinkFailed = new Promise<never>((_, reject) => {
    sinkFailure = reject;
  });
  sinkFailed.catch(() => {});
  const observe = new Observability(
    {
      http: config.http,
      readiness: config.readiness,
      progress: prettyLogs(config.logFormat) && !!process.stderr.isTTY,
    },
    logger,
  );
  const shutdown = new Shutdown({
    logger,
    timeoutMs: config.shutdownTimeoutMs,
    unflushed: () => observe.unflushed(),
  }).install();
  const stopped = shutdown.requested;
  // Ends a wait for another instance's lock at the first signal.
  const stopping = new AbortController();
  stopped.then(() => stopping.abort());

  try {
    await observe.start();
    let filter: EventFilter;
    try {
      filter = new EventFilter(parseEventFilterConfig(config.filter));
    } catch (err) {
      throw new ConfigError(`invalid config: ${(err as Error).message}`);
    }
    // Before any sink opens (the file sink truncates on open): a second instance must fail without writing.
    const locks = await lockLocalState(config, logger, stopping.signal);
    if (!locks) return 0; // stopped while waiting for the lock
    shutdown.phase = 'opening the sinks';
    const sinks = observe.wrapSinks(
      await createSinks(
        config,
        logger,
        () => link?.connectedMaster ?? null,
        masterTls,
        (reason) => link?.requestHandshake(reason),
      ),
    );
    pipeline = new Pipeline(sinks, {
      logger,
      maxBatchEvents: config.pipeline.maxBatchEvents,
      lingerMs: config.pipeline.lingerMs,
      highWaterEvents: config.pipeline.highWaterEvents,
      highWaterBytes: config.pipeline.highWaterBytes,
      maxInFlightBatches: config.pipeline.maxInFlightBatches,
      // With the spool the sinks' pace holds back the replay, never the link: the master sees a fast replica.
      onBackpressure: (paused) => {
        if (spooled) spooled.sinkBackpressure(paused);
        else if (paused) link?.pause();
        else link?.resume();
      },
      onDurable: (position) => {
        spooled?.durable(position);
        link?.ackAdvanced();
      },
      onError: (err) => {
        sinkError = err;
        sinkFailure(err);
      },
    });
    // A stop while a sink still connects (brokers down) must not wait for it: nothing is streamed yet.
    const opening = pipeline.open().then((p) => ({ p }));
    opening.catch(() => {});
    const opened = await Promise.race([opening, stopped]);
    if (!opened) throw new StoppedWhileOpening(sinks.map((s) => s.name));
    const start = opened.p;
    shutdown.phase = 'streaming';
    logger.info(
      {
        master: locator.describe(),
        sinks: config.sinks.map(displayEndpoint),
        resume: start ?? 'full resync',
      },
      'starting replication',
    );
    const replicator = new Replicator({
      pipeline,
      logger,
      start,
      ack: config.ack === 'received' ? 'received' : 'durable',
      filter,
      normalize: hooks.normalize ?? normalizeCommand,
      snapshot: observe.wrapSnapshot(
        config.snapshot === 'skip' ? skipSnapshot : (hooks.snapshot ?? skipSnapshot),
      ),
    });
    const durablePipeline = pipeline;
    if (config.spool.enabled)
      spooled = new SpooledStream({
        dir: spoolDir(config),
        maxBytes: config.spool.maxBytes,
        segmentBytes: config.spool.segmentBytes,
        fsyncIntervalMs: config.spool.fsyncIntervalMs,
        ack: config.ack,
        from: start,
        replicator,
        durableOffset: () => durablePipeline.durableOffset,
        linkBackpressure: (full) => (full ? link?.pause() : link?.resume()),
        ackAdvanced: () => link?.ackAdvanced(),
        logger,
      });
    link = new ReplicaLink({
      locator,
      target: spooled?.target ?? replicator,
      targetCopies: spooled !== null,
      logger,
      listeningPort: config.link.listeningPort,
      announceIp: config.link.announceIp,
      readTimeoutMs: config.link.readTimeoutMs,
      minFullSyncIntervalMs: config.link.minFullSyncIntervalMs,
      connectTimeoutMs: config.link.connectTimeoutMs,
      ackIntervalMs: config.link.ackIntervalMs,
    });
    observe.attach({ link, pipeline, replicator, normalizer: normalizeCounters, spool: spooled });
    stats = new StatsReporter(logger, {
      link,
      pipeline,
      replicator,
      sinks,
      spool: spooled,
      lagSeconds: () => observe.lagSeconds(),
    });
    stats.start(config.statsIntervalMs);
    const running = link.run();
    await Promise.race([running, sinkFailed, stopped, ...(spooled ? [spooled.failed] : [])]);
    shutdown.phase = 'draining the sinks';
    await link.stop();
    await running;
    spooled?.close();
    await pipeline.close();
    // Only after the sinks are closed; after a failure the process's exit frees the locks, once nothing can write.
    locks.release();
    stats.stop();
    logger.info({ ...stats.snapshot(), position: pipeline.durablePosition }, 'stopped');
    return 0;
  } catch (err) {
    await link?.stop().catch(() => {});
    spooled?.close();
    // Never advance a checkpoint past a failure: close the sinks without flushing what is queued. Closing them also
    // ends their clients (a fenced Kafka sink's admin connection would otherwise keep the process alive).
    if (err === sinkError) await pipeline?.close().catch(() => {});
    const message = scrubbedMessage(err);
    logger.error({ err: message }, 'fatal');
    process.stderr.write(`redtail: ${message}\n`);
    if (err instanceof StoppedWhileOpening) return 1;
    if (!isFatal(err) && !(err instanceof ConfigError))
      logger.debug({ stack: (err as Error).stack }, 'stack');
    return err instanceof ConfigError ? 2 : 1;
  } finally {
    stats?.stop();
    await observe.stop();
    shutdown.dispose();
    // A client library may keep timers or sockets alive (kafkajs retrying an unreachable broker): once redtail has
    // said its last line, nothing it still holds matters.
    setTimeout(() => process.exit(), 2_000).unref();
  }
}

function masterUrls(config: RedtailConfig): string[] {
  return Array.isArray(config.master) ? config.master : [config.master];
}

/** Turning verification off is said at every start; TLS settings that nothing uses are likely a forgotten rediss://. */
function warnAboutTls(config: RedtailConfig, logger: Logger): void {
  const usesTls = masterUrls(config).some((u) => u.startsWith('rediss:')) || config.sentinel?.tls === true;
  const { insecure, ...files } = config.tls;
  if (usesTls && insecure)
    logger.warn(
      'TLS certificate verification is off (tls.insecure): the connection is encrypted but anyone on the path can pose as the master; give the CA with tls.caFile instead',
    );
  if (!usesTls && (insecure || Object.values(files).some(Boolean)))
    logger.warn(
      'TLS settings are given but no master URL is rediss:// (and sentinel.tls is off): the replication link does not use TLS',
    );
}

/** A fixed master, candidates (several --master), or Sentinel (--sentinel with --master-name). */
function createLocator(config: RedtailConfig, tls: MasterTls, logger: Logger): MasterLocator {
  const masters: MasterAddress[] = masterUrls(config).map((u) => {
    const address = parseMasterUrl(u, tls);
    // REDTAIL_MASTER_PASSWORD[_FILE] or masterPassword[File]; loading made sure the URL holds none then.
    if (config.masterPassword !== undefined) address.password = config.masterPassword;
    return address;
  });
  if (config.sentinel) {
    const sentinels = config.sentinel.addresses.map((a) => {
      const i = a.lastIndexOf(':');
      return { host: a.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(a.slice(i + 1)) };
    });
    // With Sentinel the first master URL gives the credentials and the scheme (rediss:// for TLS); its host is unused.
    const { username, password } = masters[0]!;
    return new SentinelMasters(
      sentinels,
      config.sentinel.masterName,
      { username, password },
      logger,
      config.sentinel.password,
      masters[0]!.tls,
      config.sentinel.tls ? tls : null,
    );
  }
  return masters.length === 1 ? new StaticMaster(masters[0]!) : new CandidateMasters(masters, logger);
}
