import type { PoolClient } from 'pg';

/**
 * The secondary indexes of `keys` (not its primary key), as `CREATE INDEX IF NOT EXISTS` statements. The snapshot
 * load into an empty mirror drops them and runs these again at its end (one sorted build instead of millions of
 * index insertions); migration 1 creates them with the same text.
 */
export function keysIndexes(s: string): string[] {
  return [
    `CREATE INDEX IF NOT EXISTS keys_key_text ON ${s}.keys (db, key_text text_pattern_ops)`,
    `CREATE INDEX IF NOT EXISTS keys_expire_at ON ${s}.keys (expire_at) WHERE expire_at IS NOT NULL`,
    `CREATE INDEX IF NOT EXISTS keys_snapshot_gen ON ${s}.keys (snapshot_gen)`,
  ];
}

export const KEYS_INDEX_NAMES = ['keys_key_text', 'keys_expire_at', 'keys_snapshot_gen'];

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
${keysIndexes(s).join(';\n')};

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
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** Quotes an identifier already checked against [a-z_][a-z0-9_]* by the config parser. */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Creates or upgrades the schema. A transaction-scoped advisory lock keyed on the schema name serializes concurrent
 * starts; the whole upgrade commits or nothing does.
 */
export async function migrate(client: PoolClient, schema: string): Promise<number> {
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
      if (m.version <= current) continue;
      await client.query(m.sql(s));
      await client.query(`INSERT INTO ${s}.schema_migrations (version, description) VALUES ($1, $2)`, [
        m.version,
        m.description,
      ]);
    }
    await client.query('COMMIT');
    return SCHEMA_VERSION;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
