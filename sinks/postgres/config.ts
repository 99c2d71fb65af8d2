import { sinkDefaults } from '../../src/config/defaults.js';
import { displayEndpoint, secretsInEndpoint } from '../../src/observe/redact.js';
import { PostgresConfigError } from './errors.js';

export interface PostgresSinkConfig {
  /** Connection string handed to pg, without the sink's own query parameters. */
  connectionString: string;
  /**
   * Password given apart from the URL (`sinkOptions.postgres.password[File]`, REDTAIL_POSTGRES_PASSWORD[_FILE]);
   * undefined when the URL holds it or none is needed.
   */
  password?: string;
  /** Schema holding the sink's tables (created when missing). */
  schema: string;
  /** Sink name: the key of its row in `checkpoints`. */
  name: string;
  /** Write one `changes` row per event. */
  changes: boolean;
  /** Delete `changes` rows older than this many ms (0: keep everything). */
  changesRetentionMs: number;
  /** Also record snapshot events in `changes` (off: the snapshot is already in `keys`). */
  changesSnapshot: boolean;
  /** Master URL for exact value fetches (DUMP) when an op's result cannot be computed from the mirror. */
  master: string | null;
  /** Rows per INSERT statement of the snapshot load. */
  snapshotChunkRows: number;
  /** At most this many events in one transaction when batches queue up behind a commit (group commit). */
  maxGroupEvents: number;
  /**
   * Hashes, sets, zsets and lists of this many members or more are stored one row per member (docs/postgres.md, "Big
   * collections"); they go back inline below half of it.
   */
  bigCollectionMembers: number;
  /** Longest wait between retries while Postgres is unreachable. */
  retryMaxDelayMs: number;
  /** Give up (fatal error) after Postgres has been unreachable this long; 0 waits forever. */
  retryTimeoutMs: number;
}

/** The sink's defaults live with every other default (src/config/defaults.ts). */
const DEFAULTS: Omit<PostgresSinkConfig, 'connectionString'> = sinkDefaults.postgres;

/** Query parameters that configure the sink rather than the connection; they are removed before pg sees the URL. */
const SINK_PARAMS = new Set([
  'schema',
  'name',
  'changes',
  'changesretention',
  'changessnapshot',
  'master',
  'snapshotchunkrows',
  'maxgroupevents',
  'bigcollectionmembers',
  'retrymaxdelayms',
  'retrytimeoutms',
]);

/**
 * The connection string pg is given: the URL with the password given apart set into it. (pg lets the connection
 * string's fields override its `password` option, even an absent password, so the option alone is lost.)
 */
export function pgConnectionString(cfg: Pick<PostgresSinkConfig, 'connectionString' | 'password'>): string {
  if (cfg.password === undefined) return cfg.connectionString;
  const url = new URL(cfg.connectionString);
  url.password = encodeURIComponent(cfg.password);
  return url.toString();
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `7d`, `12h`, `30m`, `45s`, `500ms` or a number of ms; 0 or `off` disables retention. */
export function parseDuration(v: unknown, what: string): number {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  if (typeof v !== 'string')
    throw new PostgresConfigError(`${what} must be a duration like 7d, 12h or 500ms`);
  if (v === 'off' || v === '0') return 0;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(v.trim());
  if (!m) throw new PostgresConfigError(`${what} '${v}' is not a duration like 7d, 12h or 500ms`);
  return Number(m[1]) * UNITS[m[2] ?? 'ms']!;
}

function bool(v: unknown, what: string): boolean {
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === '1' || v === 'yes' || v === 'on') return true;
  if (v === 'false' || v === '0' || v === 'no' || v === 'off') return false;
  throw new PostgresConfigError(`${what} must be true or false`);
}

function positive(v: unknown, what: string): number {
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n) || n < 0) throw new PostgresConfigError(`${what} must be a non-negative integer`);
  return n;
}

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Parses `postgres://user:pass@host:port/db?schema=redtail&changes=true&changesRetention=7d&master=redis://...`.
 * Options given in the config file (`sinkOptions.postgres`) apply first; query parameters override them.
 */
export function parsePostgresSpec(spec: string, options: Record<string, unknown> = {}): PostgresSinkConfig {
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new PostgresConfigError(
      `postgres sink '${displayEndpoint(spec)}' is not a URL: use postgres://user@host:5432/db`,
    );
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:')
    throw new PostgresConfigError(
      `postgres sink '${displayEndpoint(spec)}' must start with postgres:// or postgresql://`,
    );
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) raw[k.toLowerCase()] = v;
  for (const [k, v] of [...url.searchParams.entries()]) {
    if (SINK_PARAMS.has(k.toLowerCase())) {
      raw[k.toLowerCase()] = v;
      url.searchParams.delete(k);
    }
  }
  const cfg: PostgresSinkConfig = { ...DEFAULTS, connectionString: url.toString() };
  if (raw.schema !== undefined) cfg.schema = String(raw.schema);
  if (!IDENT.test(cfg.schema))
    throw new PostgresConfigError(
      `schema '${cfg.schema}' must be a lower-case SQL identifier (letters, digits, underscore)`,
    );
  if (raw.name !== undefined) cfg.name = String(raw.name);
  if (raw.password !== undefined && raw.password !== null && raw.password !== '') {
    // pg prefers the connection string's password over the `password` option: two would silently pick one.
    if (secretsInEndpoint(spec).length > 0)
      throw new PostgresConfigError(
        `postgres sink '${displayEndpoint(spec)}' holds a password and another is given apart: give it once`,
      );
    cfg.password = String(raw.password);
  }
  if (raw.changes !== undefined) cfg.changes = bool(raw.changes, 'changes');
  if (raw.changesretention !== undefined)
    cfg.changesRetentionMs = parseDuration(raw.changesretention, 'changesRetention');
  if (raw.changessnapshot !== undefined) cfg.changesSnapshot = bool(raw.changessnapshot, 'changesSnapshot');
  if (raw.master !== undefined && raw.master !== null && raw.master !== '') cfg.master = String(raw.master);
  if (raw.snapshotchunkrows !== undefined)
    cfg.snapshotChunkRows = Math.max(1, positive(raw.snapshotchunkrows, 'snapshotChunkRows'));
  if (raw.maxgroupevents !== undefined)
    cfg.maxGroupEvents = Math.max(1, positive(raw.maxgroupevents, 'maxGroupEvents'));
  if (raw.bigcollectionmembers !== undefined)
    cfg.bigCollectionMembers = Math.max(2, positive(raw.bigcollectionmembers, 'bigCollectionMembers'));
  if (raw.retrymaxdelayms !== undefined)
    cfg.retryMaxDelayMs = positive(raw.retrymaxdelayms, 'retryMaxDelayMs');
  if (raw.retrytimeoutms !== undefined) cfg.retryTimeoutMs = positive(raw.retrytimeoutms, 'retryTimeoutMs');
  return cfg;
}
