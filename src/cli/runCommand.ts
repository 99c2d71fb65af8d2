import { ConfigError, loadConfig, type RedtailConfig } from '../config/Config.js';
import { type MasterAddress, parseMasterUrl } from '../link/MasterAddress.js';
import {
  CandidateMasters,
  type MasterLocator,
  SentinelMasters,
  StaticMaster,
} from '../link/MasterLocator.js';
import { loadTls, type MasterTls } from '../link/tls.js';
import { createLogger, type Logger } from '../observe/logger.js';
import { scrubbedMessage } from '../observe/redact.js';
import { type RunHooks, RunSession } from './RunSession.js';
import { parseRunArgs } from './runOptions.js';

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

export type { RunHooks };

/** `redtail run`: returns the exit status. */
export async function runCommand(argv: string[], hooks: RunHooks = {}): Promise<number> {
  const config = readRunConfig(argv);
  if (typeof config === 'number') return config;
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
  return new RunSession({ config, logger, locator, masterTls, hooks }).run();
}

/** The flags, environment and config file merged, or the exit status when there is nothing to run. */
function readRunConfig(argv: string[]): RedtailConfig | number {
  try {
    const { help, sources } = parseRunArgs(argv);
    if (help) {
      process.stdout.write(runUsage);
      return 0;
    }
    return loadConfig(sources);
  } catch (err) {
    process.stderr.write(
      `redtail: ${scrubbedMessage(err)}\n${err instanceof ConfigError ? '' : `\n${runUsage}`}`,
    );
    return 2;
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
