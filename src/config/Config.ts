import { readFileSync } from 'node:fs';
import type { TlsSettings } from '../link/tls.js';
import { LOG_FORMATS, type LogFormat } from '../observe/logger.js';
import { displayEndpoint } from '../observe/redact.js';
import { applySecrets } from './applySecrets.js';
import { defaults } from './defaults.js';
import { ConfigError } from './errors.js';
import { originsOf } from './origins.js';
import { registerSecretsIn } from './secrets.js';

export { defaults };

/** Everything `redtail run` needs; see config/redtail.example.json and config/config.schema.json. */
export interface RedtailConfig {
  /** One master URL, or several candidates of which the one with role master is used. */
  master: string | string[];
  /**
   * The master's password when the URL holds none (also `masterPasswordFile`, REDTAIL_MASTER_PASSWORD[_FILE]);
   * after loading, the resolved value whichever source gave it (src/config/secrets.ts).
   */
  masterPassword?: string;
  masterPasswordFile?: string;
  /**
   * Follow the master through Redis Sentinel; credentials and scheme (redis:// or rediss://) for the master still
   * come from `master`. `tls`: the sentinels themselves are dialled with TLS (with the `tls` settings). An address
   * may be `redis://:password@host:port`; after loading, addresses are host:port and `password` is resolved.
   */
  sentinel?: {
    addresses: string[];
    masterName: string;
    password?: string;
    passwordFile?: string;
    tls?: boolean;
  };
  /** How `rediss://` masters (and sentinels with `sentinel.tls`) are dialled; see docs/replication.md. */
  tls: TlsSettings;
  sinks: string[];
  /** Checkpoint file of the stdout/file sinks. */
  checkpoint: string;
  logLevel: string;
  /** What `REPLCONF ACK` reports: what every sink committed, what was read, or what is fsynced in the spool. */
  ack: 'durable' | 'received' | 'spooled';
  /**
   * The local spool between the master and the sinks (docs/resume.md#the-spool). `dir` defaults to the checkpoint's
   * path with `.spool` for its extension; `enabled: false` (`--spool off`) reads the master at the sinks' pace.
   */
  spool: { enabled: boolean; dir?: string; maxBytes: number; segmentBytes: number; fsyncIntervalMs: number };
  /** `decode` turns the snapshot into one event per key; `skip` only streams changes after it. */
  snapshot: 'decode' | 'skip';
  pipeline: {
    maxBatchEvents: number;
    lingerMs: number;
    highWaterEvents: number;
    highWaterBytes: number;
    maxInFlightBatches: number;
  };
  link: {
    listeningPort: number;
    announceIp?: string;
    readTimeoutMs: number;
    minFullSyncIntervalMs: number;
    /** TCP connect plus TLS handshake. */
    connectTimeoutMs: number;
    /** How often `REPLCONF ACK` reports the offset (the link's default, 1 s, when absent). */
    ackIntervalMs?: number;
  };
  /** Per-sink options keyed by sink scheme (`kafka`, `postgres`), passed to the sink's factory. */
  sinkOptions: Record<string, Record<string, unknown>>;
  /** Every this many ms a `stats` log line (link, pipeline, unknown commands, sinks); 0 turns it off. */
  statsIntervalMs: number;
  /** Include/exclude filters applied after normalization (docs/events.md). */
  filter?: Record<string, unknown>;
  /**
   * When another redtail holds the lock of a checkpoint or file sink: wait until it exits (true) instead of
   * failing at start (false); docs/resume.md.
   */
  waitForLock: boolean;
  /** `host:port` of the /metrics, /healthz and /readyz endpoint (docs/metrics.md); off when unset. */
  http?: string;
  /** What /readyz requires: see docs/metrics.md. */
  readiness: { duringSnapshot: boolean; sinkStallMs: number };
  /** `auto`: readable lines when stderr is a terminal, JSON otherwise. */
  logFormat: LogFormat;
  /** A stop (SIGTERM) that has not drained and committed by then exits 1; nothing past the checkpoint is lost. */
  shutdownTimeoutMs: number;
}

export { ConfigError };

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Flags win over environment variables, which win over the config file, which wins over defaults. */
export interface ConfigSources {
  file?: string;
  env: NodeJS.ProcessEnv;
  flags: Partial<
    Pick<RedtailConfig, 'checkpoint' | 'logLevel' | 'ack' | 'snapshot' | 'waitForLock' | 'http' | 'logFormat'>
  > & {
    /** `--spool DIR` or `--spool off`. */
    spool?: string;
    master?: string[];
    sinks?: string[];
    sentinels?: string[];
    masterName?: string;
    sentinelTls?: boolean;
    tls?: TlsSettings;
  };
}

/** `1/true/yes/on` or `0/false/no/off`, for boolean environment variables. */
function envBool(name: string, v: string): boolean {
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new ConfigError(`${name} must be true or false, not '${v}'`);
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== '')) as Partial<T>;
}

/**
 * The TLS settings of the environment (`REDTAIL_TLS_*`), overridden field by field by `flags` (`--tls-*`); also
 * used by `redtail verify`, which has no config file.
 */
export function tlsSettingsFrom(env: NodeJS.ProcessEnv, flags: TlsSettings = {}): TlsSettings {
  return {
    ...definedOnly<TlsSettings>({
      caFile: env.REDTAIL_TLS_CA,
      certFile: env.REDTAIL_TLS_CERT,
      keyFile: env.REDTAIL_TLS_KEY,
      servername: env.REDTAIL_TLS_SERVERNAME,
      insecure: env.REDTAIL_TLS_INSECURE
        ? envBool('REDTAIL_TLS_INSECURE', env.REDTAIL_TLS_INSECURE)
        : undefined,
    }),
    ...definedOnly(flags),
  };
}

export function loadConfig(sources: ConfigSources): RedtailConfig {
  return loadConfigWithOrigins(sources).config;
}

/**
 * The effective configuration and, for `check-config`, where each value came from: `origins` maps a dotted path
 * (`master`, `pipeline.lingerMs`, `sentinel.password`) to `flag`, `env`, `file PATH`, `default`, or for a password
 * the variable or field that gave it.
 */
export function loadConfigWithOrigins({ file, env, flags }: ConfigSources): {
  config: RedtailConfig;
  origins: Map<string, string>;
} {
  const path = file ?? env.REDTAIL_CONFIG;
  const fromFile = path ? readConfigFile(path) : {};
  const fromEnv = envLayer(env);
  const tlsFromEnv = tlsSettingsFrom(env);
  const sentinelTlsEnv = env.REDTAIL_SENTINEL_TLS
    ? envBool('REDTAIL_SENTINEL_TLS', env.REDTAIL_SENTINEL_TLS)
    : undefined;
  const { sentinelTls, tls: tlsFlags } = flags;
  const definedFlags = flagLayer(flags);
  const fileTls = fromFile.tls;
  if (fileTls !== undefined && (typeof fileTls !== 'object' || fileTls === null || Array.isArray(fileTls)))
    throw new ConfigError(
      'tls must be an object: {"caFile", "certFile", "keyFile", "servername", "insecure"}',
    );
  const merged: RedtailConfig = {
    ...defaults,
    ...fromFile,
    ...fromEnv,
    ...definedFlags,
    pipeline: { ...defaults.pipeline, ...(fromFile.pipeline ?? {}) },
    link: { ...defaults.link, ...(fromFile.link ?? {}) },
    spool: { ...defaults.spool, ...(fromFile.spool ?? {}), ...spoolFrom(flags.spool ?? env.REDTAIL_SPOOL) },
    readiness: { ...defaults.readiness, ...(fromFile.readiness ?? {}) },
    sinkOptions: { ...(fromFile.sinkOptions ?? {}) },
    // Field by field, so e.g. a CA file in the config and a client certificate from the environment combine.
    tls: { ...(fileTls ?? {}), ...tlsFromEnv, ...definedOnly(tlsFlags ?? {}) },
  };
  // Flags or env that name the sentinels replace the file's `sentinel` object; its `tls` carries over.
  const sentinelTlsSetting = sentinelTls ?? sentinelTlsEnv ?? fromFile.sentinel?.tls;
  if (merged.sentinel && sentinelTlsSetting !== undefined)
    merged.sentinel = { ...merged.sentinel, tls: sentinelTlsSetting };
  if (flags.sinks && flags.sinks.length === 0) merged.sinks = defaults.sinks;
  // Every secret any layer holds is known to the scrubber before anything can quote it in an error.
  for (const layer of [fromFile, fromEnv, definedFlags]) registerSecretsIn(layer);
  const fileOrigin = `file ${path}`;
  const origins = originsOf(merged, [
    ['default', defaults],
    [fileOrigin, fromFile],
    ['env', { ...fromEnv, tls: tlsFromEnv, sentinel: { ...fromEnv.sentinel, tls: sentinelTlsEnv } }],
    [
      'flag',
      {
        ...definedFlags,
        tls: definedOnly(tlsFlags ?? {}),
        sentinel: { ...definedFlags.sentinel, tls: sentinelTls },
      },
    ],
  ]);
  validate(merged);
  applySecrets(merged, env, fileOrigin, origins);
  return { config: merged, origins };
}

/** The config file's layer: a JSON object, or a ConfigError that names the file and what is wrong with it. */
function readConfigFile(path: string): Partial<RedtailConfig> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new ConfigError(`config file ${path} must hold a JSON object`);
  return parsed as Partial<RedtailConfig>;
}

/** The environment's layer (REDTAIL_*), except TLS and the spool, which merge field by field. */
function envLayer(env: NodeJS.ProcessEnv): Partial<RedtailConfig> {
  const fromEnv: Partial<RedtailConfig> = {};
  if (env.REDTAIL_MASTER) fromEnv.master = env.REDTAIL_MASTER;
  if (env.REDTAIL_SINKS)
    fromEnv.sinks = env.REDTAIL_SINKS.split(/\s+/)
      .map((s) => s.trim())
      .filter(Boolean);
  if (env.REDTAIL_CHECKPOINT) fromEnv.checkpoint = env.REDTAIL_CHECKPOINT;
  if (env.REDTAIL_LOG_LEVEL) fromEnv.logLevel = env.REDTAIL_LOG_LEVEL;
  if (env.REDTAIL_ACK) fromEnv.ack = env.REDTAIL_ACK as RedtailConfig['ack'];
  if (env.REDTAIL_WAIT_FOR_LOCK)
    fromEnv.waitForLock = envBool('REDTAIL_WAIT_FOR_LOCK', env.REDTAIL_WAIT_FOR_LOCK);
  if (env.REDTAIL_HTTP) fromEnv.http = env.REDTAIL_HTTP;
  if (env.REDTAIL_LOG_FORMAT) fromEnv.logFormat = env.REDTAIL_LOG_FORMAT as LogFormat;
  if (env.REDTAIL_SHUTDOWN_TIMEOUT_MS) fromEnv.shutdownTimeoutMs = Number(env.REDTAIL_SHUTDOWN_TIMEOUT_MS);
  if (env.REDTAIL_SENTINELS || env.REDTAIL_MASTER_NAME) {
    fromEnv.sentinel = {
      addresses: (env.REDTAIL_SENTINELS ?? '').split(/[\s,]+/).filter(Boolean),
      masterName: env.REDTAIL_MASTER_NAME ?? '',
    };
  }
  return fromEnv;
}

/** The command line's layer: the flags given, with --master and --sentinel/--master-name in their config shape. */
function flagLayer(flags: ConfigSources['flags']): Partial<RedtailConfig> {
  const {
    sentinels,
    masterName,
    master: masterFlags,
    sentinelTls: _sentinelTls,
    tls: _tls,
    spool: _spool,
    ...plainFlags
  } = flags;
  const definedFlags: Partial<RedtailConfig> = Object.fromEntries(
    Object.entries(plainFlags).filter(([, v]) => v !== undefined),
  );
  if (masterFlags && masterFlags.length > 0)
    definedFlags.master = masterFlags.length === 1 ? masterFlags[0]! : masterFlags;
  if (sentinels?.length || masterName) {
    definedFlags.sentinel = { addresses: sentinels ?? [], masterName: masterName ?? '' };
  }
  return definedFlags;
}

/** `--spool off` (or `false`, `no`, `0`) turns the spool off; any other value is its directory. */
function spoolFrom(setting: string | undefined): Partial<RedtailConfig['spool']> {
  if (setting === undefined || setting === '') return {};
  if (/^(off|false|no|0)$/i.test(setting)) return { enabled: false };
  return { enabled: true, dir: setting };
}

/** The spool directory: as configured, or next to the checkpoint (`redtail.checkpoint.json` → `redtail.checkpoint.spool`). */
export function spoolDir(c: RedtailConfig): string {
  return c.spool.dir ?? c.checkpoint.replace(/(\.json)?$/, '.spool');
}

function validate(c: RedtailConfig): void {
  const masters = Array.isArray(c.master) ? c.master : [c.master];
  if (masters.length === 0 || masters.some((m) => typeof m !== 'string'))
    throw new ConfigError('master must be a redis:// URL or a list of them');
  validateSentinel(c);
  if (!Array.isArray(c.sinks) || c.sinks.length === 0) throw new ConfigError('at least one sink is needed');
  if (!LOG_LEVELS.includes(c.logLevel))
    throw new ConfigError(`log level '${c.logLevel}' is not one of ${LOG_LEVELS.join(', ')}`);
  if (!Number.isFinite(c.statsIntervalMs) || c.statsIntervalMs < 0)
    throw new ConfigError('statsIntervalMs must be a non-negative number of ms');
  if (c.ack !== 'durable' && c.ack !== 'received' && c.ack !== 'spooled')
    throw new ConfigError(`ack must be 'durable', 'received' or 'spooled'`);
  validateSpool(c);
  if (c.snapshot !== 'decode' && c.snapshot !== 'skip')
    throw new ConfigError(`snapshot must be 'decode' or 'skip'`);
  if (typeof c.waitForLock !== 'boolean') throw new ConfigError('waitForLock must be true or false');
  validateTls(c);
  if (!Number.isFinite(c.link.connectTimeoutMs) || c.link.connectTimeoutMs <= 0)
    throw new ConfigError('link.connectTimeoutMs must be a positive number of ms');
  validateOps(c);
  const ack = c.link.ackIntervalMs;
  if (ack !== undefined && (!Number.isFinite(ack) || ack <= 0))
    throw new ConfigError('link.ackIntervalMs must be a positive number of ms');
  for (const [k, v] of Object.entries(c.pipeline))
    if (!Number.isFinite(v) || v < 0) throw new ConfigError(`pipeline.${k} must be a non-negative number`);
}

function validateSentinel(c: RedtailConfig): void {
  if (!c.sentinel) return;
  if (!c.sentinel.masterName)
    throw new ConfigError('following a master through Sentinel needs --master-name');
  if (!Array.isArray(c.sentinel.addresses) || c.sentinel.addresses.length === 0)
    throw new ConfigError('--master-name needs at least one --sentinel host:port');
  for (const a of c.sentinel.addresses)
    if (!/^[^:]+:\d+$|^\[.+\]:\d+$/.test(a) && !/^rediss?:\/\//.test(a))
      throw new ConfigError(
        `sentinel address '${displayEndpoint(a)}' must be host:port or redis://[:password@]host:port`,
      );
  if (c.sentinel.tls !== undefined && typeof c.sentinel.tls !== 'boolean')
    throw new ConfigError('sentinel.tls must be true or false');
}

function validateSpool(c: RedtailConfig): void {
  if (c.ack === 'spooled' && !c.spool.enabled)
    throw new ConfigError(`ack 'spooled' needs the spool (spool.enabled)`);
  if (typeof c.spool.enabled !== 'boolean') throw new ConfigError('spool.enabled must be true or false');
  if (c.spool.dir !== undefined && (typeof c.spool.dir !== 'string' || c.spool.dir === ''))
    throw new ConfigError('spool.dir must be a directory path');
  for (const k of ['maxBytes', 'segmentBytes', 'fsyncIntervalMs'] as const)
    if (!Number.isSafeInteger(c.spool[k]) || c.spool[k] <= 0)
      throw new ConfigError(`spool.${k} must be a positive whole number`);
  if (c.spool.segmentBytes > c.spool.maxBytes / 2)
    throw new ConfigError(
      'spool.segmentBytes must be at most half of spool.maxBytes (segments are released whole)',
    );
}

function validateTls(c: RedtailConfig): void {
  for (const k of ['caFile', 'certFile', 'keyFile', 'servername'] as const)
    if (c.tls[k] !== undefined && typeof c.tls[k] !== 'string')
      throw new ConfigError(`tls.${k} must be a string`);
  if (c.tls.insecure !== undefined && typeof c.tls.insecure !== 'boolean')
    throw new ConfigError('tls.insecure must be true or false');
  if (Boolean(c.tls.certFile) !== Boolean(c.tls.keyFile))
    throw new ConfigError(
      'a TLS client certificate needs both tls.certFile and tls.keyFile (--tls-cert and --tls-key)',
    );
}

/** The HTTP endpoint, readiness, log format and stop settings. */
function validateOps(c: RedtailConfig): void {
  if (c.http !== undefined && (typeof c.http !== 'string' || !/^(\[[^\]]+\]|[^:]*):\d{1,5}$/.test(c.http)))
    throw new ConfigError(`http '${c.http}' must be host:port, e.g. 0.0.0.0:9121 (REDTAIL_HTTP, --http)`);
  if (!LOG_FORMATS.includes(c.logFormat))
    throw new ConfigError(`log format '${c.logFormat}' is not one of ${LOG_FORMATS.join(', ')}`);
  if (!Number.isFinite(c.shutdownTimeoutMs) || c.shutdownTimeoutMs <= 0)
    throw new ConfigError('shutdownTimeoutMs must be a positive number of ms (REDTAIL_SHUTDOWN_TIMEOUT_MS)');
  if (typeof c.readiness.duringSnapshot !== 'boolean')
    throw new ConfigError('readiness.duringSnapshot must be true or false');
  if (!Number.isFinite(c.readiness.sinkStallMs) || c.readiness.sinkStallMs <= 0)
    throw new ConfigError('readiness.sinkStallMs must be a positive number of ms');
}
