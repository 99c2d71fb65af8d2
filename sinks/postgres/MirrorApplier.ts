import { isUtf8 } from 'node:buffer';
import type { PoolClient } from 'pg';
import { sinkDefaults } from '../../src/config/defaults.js';
import type { ChangeEvent, SnapshotEvent, UnknownCommandEvent } from '../../src/events/ChangeEvent.js';
import { BlobTransaction, eachHuge, StringParts } from './blobs.js';
import { type CopyType, type CopyValue, copyBinary } from './copy.js';
import { MirrorError } from './errors.js';
import type { FetchedValue, Fetcher } from './MasterFetcher.js';
import { isRowType, MemberRows } from './memberRows.js';
import { ident, KEYS_INDEX_NAMES, keysIndexes } from './migrations.js';
import { BLOB_BYTES, blobJson, collectBlobs } from './model/blobRef.js';
import { fieldTtlToJson, snapshotJson, valueFromJson, valueToJson } from './model/encoding.js';
import { addNeed, emptyNeed, type MemberNeed } from './model/memberNeeds.js';
import { applyEvent, isModelOp, isNoKeyOp, keysOf } from './model/RedisModel.js';
import { type ApplyContext, Divergence, type KeyEntry, NeedsFetch, type RowType } from './model/types.js';

/** A value fetched from the master, to replace the mirror's when the stream passes `at`. */
interface Pending extends FetchedValue {
  id: number;
  at: number;
}

export interface ApplierLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/** What the applier keeps in `sink_state` across batches. */
export interface SinkState {
  gen: number;
  loading: boolean;
  /** Highest stream (non-snapshot) offset applied; replays at or below it are skipped. */
  appliedOffset: number;
}

/**
 * Staging table of the snapshot COPY: a temporary table (private to the session, never WAL-logged) whose rows vanish
 * at the end of every transaction that touched it (`ON COMMIT DELETE ROWS`; Postgres skips that truncation in
 * transactions that did not touch a temporary table, so the streaming path pays nothing for it). Created on first
 * use in each pooled connection; a rolled-back creation is simply redone by the next batch.
 */
const STAGE = 'pg_temp.redtail_keys_stage';
const STAGE_DDL = `CREATE TEMP TABLE IF NOT EXISTS redtail_keys_stage (
  db integer NOT NULL, key bytea NOT NULL, key_text text, type text NOT NULL, value jsonb, expire_ms bigint,
  field_expire_at jsonb, blobs text[], member_rows bigint) ON COMMIT DELETE ROWS`;
const STAGE_COLUMNS = [
  'db',
  'key',
  'key_text',
  'type',
  'value',
  'expire_ms',
  'field_expire_at',
  'blobs',
  'member_rows',
];
const STAGE_TYPES: CopyType[] = ['int4', 'bytea', 'text', 'text', 'jsonb', 'int8', 'jsonb', 'text[]', 'int8'];

/** Columns of `keys` a bulk snapshot load copies into (pending_offset stays NULL). */
const KEYS_COLUMNS = [
  ...STAGE_COLUMNS.slice(0, 5),
  'expire_at',
  'field_expire_at',
  'blobs',
  'member_rows',
  'updated_offset',
  'snapshot_gen',
];
const KEYS_TYPES: CopyType[] = [
  ...STAGE_TYPES.slice(0, 5),
  'timestamptz',
  'jsonb',
  'text[]',
  'int8',
  'int8',
  'int8',
];

const GLOBAL_OPS = new Set(['flushdb', 'flushall', 'swapdb', 'snapshot-begin', 'snapshot-end']);

function id(db: number, key: Buffer): string {
  return `${db}:${key.toString('latin1')}`;
}

/** key_text: the key as text when it is valid UTF-8 without NUL (Postgres text cannot hold NUL), else NULL. */
export function keyText(key: Buffer): string | null {
  return isUtf8(key) && !key.includes(0) ? key.toString('utf8') : null;
}

/**
 * Applies events to the `keys` mirror inside the caller's transaction. Keys an event touches are loaded
 * (`SELECT ... FOR UPDATE`), changed in JS with Redis's semantics (model/), and written back once per segment with
 * array parameters, so a key touched by many events costs one row write. Keyspace-wide ops (FLUSHDB, FLUSHALL,
 * SWAPDB, snapshot boundaries) end a segment and run as single SQL statements.
 */
export class MirrorApplier {
  private readonly s: string;
  private pendings: Pending[] = [];
  private working = new Map<string, KeyEntry>();
  private toFetch = new Map<string, { db: number; key: Buffer; reason: string }>();
  private deletedPendingIds: number[] = [];
  private offset = 0;
  state: SinkState = { gen: 0, loading: false, appliedOffset: 0 };
  /** The snapshot being loaded goes straight into `keys` (it was empty at `snapshot-begin`). */
  private bulkLoad = false;
  /** Whether this transaction already loaded the staging table (a second load empties it first). */
  private stageUsed = false;
  /** Blobs of huge byte strings referenced and dropped by this transaction (blobs.ts); PostgresSink finishes it. */
  readonly blobs: BlobTransaction;
  /** Big collections stored one row per member (memberRows.ts). */
  readonly rows: MemberRows;
  readonly stats = {
    fetches: 0,
    fetchedKeys: 0,
    divergences: 0,
    rowsWritten: 0,
    copies: 0,
    copiedRows: 0,
    indexBuildMs: 0,
  };

  constructor(
    schema: string,
    private readonly fetcher: Fetcher | null,
    private readonly logger: ApplierLogger,
    private readonly snapshotChunkRows = 5_000,
    bigCollectionMembers = sinkDefaults.postgres.bigCollectionMembers,
  ) {
    this.s = ident(schema);
    this.blobs = new BlobTransaction(this.s);
    this.rows = new MemberRows(this.s, bigCollectionMembers, this.blobs);
  }

  /** Loads the outstanding fetched values (after a restart, or after a failed transaction). */
  async loadPendings(client: PoolClient): Promise<void> {
    const { rows } = await client.query<{
      id: string;
      db: number;
      key: Buffer;
      at_offset: string;
      type: string | null;
      value: unknown;
      expire_at_ms: string | null;
      field_expire_at: unknown;
    }>(
      `SELECT id, db, key, at_offset, type, value, expire_at_ms, field_expire_at FROM ${this.s}.pending_values ORDER BY at_offset, id`,
    );
    this.pendings = rows.map((r) => ({
      id: Number(r.id),
      db: r.db,
      key: r.key,
      at: Number(r.at_offset),
      value: r.type === null ? null : valueFromJson(r.type, r.value, r.field_expire_at),
      expireAt: r.expire_at_ms === null ? null : Number(r.expire_at_ms),
    }));
  }

  get pendingCount(): number {
    return this.pendings.length;
  }

  /**
   * Applies a batch's events in order, then the fetched values the checkpoint has passed. Returns the events that
   * were applied (replays of already applied stream events are dropped).
   */
  async apply(
    client: PoolClient,
    events: ChangeEvent[],
    checkpointOffset: number | null,
  ): Promise<ChangeEvent[]> {
    this.working.clear();
    this.toFetch.clear();
    this.deletedPendingIds = [];
    this.stageUsed = false;
    this.blobs.begin();
    const tHuge = performance.now();
    const fresh = events.filter((e) => e.source.snapshot || e.source.offset > this.state.appliedOffset);
    // The bytes of every huge byte string the batch carries, by SHA-256, for the rows that end up referencing them.
    for (const ev of fresh) eachHuge(ev, this.blobs.keep);
    this.rows.note('eachHuge', tHuge);
    let i = 0;
    while (i < fresh.length) {
      const ev = fresh[i]!;
      if (GLOBAL_OPS.has(ev.op)) {
        if (!ev.source.snapshot) await this.segment(client, [], ev.source.offset - 1);
        await this.global(client, ev);
        i++;
        continue;
      }
      if (isStringPart(ev)) {
        await this.stringPart(client, ev as SnapshotEvent);
        i++;
        continue;
      }
      if (isCollectionPart(ev)) {
        await this.collectionPart(client, ev as SnapshotEvent);
        i++;
        continue;
      }
      if (isWholeSnapshot(ev)) {
        let j = i;
        while (j < fresh.length && isWholeSnapshot(fresh[j]!)) j++;
        await this.snapshotRows(client, fresh.slice(i, j) as SnapshotEvent[]);
        i = j;
        continue;
      }
      let j = i;
      while (
        j < fresh.length &&
        !GLOBAL_OPS.has(fresh[j]!.op) &&
        !isWholeSnapshot(fresh[j]!) &&
        !isStringPart(fresh[j]!) &&
        !isCollectionPart(fresh[j]!)
      )
        j++;
      await this.segment(client, fresh.slice(i, j), -1);
      i = j;
    }
    if (checkpointOffset !== null && !this.state.loading) await this.segment(client, [], checkpointOffset);
    for (const ev of fresh)
      if (!ev.source.snapshot && ev.source.offset > this.state.appliedOffset)
        this.state.appliedOffset = ev.source.offset;
    if (this.deletedPendingIds.length > 0) {
      const { rows } = await client.query<{ blobs: string[] | null }>(
        `DELETE FROM ${this.s}.pending_values WHERE id = ANY($1::bigint[]) RETURNING blobs`,
        [this.deletedPendingIds],
      );
      for (const r of rows) this.blobs.drop(r.blobs);
    }
    return fresh;
  }

  /**
   * Applies `events` and, before each, the fetched values whose offset it passed; after them, those at or below
   * `drainThrough`. Then fetches what the events could not compute and writes the changed keys.
   */
  private async segment(client: PoolClient, events: ChangeEvent[], drainThrough: number): Promise<void> {
    const last = events.length > 0 ? events[events.length - 1]!.source.offset : drainThrough;
    const due = this.pendings.filter((p) => p.at < last || p.at <= drainThrough);
    if (events.length === 0 && due.length === 0) return;
    if (events.length === 0) this.offset = Math.max(this.offset, drainThrough);
    const commandKeys = new Map<ChangeEvent, Buffer[]>();
    const need: Array<[number, Buffer]> = [];
    for (const ev of events) {
      if (ev.op === 'command') {
        const keys = await this.commandKeys(ev);
        commandKeys.set(ev, keys);
        for (const k of keys) need.push([ev.db, k]);
      } else if (ev.key) need.push(...keysOf(ev));
    }
    for (const p of due) need.push([p.db, p.key]);
    const tLoad = performance.now();
    await this.load(client, need);
    this.rows.note('keys load', tLoad);
    const tPrep = performance.now();
    await this.prepareRows(client, events, commandKeys);
    this.rows.note('prepareRows', tPrep);
    const tModel = performance.now();
    const ctx = this.context();
    for (const ev of events) {
      this.offset = ev.source.offset;
      this.applyDue(ev.source.offset, false);
      if (ev.op === 'command') {
        for (const k of commandKeys.get(ev)!)
          ctx.fetch(ev.db, k, `unknown command ${ev.reason ?? ''}`.trim());
        continue;
      }
      if (isNoKeyOp(ev.op) || !isModelOp(ev.op)) {
        if (!isNoKeyOp(ev.op) && ev.key) ctx.fetch(ev.db, ev.key, `op ${ev.op} has no mirror rule`);
        continue;
      }
      try {
        applyEvent(ev, ctx);
      } catch (err) {
        if (err instanceof NeedsFetch) {
          // The op needs bytes the mirror keeps only as a blob (or their order): the master's value is exact.
          for (const [db, k] of keysOf(ev)) ctx.fetch(db, k, err.message);
          continue;
        }
        if (!(err instanceof Divergence)) throw err;
        // The master only propagates what succeeded, so a failure here means the mirror's value was only provisional
        // (a fetch is outstanding) or wrong; either way the exact value is read from the master.
        const pending = keysOf(ev).some(([db, k]) => ctx.isPending(db, k));
        if (!pending) {
          this.stats.divergences++;
          this.logger.warn(
            { op: ev.op, db: ev.db, offset: ev.source.offset, err: err.message },
            'mirror diverged; fetching the exact value',
          );
        }
        for (const [db, k] of keysOf(ev)) ctx.fetch(db, k, `divergence: ${err.message}`);
      }
    }
    if (drainThrough >= 0) this.applyDue(drainThrough, true);
    this.rows.note('model (JS)', tModel);
    const tFlush = performance.now();
    await this.runFetches(client);
    await this.flush(client);
    this.rows.note('fetch+flush', tFlush);
  }

  private applyDue(offset: number, inclusive: boolean): void {
    while (this.pendings.length > 0) {
      const p = this.pendings[0]!;
      if (inclusive ? p.at > offset : p.at >= offset) break;
      this.pendings.shift();
      const e = this.working.get(id(p.db, p.key));
      if (!e) throw new Error('internal: a due fetched value was not loaded');
      e.value = p.value;
      e.expireAt = p.value ? p.expireAt : null;
      const later = this.pendings.find((q) => q.db === p.db && q.key.equals(p.key));
      e.pendingOffset = later ? later.at : null;
      e.dirty = true;
      this.deletedPendingIds.push(p.id);
    }
  }

  private context(): ApplyContext {
    return {
      entry: (db, key) => {
        const e = this.working.get(id(db, key));
        if (!e) throw new Error(`internal: key ${key.toString('latin1')} of db ${db} was not loaded`);
        return e;
      },
      fetch: (db, key, reason) => {
        this.toFetch.set(id(db, key), { db, key, reason });
      },
      isPending: (db, key) => {
        const k = id(db, key);
        return this.toFetch.has(k) || this.pendings.some((p) => p.db === db && p.key.equals(key));
      },
      keep: this.blobs.keep,
    };
  }

  private async commandKeys(ev: UnknownCommandEvent): Promise<Buffer[]> {
    const args = ev.args;
    if (!args || args.length === 0) return [];
    if (!this.fetcher)
      throw new MirrorError(
        `command '${args[0]!.toString('latin1')}' at offset ${ev.source.offset} is not normalized and no master is configured to read its keys' values from; set the sink option 'master'`,
      );
    return this.fetcher.commandKeys(args);
  }

  private async runFetches(client: PoolClient): Promise<void> {
    if (this.toFetch.size === 0) return;
    const wanted = [...this.toFetch.values()];
    this.toFetch.clear();
    if (!this.fetcher)
      throw new MirrorError(
        `${wanted[0]!.reason} (key ${wanted[0]!.key.toString('latin1')}, db ${wanted[0]!.db}) needs the master's value and no master is configured; set the sink option 'master'`,
      );
    const res = await this.fetcher.fetch(wanted);
    this.stats.fetches++;
    this.stats.fetchedKeys += wanted.length;
    if (res.offset < this.offset)
      throw new MirrorError(
        `the master reported offset ${res.offset}, behind the stream (${this.offset}): is it the master redtail replicates?`,
      );
    const rows = res.values.map((v) => {
      for (const h of v.huge ?? []) this.blobs.keep(h);
      const val = v.value;
      const [json, blobs] = collectBlobs(() =>
        val ? [JSON.stringify(valueToJson(val)), JSON.stringify(fieldTtlToJson(val))] : [null, null],
      );
      this.blobs.need(blobs);
      return {
        db: v.db,
        key: v.key,
        type: val?.type ?? null,
        value: json[0],
        exp: val ? v.expireAt : null,
        fttl: json[1],
        blobs: blobs.length > 0 ? blobs.join(',') : null,
      };
    });
    const { rows: ids } = await client.query<{ id: string }>(
      `INSERT INTO ${this.s}.pending_values (db, key, at_offset, type, value, expire_at_ms, field_expire_at, blobs)
       SELECT d, k, $8, t, v::jsonb, x, f::jsonb, string_to_array(bl, ',')
       FROM unnest($1::int[], $2::bytea[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[]) AS u(d, k, t, v, x, f, bl)
       RETURNING id`,
      [
        rows.map((r) => r.db),
        rows.map((r) => r.key),
        rows.map((r) => r.type),
        rows.map((r) => r.value),
        rows.map((r) => r.exp),
        rows.map((r) => r.fttl),
        rows.map((r) => r.blobs),
        res.offset,
      ],
    );
    res.values.forEach((v, i) => {
      this.pendings.push({ ...v, id: Number(ids[i]!.id), at: res.offset });
      const e = this.working.get(id(v.db, v.key));
      if (e) {
        e.pendingOffset = res.offset;
        e.dirty = true;
      }
    });
    this.pendings.sort((a, b) => a.at - b.at || a.id - b.id);
  }

  private async load(client: PoolClient, keys: Array<[number, Buffer]>): Promise<void> {
    const dbs: number[] = [];
    const ks: Buffer[] = [];
    const seen = new Set<string>();
    for (const [db, key] of keys) {
      const k = id(db, key);
      if (seen.has(k) || this.working.has(k)) continue;
      seen.add(k);
      dbs.push(db);
      ks.push(key);
      this.working.set(k, { db, key, value: null, expireAt: null, pendingOffset: null, dirty: false });
    }
    if (dbs.length === 0) return;
    const { rows } = await client.query<{
      db: number;
      key: Buffer;
      type: string;
      value: unknown;
      exp: string | null;
      field_expire_at: unknown;
      blobs: string[] | null;
      member_rows: string | null;
    }>(
      `SELECT k.db, k.key, k.type, k.value, (extract(epoch FROM k.expire_at) * 1000)::bigint AS exp, k.field_expire_at,
              k.blobs, k.member_rows
       FROM ${this.s}.keys k JOIN unnest($1::int[], $2::bytea[]) AS u(d, kk) ON k.db = u.d AND k.key = u.kk
       FOR UPDATE OF k`,
      [dbs, ks],
    );
    for (const r of rows) {
      const e = this.working.get(id(r.db, r.key))!;
      if (r.member_rows !== null && isRowType(r.type))
        // The value is given by prepareRows once the segment's events say which members it needs.
        e.rows = { type: r.type, size: Number(r.member_rows), partial: null, blobs: new Map() };
      else e.value = valueFromJson(r.type, r.value, r.field_expire_at);
      e.expireAt = r.exp === null ? null : Number(r.exp);
      e.pendingOffset = this.pendings.find((p) => p.db === r.db && p.key.equals(r.key))?.at ?? null;
      e.blobs = r.blobs;
    }
  }

  /**
   * Gives each row-stored key just loaded the part of its value the segment's events need (model/memberNeeds.ts):
   * the members they name, the ends of a list, or the whole collection when some op needs it.
   */
  private async prepareRows(
    client: PoolClient,
    events: ChangeEvent[],
    commandKeys: Map<ChangeEvent, Buffer[]>,
  ): Promise<void> {
    const needs = new Map<KeyEntry, MemberNeed>();
    for (const e of this.working.values()) if (e.rows && e.value === null) needs.set(e, emptyNeed());
    if (needs.size === 0) return;
    for (const ev of events) {
      const keys =
        ev.op === 'command'
          ? (commandKeys.get(ev) ?? []).map((k) => [ev.db, k] as [number, Buffer])
          : keysOf(ev);
      for (const [db, k] of keys) {
        const e = this.working.get(id(db, k));
        const need = e && needs.get(e);
        if (need) addNeed(need, ev, db, k);
      }
    }
    for (const [e, need] of needs) await this.rows.prepare(client, e, need);
  }

  /** Writes the changed keys of the working set: one DELETE and one upsert per chunk, whatever the event count. */
  private async flush(client: PoolClient): Promise<void> {
    const del: KeyEntry[] = [];
    const up: KeyEntry[] = [];
    const dirty = [...this.working.values()].filter((e) => e.dirty);
    // Member rows first: they decide whether each big collection's `keys` row holds its value or `member_rows`.
    await this.rows.write(
      client,
      dirty.filter((e) => this.rows.involves(e)),
    );
    for (const e of dirty) {
      // The row's old blobs may lose their last reference; the new value's are listed again below.
      this.blobs.drop(e.blobs);
      if (e.value === null) del.push(e);
      else up.push(e);
      e.dirty = false;
    }
    this.working.clear();
    if (del.length > 0)
      await client.query(
        `DELETE FROM ${this.s}.keys k USING unnest($1::int[], $2::bytea[]) AS u(d, kk) WHERE k.db = u.d AND k.key = u.kk`,
        [del.map((e) => e.db), del.map((e) => e.key)],
      );
    for (let i = 0; i < up.length; i += this.snapshotChunkRows)
      await this.upsert(
        client,
        up.slice(i, i + this.snapshotChunkRows).map((e) => {
          const v = e.value!;
          const inRows = e.memberRows ?? null;
          const [[json, fttl], blobs] = collectBlobs(() =>
            inRows !== null
              ? [null, null]
              : [
                  JSON.stringify(valueToJson(v)),
                  v.type === 'hash' ? JSON.stringify(fieldTtlToJson(v)) : null,
                ],
          );
          this.blobs.need(blobs);
          return {
            db: e.db,
            key: e.key,
            type: v.type,
            json,
            exp: e.expireAt,
            fttl,
            pending: e.pendingOffset,
            blobs: blobs.length > 0 ? blobs.join(',') : null,
            memberRows: inRows,
          };
        }),
      );
    this.stats.rowsWritten += del.length + up.length;
  }

  async upsert(
    client: PoolClient,
    rows: Array<{
      db: number;
      key: Buffer;
      type: string;
      /** The value's jsonb text; null for a value stored in member rows (memberRows.ts). */
      json: string | null;
      exp: number | null;
      fttl: string | null;
      pending: number | null;
      /** SHA-256s of the blobs the value references, comma-separated (model/blobRef.ts), or null. */
      blobs: string | null;
      memberRows?: number | null;
    }>,
  ): Promise<void> {
    if (rows.length === 0) return;
    await client.query(
      `INSERT INTO ${this.s}.keys AS t (db, key, key_text, type, value, expire_at, field_expire_at, updated_offset, snapshot_gen, pending_offset, blobs, member_rows)
       SELECT d, k, kt, ty, v::jsonb, CASE WHEN x IS NULL THEN NULL ELSE timestamptz 'epoch' + x * interval '1 millisecond' END,
              f::jsonb, $10, $11, p, string_to_array(bl, ','), mr
       FROM unnest($1::int[], $2::bytea[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::bigint[], $9::text[], $12::bigint[]) AS u(d, k, kt, ty, v, x, f, p, bl, mr)
       ON CONFLICT (db, key) DO UPDATE SET key_text = EXCLUDED.key_text, type = EXCLUDED.type, value = EXCLUDED.value,
         expire_at = EXCLUDED.expire_at, field_expire_at = EXCLUDED.field_expire_at, updated_offset = EXCLUDED.updated_offset,
         snapshot_gen = EXCLUDED.snapshot_gen, pending_offset = EXCLUDED.pending_offset, blobs = EXCLUDED.blobs,
         member_rows = EXCLUDED.member_rows`,
      [
        rows.map((r) => r.db),
        rows.map((r) => r.key),
        rows.map((r) => keyText(r.key)),
        rows.map((r) => r.type),
        rows.map((r) => r.json),
        rows.map((r) => r.exp),
        rows.map((r) => r.fttl),
        rows.map((r) => r.pending),
        rows.map((r) => r.blobs),
        this.offset,
        this.state.gen,
        rows.map((r) => r.memberRows ?? null),
      ],
    );
  }

  /**
   * Whole snapshot keys overwrite their rows without being read first: the bulk path of the initial load. Into a
   * mirror that was empty when the snapshot began (`bulkLoad`), the rows are streamed with a binary `COPY` straight
   * into `keys`: no row can be there already (a snapshot holds each key once; a failed batch rolled back) and the
   * secondary indexes are dropped until the end of the load. Otherwise they go by `COPY` into a session-local staging
   * table and then into `keys` by one `INSERT ... SELECT ... ON CONFLICT (db, key) DO UPDATE` (COPY cannot upsert,
   * and a full resync finds the previous generation's rows there), all inside the batch's transaction.
   */
  private async snapshotRows(client: PoolClient, events: SnapshotEvent[]): Promise<void> {
    this.offset = events[0]!.source.offset;
    const direct = this.bulkLoad;
    /** Big collections: their `keys` row says `member_rows`, their members are copied into rows after it. */
    const big: SnapshotEvent[] = [];
    const rows = this.snapshotKeyRows(events, direct ? [this.offset, this.state.gen] : [], big);
    const n = direct
      ? await copyBinary(client, `${this.s}.keys`, KEYS_COLUMNS, KEYS_TYPES, rows)
      : await this.upsertStaged(client, rows);
    await this.copyBigMembers(client, big, direct);
    this.stats.rowsWritten += n;
    this.stats.copies++;
    this.stats.copiedRows += n;
  }

  /**
   * The `keys` rows of snapshot events, made as the COPY pulls them (not all in memory at once), each ended by `tail`
   * (the direct COPY's offset and generation). A big collection's row has no value and goes to `big` for its member
   * rows; module values are skipped with a warning.
   */
  private snapshotKeyRows(
    events: SnapshotEvent[],
    tail: CopyValue[],
    big: SnapshotEvent[],
  ): Generator<CopyValue[]> {
    const logger = this.logger;
    const blobTx = this.blobs;
    const threshold = this.rows.threshold;
    return (function* () {
      for (const ev of events) {
        if (ev.type === 'module') {
          logger.warn(
            { db: ev.db, key: ev.key?.toString('latin1') },
            'module values cannot be mirrored; key skipped',
          );
          continue;
        }
        const n = isRowType(ev.type as string) && Array.isArray(ev.value) ? ev.value.length : -1;
        if (n >= threshold) {
          big.push(ev);
          const exp = (ev.expireAt as number | null) ?? null;
          yield [ev.db, ev.key!, keyText(ev.key!), ev.type as string, null, exp, null, null, n, ...tail];
          continue;
        }
        yield snapshotKeyRow(ev, blobTx, tail);
      }
    })();
  }

  /**
   * Copies `rows` into the session's staging table and upserts them into `keys` (COPY cannot upsert, and a full
   * resync finds the previous generation's rows there); returns how many rows were copied.
   */
  private async upsertStaged(client: PoolClient, rows: Iterable<CopyValue[]>): Promise<number> {
    await client.query(STAGE_DDL);
    if (this.stageUsed) await client.query(`TRUNCATE ${STAGE}`);
    this.stageUsed = true;
    const n = await copyBinary(client, STAGE, STAGE_COLUMNS, STAGE_TYPES, rows);
    await client.query(
      `INSERT INTO ${this.s}.keys AS t (db, key, key_text, type, value, expire_at, field_expire_at, updated_offset, snapshot_gen, pending_offset, blobs, member_rows)
       SELECT db, key, key_text, type, value,
              CASE WHEN expire_ms IS NULL THEN NULL ELSE timestamptz 'epoch' + expire_ms * interval '1 millisecond' END,
              field_expire_at, $1, $2, NULL, blobs, member_rows
       FROM ${STAGE}
       ON CONFLICT (db, key) DO UPDATE SET key_text = EXCLUDED.key_text, type = EXCLUDED.type, value = EXCLUDED.value,
         expire_at = EXCLUDED.expire_at, field_expire_at = EXCLUDED.field_expire_at, updated_offset = EXCLUDED.updated_offset,
         snapshot_gen = EXCLUDED.snapshot_gen, pending_offset = EXCLUDED.pending_offset, blobs = EXCLUDED.blobs,
         member_rows = EXCLUDED.member_rows`,
      [this.offset, this.state.gen],
    );
    return n;
  }

  /** Copies the member rows of the snapshot's big collections, after their `keys` rows. */
  private async copyBigMembers(client: PoolClient, big: SnapshotEvent[], direct: boolean): Promise<void> {
    for (const ev of big) {
      // A full resync over an existing mirror may find the older generation's member rows of this key.
      if (!direct) await this.rows.deleteAnyType(client, ev.db, ev.key!);
      const fttl = ev.fieldExpireAt as Array<[Buffer, number]> | undefined;
      await this.rows.copySnapshot(client, ev.db, ev.key!, ev.type as RowType, ev.value, fttl);
    }
  }

  /**
   * One part of a snapshot string streamed in parts (the RDB parser cuts raw strings above its `streamThreshold`,
   * 64 MB by default, docs/rdb.md). Parts may straddle transactions, so each part's bytes go to `blob_parts` as they
   * come; the last part's transaction reads them back in chunks for the SHA-256 (an incremental hash in memory would
   * not survive a failed transaction), moves them to `blob_chunks` inside Postgres and writes the key's row. A string
   * that turns out shorter than BLOB_BYTES (only with a parser threshold below it) is assembled and stored inline.
   */
  private async stringPart(client: PoolClient, ev: SnapshotEvent): Promise<void> {
    this.offset = ev.source.offset;
    const value = ev.value as Buffer;
    const parts = new StringParts(client, this.s, ev.db, ev.key);
    if (ev.part === 0) await parts.clear();
    const { next, bytes } = await parts.state();
    if (!ev.last) return parts.append(value, next);
    if (bytes + value.length < BLOB_BYTES) {
      const whole: SnapshotEvent = { ...ev, value: await parts.assemble(value) };
      delete whole.part;
      delete whole.last;
      return this.snapshotRows(client, [whole]);
    }
    const ref = await parts.toBlob(value, next);
    await this.upsert(client, [
      {
        db: ev.db,
        key: ev.key,
        type: 'string',
        json: JSON.stringify(blobJson(ref)),
        exp: ev.expireAt ?? null,
        fttl: null,
        pending: null,
        blobs: ref.sha256,
      },
    ]);
    this.stats.rowsWritten++;
  }

  /**
   * A later part of a snapshot collection streamed in parts (above the parser's streamThreshold). When the parts so far
   * are already in member rows, this part's members are new ones (a snapshot holds each member once) and are copied
   * after them, the list's elements after its last position; otherwise the part goes through the model like any
   * event, and the flush moves the value to rows when it reaches the threshold.
   */
  private async collectionPart(client: PoolClient, ev: SnapshotEvent): Promise<void> {
    const type = ev.type as RowType;
    const { rows } = await client.query<{ n: string | null; next: string | null }>(
      `SELECT k.member_rows AS n, CASE WHEN k.type = 'list' THEN
         (SELECT max(pos) + 1 FROM ${this.s}.list_items l WHERE l.db = k.db AND l.key = k.key) END AS next
       FROM ${this.s}.keys k WHERE k.db = $1 AND k.key = $2 AND k.type = $3 FOR UPDATE`,
      [ev.db, ev.key, type],
    );
    const row = rows[0];
    if (row?.n == null || !Array.isArray(ev.value)) return this.segment(client, [ev], -1);
    this.offset = ev.source.offset;
    const fttl = ev.fieldExpireAt as Array<[Buffer, number]> | undefined;
    await this.rows.copySnapshot(client, ev.db, ev.key, type, ev.value, fttl, Number(row.next ?? 0));
    await client.query(
      `UPDATE ${this.s}.keys SET member_rows = member_rows + $3, updated_offset = $4 WHERE db = $1 AND key = $2`,
      [ev.db, ev.key, ev.value.length, this.offset],
    );
  }

  /**
   * A snapshot into an empty mirror is a bulk load: its rows are copied straight into `keys`, and the secondary
   * indexes are dropped now and built once at `snapshot-end` (a sorted build of each index costs far less than an
   * insertion per row; the primary key stays, it guards the rows). Nobody can read a mirror that is not there yet;
   * DROP INDEX briefly takes an exclusive lock on `keys`. Kept in memory only: a restart during the load resyncs,
   * and the next `snapshot-begin` decides again (then on a non-empty table).
   */
  private async beginBulkLoad(client: PoolClient): Promise<void> {
    const { rows } = await client.query<{ empty: boolean }>(
      `SELECT NOT EXISTS (SELECT 1 FROM ${this.s}.keys) AS empty`,
    );
    this.bulkLoad = rows[0]?.empty === true;
    if (!this.bulkLoad) return;
    await client.query(KEYS_INDEX_NAMES.map((n) => `DROP INDEX IF EXISTS ${this.s}.${n}`).join('; '));
  }

  private async global(client: PoolClient, ev: ChangeEvent): Promise<void> {
    this.offset = ev.source.offset;
    const k = `${this.s}.keys`;
    switch (ev.op) {
      case 'flushdb':
        await client.query(`DELETE FROM ${k} WHERE db = $1`, [ev.db]);
        await this.rows.flushDb(client, ev.db);
        this.blobs.sweep();
        break;
      case 'flushall':
        await client.query(`DELETE FROM ${k}`);
        await this.rows.flushDb(client, null);
        this.blobs.sweep();
        break;
      case 'swapdb': {
        const a = ev.db1 as number;
        const b = ev.db2 as number;
        if (a === b) break;
        // Three steps through a temporary db number: one UPDATE swapping both would collide on the primary key.
        await client.query(`UPDATE ${k} SET db = -1 WHERE db = $1`, [a]);
        await client.query(`UPDATE ${k} SET db = $1 WHERE db = $2`, [a, b]);
        await client.query(`UPDATE ${k} SET db = $1 WHERE db = -1`, [b]);
        await this.rows.swapDb(client, a, b);
        break;
      }
      case 'snapshot-begin':
        // A full resync: values fetched for the old history are void, and every key must come again in this
        // snapshot or be deleted at its end.
        this.state.gen++;
        this.state.loading = true;
        this.state.appliedOffset = 0;
        this.pendings = [];
        this.deletedPendingIds = [];
        await client.query(`DELETE FROM ${this.s}.pending_values`);
        // Parts of a string an interrupted load left behind (its transaction committed, the load did not finish).
        await client.query(`DELETE FROM ${this.s}.blob_parts`);
        this.blobs.sweep();
        await this.beginBulkLoad(client);
        break;
      case 'snapshot-end': {
        const r = await client.query(`DELETE FROM ${k} WHERE snapshot_gen < $1`, [this.state.gen]);
        // Member rows of keys that are gone, or that the new snapshot stores inline or as another type.
        await this.rows.deleteOrphans(client);
        // Rows of the old generation are gone and others were overwritten by the load: their blobs may be orphans.
        this.blobs.sweep();
        // Always (not only after a bulk load): a load interrupted after dropping them left them missing.
        const t = performance.now();
        for (const ddl of keysIndexes(this.s)) await client.query(ddl);
        this.stats.indexBuildMs += performance.now() - t;
        this.bulkLoad = false;
        this.state.loading = false;
        this.state.appliedOffset = ev.source.offset;
        if ((r.rowCount ?? 0) > 0)
          this.logger.info(
            { deleted: r.rowCount, gen: this.state.gen },
            'full resync: deleted keys absent from the new snapshot',
          );
        break;
      }
    }
  }
}

/** A snapshot event that is a whole key (not one part of a huge value): these are copied in bulk. */
function isWholeSnapshot(ev: ChangeEvent): boolean {
  return ev.op === 'snapshot' && ev.part === undefined;
}

/** A later part (not the first) of a hash, set, zset or list streamed in parts: see MirrorApplier.collectionPart. */
function isCollectionPart(ev: ChangeEvent): boolean {
  return ev.op === 'snapshot' && (ev.part ?? 0) > 0 && isRowType(ev.type as string);
}

/** One part of a snapshot string streamed in parts (a raw string above the parser's streamThreshold). */
function isStringPart(ev: ChangeEvent): boolean {
  return ev.op === 'snapshot' && ev.part !== undefined && ev.type === 'string';
}

/** The `keys` row of a snapshot key whose value is stored in it, as JSON; the value's huge parts' blobs go to `blobTx`. */
function snapshotKeyRow(ev: SnapshotEvent, blobTx: BlobTransaction, tail: CopyValue[]): CopyValue[] {
  const [v, blobs] = collectBlobs(() =>
    snapshotJson(ev.type as string, ev.value, ev.fieldExpireAt as Array<[Buffer, number]> | undefined),
  );
  blobTx.need(blobs);
  return [
    ev.db,
    ev.key!,
    keyText(ev.key!),
    v.type,
    v.json,
    (ev.expireAt as number | null) ?? null,
    v.fieldTtl,
    blobs.length > 0 ? blobs : null,
    null,
    ...tail,
  ];
}
