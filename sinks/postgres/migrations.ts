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

/** The tables of row-stored big collections (migration 3), by Redis type. */
export const MEMBER_TABLE = {
  hash: 'hash_fields',
  set: 'set_members',
  zset: 'zset_members',
  list: 'list_items',
} as const;
export const MEMBER_TABLES: readonly string[] = Object.values(MEMBER_TABLE);

export const KEYS_INDEX_NAMES = ['keys_key_text', 'keys_expire_at', 'keys_snapshot_gen', 'keys_blobs'];

/**
 * The select list `value, expire ms, field_expire_at` of a `keys` row (alias prefix `k`, e.g. 'k.' or ''), with a big
 * collection's member rows aggregated into the same jsonb an inline value has (migration 3's functions): what
 * `redtail verify` compares, as `live_keys` shows it.
 */
export function mirrorValueSql(s: string, k: string): string {
  return `CASE WHEN ${k}member_rows IS NULL THEN ${k}value ELSE ${s}.redtail_rows_value(${k}db, ${k}key, ${k}type) END,
    (extract(epoch FROM ${k}expire_at) * 1000)::bigint,
    CASE WHEN ${k}member_rows IS NULL OR ${k}type <> 'hash' THEN ${k}field_expire_at
         ELSE ${s}.redtail_rows_field_ttl(${k}db, ${k}key) END`;
}

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
/** Migration 3's tables of the members of big collections, and the GIN indexes of the blobs their rows reference. */
function bigCollectionTables(s: string): string {
  return `ALTER TABLE ${s}.keys ALTER COLUMN value DROP NOT NULL;
ALTER TABLE ${s}.keys ADD COLUMN IF NOT EXISTS member_rows bigint;
CREATE TABLE IF NOT EXISTS ${s}.hash_fields (
  db integer NOT NULL, key bytea NOT NULL, h bytea NOT NULL, field bytea, field_j jsonb NOT NULL,
  value jsonb NOT NULL, expire_ms bigint, blobs text[], PRIMARY KEY (db, key, h)
);
CREATE TABLE IF NOT EXISTS ${s}.set_members (
  db integer NOT NULL, key bytea NOT NULL, h bytea NOT NULL, member bytea, member_j jsonb NOT NULL,
  blobs text[], PRIMARY KEY (db, key, h)
);
CREATE TABLE IF NOT EXISTS ${s}.zset_members (
  db integer NOT NULL, key bytea NOT NULL, h bytea NOT NULL, member bytea, member_j jsonb NOT NULL,
  score double precision NOT NULL, blobs text[], PRIMARY KEY (db, key, h)
);
CREATE INDEX IF NOT EXISTS zset_members_score ON ${s}.zset_members (db, key, score);
CREATE TABLE IF NOT EXISTS ${s}.list_items (
  db integer NOT NULL, key bytea NOT NULL, pos bigint NOT NULL, value jsonb NOT NULL, blobs text[],
  PRIMARY KEY (db, key, pos)
);
${MEMBER_TABLES.map((t) => `CREATE INDEX IF NOT EXISTS ${t}_blobs ON ${s}.${t} USING gin (blobs) WHERE blobs IS NOT NULL`).join(';\n')};
`;
}

/** Migration 3's SQL functions that rebuild a big collection's value and field TTLs, as `keys` holds them, from its rows. */
function bigCollectionFunctions(s: string): string {
  return `CREATE OR REPLACE FUNCTION ${s}.redtail_score(x double precision) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN x = 'Infinity' THEN '"inf"'::jsonb WHEN x = '-Infinity' THEN '"-inf"'::jsonb
              ELSE to_jsonb(x) END $$;
CREATE OR REPLACE FUNCTION ${s}.redtail_rows_value(d integer, k bytea, t text) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT CASE t
    WHEN 'hash' THEN (SELECT coalesce(jsonb_agg(jsonb_build_array(field_j, value) ORDER BY field IS NULL, field, h), '[]')
                      FROM ${s}.hash_fields WHERE db = d AND key = k)
    WHEN 'set' THEN (SELECT coalesce(jsonb_agg(member_j ORDER BY member IS NULL, member, h), '[]')
                     FROM ${s}.set_members WHERE db = d AND key = k)
    WHEN 'zset' THEN (SELECT coalesce(jsonb_agg(jsonb_build_array(member_j, ${s}.redtail_score(score))
                                                ORDER BY score, member IS NULL, member, h), '[]')
                      FROM ${s}.zset_members WHERE db = d AND key = k)
    WHEN 'list' THEN (SELECT coalesce(jsonb_agg(value ORDER BY pos), '[]') FROM ${s}.list_items WHERE db = d AND key = k)
  END $$;
CREATE OR REPLACE FUNCTION ${s}.redtail_rows_field_ttl(d integer, k bytea) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_agg(jsonb_build_array(field_j, expire_ms) ORDER BY field IS NULL, field, h)
  FROM ${s}.hash_fields WHERE db = d AND key = k AND expire_ms IS NOT NULL $$;
`;
}

/**
 * Migration 3's views of the live keys and members, whichever way a collection is stored (in `keys.value` or as
 * member rows), so a reader need not know which.
 */
function liveViews(s: string): string {
  return `CREATE OR REPLACE VIEW ${s}.live_keys AS
  SELECT db, key, key_text, type,
         CASE WHEN member_rows IS NULL THEN value ELSE ${s}.redtail_rows_value(db, key, type) END AS value,
         expire_at,
         CASE WHEN member_rows IS NULL OR type <> 'hash' THEN field_expire_at
              ELSE ${s}.redtail_rows_field_ttl(db, key) END AS field_expire_at,
         updated_offset, member_rows
  FROM ${s}.keys
  WHERE expire_at IS NULL OR expire_at > now();
CREATE OR REPLACE VIEW ${s}.live_hash_fields AS
  SELECT k.db, k.key, k.key_text, e->0 AS field, e->1 AS value,
         (SELECT timestamptz 'epoch' + (t->>1)::bigint * interval '1 millisecond'
          FROM jsonb_array_elements(k.field_expire_at) t WHERE t->0 = e->0) AS field_expire_at
  FROM ${s}.keys k, jsonb_array_elements(k.value) e
  WHERE k.type = 'hash' AND k.member_rows IS NULL AND (k.expire_at IS NULL OR k.expire_at > now())
  UNION ALL
  SELECT k.db, k.key, k.key_text, f.field_j, f.value,
         timestamptz 'epoch' + f.expire_ms * interval '1 millisecond'
  FROM ${s}.keys k JOIN ${s}.hash_fields f ON f.db = k.db AND f.key = k.key
  WHERE k.type = 'hash' AND k.member_rows IS NOT NULL AND (k.expire_at IS NULL OR k.expire_at > now());
CREATE OR REPLACE VIEW ${s}.live_set_members AS
  SELECT k.db, k.key, k.key_text, e AS member
  FROM ${s}.keys k, jsonb_array_elements(k.value) e
  WHERE k.type = 'set' AND k.member_rows IS NULL AND (k.expire_at IS NULL OR k.expire_at > now())
  UNION ALL
  SELECT k.db, k.key, k.key_text, m.member_j
  FROM ${s}.keys k JOIN ${s}.set_members m ON m.db = k.db AND m.key = k.key
  WHERE k.type = 'set' AND k.member_rows IS NOT NULL AND (k.expire_at IS NULL OR k.expire_at > now());
CREATE OR REPLACE VIEW ${s}.live_zset_members AS
  SELECT k.db, k.key, k.key_text, e->0 AS member, (e->>1)::double precision AS score
  FROM ${s}.keys k, jsonb_array_elements(k.value) e
  WHERE k.type = 'zset' AND k.member_rows IS NULL AND (k.expire_at IS NULL OR k.expire_at > now())
  UNION ALL
  SELECT k.db, k.key, k.key_text, m.member_j, m.score
  FROM ${s}.keys k JOIN ${s}.zset_members m ON m.db = k.db AND m.key = k.key
  WHERE k.type = 'zset' AND k.member_rows IS NOT NULL AND (k.expire_at IS NULL OR k.expire_at > now());
CREATE OR REPLACE VIEW ${s}.live_list_items AS
  SELECT k.db, k.key, k.key_text, e.i - 1 AS idx, e.v AS value
  FROM ${s}.keys k, jsonb_array_elements(k.value) WITH ORDINALITY AS e(v, i)
  WHERE k.type = 'list' AND k.member_rows IS NULL AND (k.expire_at IS NULL OR k.expire_at > now())
  UNION ALL
  SELECT k.db, k.key, k.key_text, l.pos - min(l.pos) OVER (PARTITION BY l.db, l.key), l.value
  FROM ${s}.keys k JOIN ${s}.list_items l ON l.db = k.db AND l.key = k.key
  WHERE k.type = 'list' AND k.member_rows IS NOT NULL AND (k.expire_at IS NULL OR k.expire_at > now());
`;
}

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
  {
    version: 3,
    description:
      'big collections one row per member: hash_fields, set_members, zset_members, list_items, views',
    // Collections of `bigCollectionMembers` or more (docs/postgres.md, "Big collections") keep their `keys` row
    // (type, TTL, `member_rows` = their size, `value` NULL) and store each member as a row, so a member change is a
    // row change. `h` identifies a member: 0x00 + its bytes below 32 bytes, else 0x01 + its SHA-256 (a huge member's
    // blob SHA-256 is the same digest), so the primary key never holds a long member (a btree entry is limited to
    // about 2.7 kB). `member`/`field` keep the bytes for ordering (NULL for a huge one), `*_j` the mirror's jsonb
    // encoding of the byte string (docs above), `blobs` the blobs the row references (garbage collection).
    sql: (s) => `
${bigCollectionTables(s)}${bigCollectionFunctions(s)}${liveViews(s)}`,
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
