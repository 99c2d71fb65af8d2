-- Issue 13's member-update target (>= 50,000 member updates/s on 1M-member collections) against what PostgreSQL
-- itself does on this machine, with no redtail and no change log: two 1M-row tables with the DDL of the sink's
-- zset_members and hash_fields (sinks/postgres/migrations.ts, migration 3), then 10 transactions of 5,000 random
-- score increments and 5,000 random value changes each, as set-based UPDATEs (the cheapest form; the sink also reads
-- the members and writes a change row per event). Run: psql "$PG" -f bench/postgresMemberReference.sql; it prints
-- each round's times and the updates/s (creates and drops the schema memref). bench/NOTES.md, "Member updates: what
-- PostgreSQL alone does here".
DROP SCHEMA IF EXISTS memref CASCADE;
CREATE SCHEMA memref;
CREATE TABLE memref.zset_members (
  db integer NOT NULL, key bytea NOT NULL, h bytea NOT NULL, member bytea, member_j jsonb NOT NULL,
  score double precision NOT NULL, blobs text[], PRIMARY KEY (db, key, h));
CREATE INDEX zset_members_score ON memref.zset_members (db, key, score);
CREATE INDEX zset_members_blobs ON memref.zset_members USING gin (blobs) WHERE blobs IS NOT NULL;
CREATE TABLE memref.hash_fields (
  db integer NOT NULL, key bytea NOT NULL, h bytea NOT NULL, field bytea, field_j jsonb NOT NULL,
  value jsonb NOT NULL, expire_ms bigint, blobs text[], PRIMARY KEY (db, key, h));
CREATE INDEX hash_fields_blobs ON memref.hash_fields USING gin (blobs) WHERE blobs IS NOT NULL;
INSERT INTO memref.zset_members
  SELECT 0, 'bench:big:zset', decode(md5('m' || i), 'hex'), convert_to('m' || i, 'UTF8'), to_jsonb('m' || i), i
  FROM generate_series(1, 1000000) i;
INSERT INTO memref.hash_fields
  SELECT 0, 'bench:big:hash', decode(md5('f' || i), 'hex'), convert_to('f' || i, 'UTF8'), to_jsonb('f' || i), to_jsonb('v' || i), NULL
  FROM generate_series(1, 1000000) i;
VACUUM ANALYZE memref.zset_members;
VACUUM ANALYZE memref.hash_fields;
-- 10 transactions, each: 5,000 random ZINCRBY-like score updates and 5,000 random HSET-like value updates (10,000
-- member updates), as set-based statements; no change log (the member rows alone). A DO block can COMMIT per round.
DO $$
DECLARE
  t timestamptz;
  z interval;
  h interval;
  c interval;
  total interval := '0';
BEGIN
  FOR r IN 1..10 LOOP
    t := clock_timestamp();
    UPDATE memref.zset_members m SET score = m.score + 1
      FROM (SELECT decode(md5('m' || (1 + floor(random() * 1000000))::int), 'hex') h FROM generate_series(1, 5000)) x
      WHERE m.db = 0 AND m.key = 'bench:big:zset' AND m.h = x.h;
    z := clock_timestamp() - t;
    t := clock_timestamp();
    UPDATE memref.hash_fields f SET value = to_jsonb('w' || random())
      FROM (SELECT decode(md5('f' || (1 + floor(random() * 1000000))::int), 'hex') h FROM generate_series(1, 5000)) x
      WHERE f.db = 0 AND f.key = 'bench:big:hash' AND f.h = x.h;
    h := clock_timestamp() - t;
    t := clock_timestamp();
    COMMIT;
    c := clock_timestamp() - t;
    total := total + z + h + c;
    RAISE NOTICE 'round %: zset % ms, hash % ms, commit % ms', r,
      round(extract(epoch FROM z) * 1000), round(extract(epoch FROM h) * 1000), round(extract(epoch FROM c) * 1000);
  END LOOP;
  RAISE NOTICE '100,000 member updates in % s: % updates/s', round(extract(epoch FROM total)::numeric, 2),
    round(100000 / extract(epoch FROM total));
END $$;
DROP SCHEMA memref CASCADE;
