import type { ConnectionOptions } from 'node:tls';
import type { SASLOptions } from 'kafkajs';
import { sinkDefaults } from '../../src/config/defaults.js';
import { displayEndpoint } from '../../src/observe/redact.js';
import { KafkaConfigError } from './errors.js';
import { OVERSIZE_POLICIES, type OversizePolicy } from './oversize.js';
import type { TopicRoute } from './TopicRouter.js';

/** The subset of pino's Logger the sink uses, so any structured logger fits. */
export interface SinkLogger {
  error(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export type Compression = 'gzip' | 'lz4' | 'snappy' | 'zstd' | 'none';
const COMPRESSIONS: readonly string[] = ['gzip', 'lz4', 'snappy', 'zstd', 'none'];

/** Options of `createKafkaSink`; every one also has a spec query parameter unless noted. */
export interface KafkaSinkOptions {
  /** Sink name: the key of its checkpoint in the offsets topic (default `kafka`). */
  name?: string;
  brokers?: string[];
  clientId?: string;
  /** Event topic template; `<db>`, `<type>` and `<op>` are replaced (default `redtail.<db>`). */
  topic?: string;
  /** First matching route wins over `topic` (options only). */
  routes?: TopicRoute[];
  /** Compacted per-key state topic template, e.g. `redtail.state.<db>`; off unless set. */
  stateTopic?: string | false;
  /** Compacted topic holding the checkpoint (default `redtail.offsets`). */
  offsetsTopic?: string;
  /**
   * SASL password when the spec names the user but no password (`kafka://user@host:port?sasl=...`); from
   * `sinkOptions.kafka.password[File]` or REDTAIL_KAFKA_PASSWORD[_FILE].
   */
  password?: string;
  /** Default `redtail.<name>`; must be unique per running redtail instance. */
  transactionalId?: string;
  /** false: idempotent at-least-once producer, no transactions (default true). */
  exactlyOnce?: boolean;
  compression?: Compression;
  /**
   * zlib level for compression=gzip, 1 (fastest) to 9 (smallest); default 6, zlib's and the Java client's default.
   * Level 1 costs about a quarter of level 6's CPU for ~15 % larger batches of event JSON (bench/NOTES.md, K5).
   */
  gzipLevel?: number;
  /** Partitions for topics the sink creates (default 3; the offsets topic always gets 1). */
  partitions?: number;
  /** Replication factor for created topics (default min(3, number of brokers)). */
  replicationFactor?: number;
  /** Create missing topics (default true); false makes a missing topic a fatal error. */
  createTopics?: boolean;
  /** Extra topic configs for created event topics (options only). */
  topicConfig?: Record<string, string>;
  /**
   * Upper bound for one partition's record batch in a produce request (estimated, before compression); more
   * becomes several sends in one transaction (messages.ts `chunkMessages`).
   */
  maxBatchBytes?: number;
  /**
   * Upper bound for one transaction's records (estimated, before compression): batches that queue up while a
   * transaction commits go into the next one together up to this size (default 16 MB).
   */
  maxTransactionBytes?: number;
  /**
   * Time bound of a transaction of stream batches: a group takes no more queued batches than the sink is measured
   * to commit in this many milliseconds, so events are committed within about this long of the previous
   * transaction's end under load (default 100; 0: only the byte bound). Snapshot batches are bounded by bytes only.
   */
  maxTransactionMs?: number;
  /** Largest single record; bigger events are replaced by a truncation marker (docs/kafka.md). */
  maxMessageBytes?: number;
  /** Events with byte strings of 1 MB or more: `truncate` (marker) or `reference` (sinks/kafka/oversize.ts). */
  oversize?: OversizePolicy;
  transactionTimeoutMs?: number;
  /** Budget for `open()` to reach the cluster before failing with KafkaUnreachableError. */
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** `write` retries failed transactions with this backoff until it commits or `writeTimeoutMs` passes. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** 0 (default): retry forever; the pipeline stalls (backpressure) instead of losing the batch. */
  writeTimeoutMs?: number;
  /** Prefix of the throwaway consumer groups that read the offsets topic (ACLs: grant Read on the prefix). */
  groupIdPrefix?: string;
  ssl?: boolean | ConnectionOptions;
  sasl?: SASLOptions;
  logger?: SinkLogger;
}

export type ResolvedKafkaSinkConfig = Required<
  Omit<KafkaSinkOptions, 'ssl' | 'sasl' | 'stateTopic' | 'logger' | 'password'>
> & {
  stateTopic: string | null;
  ssl: boolean | ConnectionOptions | undefined;
  sasl: SASLOptions | undefined;
  logger: SinkLogger | undefined;
  replicationFactor: number;
};

/** The sink's defaults live with every other default (src/config/defaults.ts). */
const DEFAULTS = sinkDefaults.kafka;

function bool(name: string, v: string): boolean {
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new KafkaConfigError(`kafka sink: ${name}=${v} is not a boolean`);
}

function int(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new KafkaConfigError(`kafka sink: ${name}=${v} must be an integer >= ${min}`);
  return n;
}

const SASL_MECHANISMS = new Set(['plain', 'scram-sha-256', 'scram-sha-512']);

/**
 * Parses `kafka://[user:pass@]host:port[,host:port...][?param=value&...]` (`kafkas://` turns TLS on). Hosts are
 * split by hand: WHATWG URLs cannot hold a broker list.
 */
export function parseKafkaSpec(spec: string): KafkaSinkOptions {
  const m = /^(kafkas?):\/\/([^?#]*)(?:\?([^#]*))?$/.exec(spec.trim());
  if (!m)
    throw new KafkaConfigError(
      `kafka sink: "${displayEndpoint(spec)}" is not kafka://host:port[,host:port][?options]`,
    );
  const out: KafkaSinkOptions = {};
  if (m[1] === 'kafkas') out.ssl = true;
  const { hosts, user, pass } = splitUserInfo(m[2] ?? '');
  out.brokers = parseBrokers(hosts, spec);
  let mechanism: string | undefined;
  for (const [k, v] of new URLSearchParams(m[3] ?? '')) {
    if (k === 'sasl') mechanism = v.toLowerCase();
    else applyParam(out, k, v);
  }
  if (user !== undefined || mechanism !== undefined) out.sasl = saslOptions(mechanism ?? 'plain', user, pass);
  return out;
}

/** `user:pass@hosts` (both parts percent-decoded) or just `hosts`; the last `@` splits, as a password may hold one. */
function splitUserInfo(authority: string): { hosts: string; user?: string; pass?: string } {
  const at = authority.lastIndexOf('@');
  if (at < 0) return { hosts: authority };
  const info = authority.slice(0, at);
  const colon = info.indexOf(':');
  return {
    hosts: authority.slice(at + 1),
    user: decodeURIComponent(colon >= 0 ? info.slice(0, colon) : info),
    pass: decodeURIComponent(colon >= 0 ? info.slice(colon + 1) : ''),
  };
}

function parseBrokers(hosts: string, spec: string): string[] {
  const brokers = hosts
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
  if (brokers.length === 0)
    throw new KafkaConfigError(`kafka sink: "${displayEndpoint(spec)}" names no broker`);
  for (const b of brokers) {
    if (!/^(\[[0-9a-fA-F:.]+\]|[^:/[\]]+):\d{1,5}$/.test(b))
      throw new KafkaConfigError(`kafka sink: broker "${b}" is not host:port`);
  }
  return brokers;
}

/** Query parameters that are plain strings, booleans, and integers with their smallest allowed value. */
const STRING_PARAMS = [
  'name',
  'clientId',
  'topic',
  'offsetsTopic',
  'transactionalId',
  'groupIdPrefix',
] as const;
const BOOLEAN_PARAMS = ['exactlyOnce', 'createTopics'] as const;
const INT_PARAMS: Record<string, number> = {
  partitions: 1,
  replicationFactor: 1,
  maxBatchBytes: 1024,
  maxMessageBytes: 1024,
  maxTransactionBytes: 1024,
  transactionTimeoutMs: 1,
  connectTimeoutMs: 1,
  requestTimeoutMs: 1,
  retryInitialMs: 1,
  retryMaxMs: 1,
  writeTimeoutMs: 0,
  maxTransactionMs: 0,
};

/** One `?k=v` of the spec into `out`; an unknown `k` is an error (a typo must not be ignored silently). */
function applyParam(out: KafkaSinkOptions, k: string, v: string): void {
  const o = out as Record<string, unknown>;
  if ((STRING_PARAMS as readonly string[]).includes(k)) o[k] = v;
  else if ((BOOLEAN_PARAMS as readonly string[]).includes(k)) o[k] = bool(k, v);
  else if (Object.hasOwn(INT_PARAMS, k)) o[k] = int(k, v, INT_PARAMS[k] ?? 0);
  else if (k === 'stateTopic') out.stateTopic = /^(0|false|off|no)$/i.test(v) ? false : v;
  else if (k === 'ssl' || k === 'tls') out.ssl = bool(k, v);
  else if (k === 'compression') out.compression = compression(v);
  else if (k === 'gzipLevel') out.gzipLevel = gzipLevel(int(k, v, 1));
  else if (k === 'oversize') {
    if (!OVERSIZE_POLICIES.includes(v as OversizePolicy))
      throw new KafkaConfigError(`kafka sink: oversize=${v} is not a policy (truncate or reference)`);
    out.oversize = v as OversizePolicy;
  } else throw new KafkaConfigError(`kafka sink: unknown parameter ${k}`);
}

function saslOptions(mech: string, user: string | undefined, pass: string | undefined): SASLOptions {
  if (!SASL_MECHANISMS.has(mech))
    throw new KafkaConfigError(`kafka sink: sasl=${mech} is not one of ${[...SASL_MECHANISMS].join(', ')}`);
  if (user === undefined)
    throw new KafkaConfigError(`kafka sink: sasl=${mech} needs user:password@ in the spec`);
  return { mechanism: mech, username: user, password: pass ?? '' } as SASLOptions;
}

/** Spec first, then options on top (options are how routes, TLS material and loggers are given). */
export function resolveKafkaSinkConfig(
  spec: string | undefined,
  options: KafkaSinkOptions = {},
): ResolvedKafkaSinkConfig {
  const fromSpec = spec ? parseKafkaSpec(spec) : {};
  const merged: KafkaSinkOptions = { ...fromSpec };
  for (const [k, v] of Object.entries(options))
    if (v !== undefined) (merged as Record<string, unknown>)[k] = v;
  const { password, ...rest } = merged;
  if (password !== undefined) {
    if (!rest.sasl || !('username' in rest.sasl))
      throw new KafkaConfigError(
        'kafka sink: a SASL password is given but no user: kafka://user@host:port?sasl=plain (or scram-sha-256/512)',
      );
    if (rest.sasl.password)
      throw new KafkaConfigError(
        'kafka sink: the SASL password is given twice (in the spec and apart): give it once',
      );
    rest.sasl = { ...rest.sasl, password } as SASLOptions;
  }
  const brokers = rest.brokers ?? [];
  if (brokers.length === 0) throw new KafkaConfigError('kafka sink: no brokers (kafka://host:port)');
  const name = rest.name ?? DEFAULTS.name;
  if (rest.maxBatchBytes !== undefined && rest.maxBatchBytes < 1024)
    throw new KafkaConfigError('kafka sink: maxBatchBytes must be >= 1024');
  const stateTopic = rest.stateTopic === undefined || rest.stateTopic === false ? null : rest.stateTopic;
  const cfg: ResolvedKafkaSinkConfig = {
    ...DEFAULTS,
    ...(rest as Partial<typeof DEFAULTS>),
    name,
    brokers,
    routes: rest.routes ?? [],
    topicConfig: rest.topicConfig ?? {},
    transactionalId: rest.transactionalId ?? `redtail.${name}`,
    replicationFactor: rest.replicationFactor ?? 0,
    stateTopic,
    ssl: rest.ssl,
    sasl: rest.sasl,
    logger: rest.logger,
  };
  if (cfg.maxBatchBytes > cfg.maxMessageBytes) cfg.maxBatchBytes = cfg.maxMessageBytes;
  if (!Number.isInteger(cfg.maxTransactionMs) || cfg.maxTransactionMs < 0)
    throw new KafkaConfigError(
      `kafka sink: maxTransactionMs=${cfg.maxTransactionMs} must be an integer >= 0 (milliseconds; 0: no time bound)`,
    );
  cfg.compression = compression(String(cfg.compression));
  cfg.gzipLevel = gzipLevel(cfg.gzipLevel);
  return cfg;
}

function gzipLevel(n: number): number {
  if (Number.isInteger(n) && n >= 1 && n <= 9) return n;
  throw new KafkaConfigError(
    `kafka sink: gzipLevel=${n} must be an integer from 1 (fastest) to 9 (smallest)`,
  );
}

function compression(v: string): Compression {
  if (COMPRESSIONS.includes(v)) return v as Compression;
  throw new KafkaConfigError(
    `kafka sink: compression=${v} is not supported (gzip, lz4, snappy, zstd or none)`,
  );
}
