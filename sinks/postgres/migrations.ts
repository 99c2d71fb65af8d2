import type pg from 'pg';
import type { PoolClient } from 'pg';

/**
 * The secondary indexes of `keys` (not its primary key), as `CREATE INDEX IF NOT EXISTS` statements. The snapshot
 * load into an empty mirror drops them and runs these again at its end (one sorted build instead of millions of
 * index insertions); migration 1 creates them with the same text.
 */
export function keysIndexes(s: string): string[] {
  return [...keysIndexesV1(s), KEYS_BLOBS_INDEX(s)];
}

/** The indexes migration 1 created: a released migration's text must not change with later columns. */
function keysIndexesV1(s: string): string[] {
  return [
    `CREATE INDEX IF NOT EXISTS keys_key_text ON ${s}.keys (db, key_text text_pattern_ops)`,
    `CREATE INDEX IF NOT EXISTS keys_expire_at ON ${s}.keys (expire_at) WHERE expire_at IS NOT NULL`,
    `CREATE INDEX IF NOT EXISTS keys_snapshot_gen ON ${s}.keys (snapshot_gen)`,
  ];
}

/**
 * Which keys reference a blob (migration 2): the garbage collection of blobs asks `blobs @> ARRAY[sha]` per
 * candidate blob. Partial: only keys holding a huge value have a non-NULL `blobs`.
 */
const KEYS_BLOBS_INDEX = (s: string) =>
  `CREATE INDEX IF NOT EXISTS keys_blobs ON ${s}.keys USING gin (blobs) WHERE blobs IS NOT NULL`;

export const KEYS_INDEX_NAMES = ['keys_key_text', 'keys_expire_at', 'keys_snapshot_gen', 'keys_blobs'];

/** One schema version; `sql` is run once, in order, inside the migration transaction. */
interface Migration {
  version: number;
  description: string;
  sql: (s: string) => string;
}

/**
 * Versioned migrations. Each runs once (recorded in `schema_migrations`) and every statement is also written to be
 * idempotent, so a half-applied manual run or two sinks starting at once cannot break the schema. Never edit a
 * released migration: append a new one.
 */
const MIGRATIONS: Migration[] = [
  {
    version: 1,
    description: 'changes, keys, live_keys, checkpoints, sink_state, pending_values',
    sql: (s) => `
CREATE TABLE IF NOT EXISTS ${s}.changes (
  replid text NOT NULL,
  "offset" bigint NOT NULL,
  seq integer NOT NULL,
  db integer NOT NULL,
  key bytea,
  op text NOT NULL,
  payload jsonb NOT NULL,
  txn text,
  received_at timestamptz NOT NULL,
  PRIMARY KEY (replid, "offset", seq)
);
CREATE INDEX IF NOT EXISTS changes_received_at ON ${s}.changes (received_at);
CREATE INDEX IF NOT EXISTS changes_db_key ON ${s}.changes (db, key);

CREATE TABLE IF NOT EXISTS ${s}.keys (
  db integer NOT NULL,
  key bytea NOT NULL,
  key_text text,
  type text NOT NULL,
  value jsonb NOT NULL,
  expire_at timestamptz,
  field_expire_at jsonb,
  updated_offset bigint NOT NULL,
  snapshot_gen bigint NOT NULL,
  pending_offset bigint,
  PRIMARY KEY (db, key)
);
${keysIndexesV1(s).join(';\n')};

CREATE OR REPLACE VIEW ${s}.live_keys AS
  SELECT db, key, key_text, type, value, expire_at, field_expire_at, updated_offset
  FROM ${s}.keys
  WHERE expire_at IS NULL OR expire_at > now();

CREATE TABLE IF NOT EXISTS ${s}.checkpoints (
  sink text PRIMARY KEY,
  replid text NOT NULL,
  "offset" bigint NOT NULL,
  db integer NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS ${s}.sink_state (
  sink text PRIMARY KEY,
  snapshot_gen bigint NOT NULL DEFAULT 0,
  snapshot_loading boolean NOT NULL DEFAULT false,
  applied_offset bigint NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS ${s}.pending_values (
  id bigserial PRIMARY KEY,
  db integer NOT NULL,
  key bytea NOT NULL,
  at_offset bigint NOT NULL,
  type text,
  value jsonb,
  expire_at_ms bigint,
  field_expire_at jsonb
);
`,
  },
  {
    version: 2,
    description: 'huge values: blobs, blob_chunks, blob_parts, blobs columns, redtail_blob()',
    // Byte strings of 1 MB or more (sinks/postgres/blobs.ts): content-addressed by SHA-256 (hex, as in the jsonb
    // reference), 1 MB chunk rows so neither redtail nor Postgres ever needs one field of the value's size. A blob
    // lives while a `keys`, `changes` or `pending_values` row lists it in its `blobs` column. `blob_parts` holds the
    // chunks of a snapshot string that arrives in parts, until its last part gives the SHA-256.
    sql: (s) => `
CREATE TABLE IF NOT EXISTS ${s}.blobs (
  sha256 text PRIMARY KEY,
  bytes bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ${s}.blob_chunks (
  sha256 text NOT NULL REFERENCES ${s}.blobs ON DELETE CASCADE,
  n integer NOT NULL,
  chunk bytea NOT NULL,
  PRIMARY KEY (sha256, n)
);
CREATE TABLE IF NOT EXISTS ${s}.blob_parts (
  db integer NOT NULL,
  key bytea NOT NULL,
  n integer NOT NULL,
  chunk bytea NOT NULL,
  PRIMARY KEY (db, key, n)
);
ALTER TABLE ${s}.keys ADD COLUMN IF NOT EXISTS blobs text[];
ALTER TABLE ${s}.changes ADD COLUMN IF NOT EXISTS blobs text[];
ALTER TABLE ${s}.pending_values ADD COLUMN IF NOT EXISTS blobs text[];
${KEYS_BLOBS_INDEX(s)};
CREATE INDEX IF NOT EXISTS changes_blobs ON ${s}.changes USING gin (blobs) WHERE blobs IS NOT NULL;
CREATE OR REPLACE FUNCTION ${s}.redtail_blob(sha text) RETURNS bytea LANGUAGE sql STABLE AS
  $$ SELECT string_agg(chunk, ''::bytea ORDER BY n) FROM ${s}.blob_chunks WHERE sha256 = sha $$;
CREATE OR REPLACE FUNCTION ${s}.redtail_value(v jsonb) RETURNS bytea LANGUAGE sql STABLE AS
  $$ SELECT CASE WHEN v ? 'blob' THEN ${s}.redtail_blob(v->'blob'->>'sha256')
                 WHEN v ? 'base64' THEN decode(v->>'base64', 'base64')
                 WHEN jsonb_typeof(v) = 'string' THEN convert_to(v #>> '{}', 'UTF8') END $$;
`,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** Quotes an identifier already checked against [a-z_][a-z0-9_]* by the config parser. */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Creates or upgrades the schema. A transaction-scoped advisory lock keyed on the schema name serializes concurrent
 * starts; the whole upgrade commits or nothing does. `upTo` stops at an older version (tests build the schema an
 * earlier redtail left, to prove the upgrade).
 */
export async function migrate(
  client: PoolClient | pg.Client,
  schema: string,
  upTo: number = SCHEMA_VERSION,
): Promise<number> {
  const s = ident(schema);
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`redtail:${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${s}.schema_migrations (version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const { rows } = await client.query<{ v: number | null }>(
      `SELECT max(version) AS v FROM ${s}.schema_migrations`,
    );
    const current = rows[0]?.v ?? 0;
    if (current > SCHEMA_VERSION)
      throw new Error(
        `schema ${schema} is at version ${current}, newer than this redtail (${SCHEMA_VERSION}); upgrade redtail`,
      );
    for (const m of MIGRATIONS) {
      if (m.version <= current || m.version > upTo) continue;
      await client.query(m.sql(s));
      await client.query(`INSERT INTO ${s}.schema_migrations (version, description) VALUES ($1, $2)`, [
        m.version,
        m.description,
      ]);
    }
    await client.query('COMMIT');
    return Math.min(upTo, SCHEMA_VERSION);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
