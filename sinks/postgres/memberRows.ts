import { createHash } from 'node:crypto';
import type { PoolClient } from 'pg';
import type { BlobTransaction } from './blobs.js';
import { type CopyType, type CopyValue, copyBinary } from './copy.js';
import { MEMBER_TABLE, MEMBER_TABLES } from './migrations.js';
import { blobRefOf, collectBlobs, isHuge, isPlaceholder, refOfPlaceholder } from './model/blobRef.js';
import { decodeToLatin1, encodeBytes, encodeLatin1, scoreFromJson, scoreToJson } from './model/encoding.js';
import type { MemberNeed } from './model/memberNeeds.js';
import { MemberTracker, PartialList, PartialMap, PartialSet } from './model/partial.js';
import type { Bytes, KeyEntry, RedisValue, RowState, RowType } from './model/types.js';

export type { RowState, RowType };

/**
 * Big collections stored one row per member (docs/postgres.md, "Big collections"; migration 3). A hash, set, zset or
 * list of `threshold` members or more keeps its `keys` row (type, TTL, `member_rows` = its size, `value` NULL) and
 * puts each field/member/element in `hash_fields`, `set_members`, `zset_members` or `list_items`. A batch loads only
 * the members its events name (model/memberNeeds.ts) into partial values (model/partial.ts), the ordinary op handlers
 * apply the events, and only the changed rows are written back: one `DELETE` and one `INSERT ... ON CONFLICT` per
 * table per transaction, from arrays. Ops that need the whole collection load it whole and rewrite it (O(size)).
 */

export function isRowType(t: string): t is RowType {
  return t === 'hash' || t === 'set' || t === 'zset' || t === 'list';
}

/** Members of a collection value, or -1 for strings and streams (which stay inline). */
export function collectionSize(v: RedisValue | null): number {
  if (!v) return -1;
  if (v.type === 'list') return v.v.length;
  if (v.type === 'set' || v.type === 'zset' || v.type === 'hash') return v.v.size;
  return -1;
}

const SHORT_ID = 32;

/**
 * A member's row id (the `h` column): 0x00 + its bytes when shorter than 32 bytes, else 0x01 + its SHA-256, which for
 * a huge member is its blob's SHA-256. A btree entry is limited to about 2.7 kB, so members themselves cannot be the key.
 */
export function memberId(m: Bytes): Buffer {
  if (isPlaceholder(m)) return Buffer.concat([ONE, Buffer.from(refOfPlaceholder(m).sha256, 'hex')]);
  const b = Buffer.from(m, 'latin1');
  if (b.length < SHORT_ID) return Buffer.concat([ZERO, b]);
  return Buffer.concat([ONE, createHash('sha256').update(b).digest()]);
}

const ZERO = Buffer.from([0]);
const ONE = Buffer.from([1]);

/** The member's bytes for ordering (NULL for a huge one: the mirror orders those last, by SHA-256). */
function memberBytes(m: Bytes): Buffer | null {
  return isPlaceholder(m) ? null : Buffer.from(m, 'latin1');
}

function enc(m: Bytes): string {
  return JSON.stringify(encodeLatin1(m));
}

/** Rows a full value becomes, per table: db, key, then the table's own columns (COLUMNS below). */
const COLUMNS: Record<RowType, { names: string[]; types: CopyType[] }> = {
  hash: {
    names: ['db', 'key', 'h', 'field', 'field_j', 'value', 'expire_ms', 'blobs'],
    types: ['int4', 'bytea', 'bytea', 'bytea', 'jsonb', 'jsonb', 'int8', 'text[]'],
  },
  set: {
    names: ['db', 'key', 'h', 'member', 'member_j', 'blobs'],
    types: ['int4', 'bytea', 'bytea', 'bytea', 'jsonb', 'text[]'],
  },
  zset: {
    names: ['db', 'key', 'h', 'member', 'member_j', 'score', 'blobs'],
    types: ['int4', 'bytea', 'bytea', 'bytea', 'jsonb', 'float8', 'text[]'],
  },
  list: {
    names: ['db', 'key', 'pos', 'value', 'blobs'],
    types: ['int4', 'bytea', 'int8', 'jsonb', 'text[]'],
  },
};

/** The SQL array type of each COPY type, for the unnest upserts. */
const ARRAY_TYPE: Record<CopyType, string> = {
  int4: 'int[]',
  int8: 'bigint[]',
  float8: 'float8[]',
  bytea: 'bytea[]',
  text: 'text[]',
  jsonb: 'text[]',
  timestamptz: 'bigint[]',
  'text[]': 'text[]',
};

/**
 * The row of member `m` of a hash, set or zset (null when the value no longer has it), its last field the blobs it
 * references.
 */
function memberRow(db: number, key: Buffer, m: Bytes, v: RedisValue): CopyValue[] | null {
  const [row, shas] = collectBlobs((): CopyValue[] | null => {
    const mm = m as Bytes;
    if (v.type === 'hash') {
      const x = v.v instanceof PartialMap ? v.v.peek(mm) : v.v.get(mm);
      if (x === undefined) return null;
      const ttl = v.ttl instanceof PartialMap ? v.ttl.peek(mm) : v.ttl.get(mm);
      return [db, key, memberId(mm), memberBytes(mm), enc(mm), enc(x), ttl ?? null, null];
    }
    if (v.type === 'set') {
      const has = v.v instanceof PartialSet ? v.v.peek(mm) : v.v.has(mm);
      return has ? [db, key, memberId(mm), memberBytes(mm), enc(mm), null] : null;
    }
    if (v.type === 'zset') {
      const s = v.v instanceof PartialMap ? v.v.peek(mm) : v.v.get(mm);
      if (s === undefined) return null;
      return [db, key, memberId(mm), memberBytes(mm), enc(mm), scoreFromJson(scoreToJson(s)), null];
    }
    return null;
  });
  if (row && shas.length > 0) row[row.length - 1] = shas;
  return row;
}

function listRow(db: number, key: Buffer, pos: number, x: Bytes): CopyValue[] {
  const [j, shas] = collectBlobs(() => enc(x));
  return [db, key, pos, j, shas.length > 0 ? shas : null];
}

export interface MemberRowStats {
  /** Keys loaded in part (named members, list ends) and whole. */
  partialLoads: number;
  wholeLoads: number;
  membersLoaded: number;
  rowsUpserted: number;
  rowsDeleted: number;
  rowsCopied: number;
  loadMs: number;
  writeMs: number;
  /** Wall ms per kind of streaming statement (e.g. `zset upsert`), parameter encoding included: where a batch waits. */
  statementMs: Record<string, number>;
}

/** Changed rows of one table in one transaction: written by one DELETE and one upsert. */
class Staged {
  readonly up: CopyValue[][] = [];
  readonly del: Array<[number, Buffer, Buffer | number]> = [];
}

export class MemberRows {
  readonly stats: MemberRowStats = {
    partialLoads: 0,
    wholeLoads: 0,
    membersLoaded: 0,
    rowsUpserted: 0,
    rowsDeleted: 0,
    rowsCopied: 0,
    loadMs: 0,
    writeMs: 0,
    statementMs: {},
  };

  /** Adds the wall time since `t0` to `statementMs[label]` (the applier's own steps are listed there too). */
  note(label: string, t0: number): void {
    const m = this.stats.statementMs;
    m[label] = (m[label] ?? 0) + performance.now() - t0;
  }

  /** Runs one statement, adding its wall time to `statementMs[label]`. */
  private async timed<T>(label: string, run: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await run();
    } finally {
      this.note(label, t0);
    }
  }

  constructor(
    private readonly s: string,
    /** Collections of this many members or more are stored in rows; back inline below half of it (hysteresis). */
    readonly threshold: number,
    private readonly blobs: BlobTransaction,
  ) {}

  private t(type: RowType): string {
    return `${this.s}.${MEMBER_TABLE[type]}`;
  }

  /** Whether the flush of a dirty entry goes through here (row-stored now, or a collection big enough to be). */
  involves(e: KeyEntry): boolean {
    return e.rows != null || collectionSize(e.value) >= this.threshold;
  }

  // ---- loading ----

  /** Gives a row-stored entry the value its events need: the named members (partial) or the whole collection. */
  async prepare(client: PoolClient, e: KeyEntry, need: MemberNeed): Promise<void> {
    const t0 = performance.now();
    try {
      await this.prepareEntry(client, e, need);
    } finally {
      this.stats.loadMs += performance.now() - t0;
    }
  }

  private async prepareEntry(client: PoolClient, e: KeyEntry, need: MemberNeed): Promise<void> {
    const r = e.rows;
    if (!r) return;
    if (need.whole) {
      this.stats.wholeLoads++;
      if (r.type === 'list') {
        // Index ops (LSET, LINSERT, LREM, LTRIM) move elements: the list is rewritten with new positions.
        e.value = await this.loadWhole(client, e.db, e.key, r.type);
        r.partial = null;
      } else {
        // Every member, in a partial value that knows them all: ops may iterate it, and only the members they
        // change are written back (ZPOPMIN on a million members writes one row).
        e.value = await this.loadMembers(client, e, r, need, true);
        r.partial = e.value;
      }
      return;
    }
    this.stats.partialLoads++;
    e.value =
      r.type === 'list'
        ? await this.loadEnds(client, e, r, need)
        : await this.loadMembers(client, e, r, need);
    r.partial = e.value;
  }

  private async loadMembers(
    client: PoolClient,
    e: KeyEntry,
    r: RowState,
    need: MemberNeed,
    all = false,
  ): Promise<RedisValue> {
    const t = new MemberTracker(r.size, all);
    const wanted = [...need.members];
    for (const m of wanted) t.known.add(m);
    const cols =
      r.type === 'hash'
        ? 'field_j AS m, value AS x, expire_ms AS t'
        : r.type === 'zset'
          ? 'member_j AS m, score AS x'
          : 'member_j AS m';
    const rows = all
      ? (
          await client.query<{ m: unknown; x: unknown; t: string | null; blobs: string[] | null }>(
            `SELECT ${cols}, blobs FROM ${this.t(r.type)} WHERE db = $1 AND key = $2`,
            [e.db, e.key],
          )
        ).rows
      : wanted.length === 0
        ? []
        : (
            await this.timed(`${r.type} members`, () =>
              client.query<{ m: unknown; x: unknown; t: string | null; blobs: string[] | null }>(
                // Joined from unnest, not `h = ANY(...)`: one primary-key probe per member whatever the statistics
                // say (right after a COPY, without ANALYZE, Postgres may plan `ANY` as a scan of the whole collection).
                `SELECT ${cols}, blobs FROM unnest($3::bytea[]) AS u(h)
                 JOIN ${this.t(r.type)} t ON t.db = $1 AND t.key = $2 AND t.h = u.h`,
                [e.db, e.key, wanted.map(memberId)],
              ),
            )
          ).rows;
    this.stats.membersLoaded += rows.length;
    const note = (m: Bytes, blobs: string[] | null) => {
      if (blobs) r.blobs.set(m, blobs);
    };
    if (r.type === 'hash') {
      const v = new PartialMap<Bytes>(t);
      const ttl = new PartialMap<number>(t, false);
      for (const row of rows) {
        const m = decodeToLatin1(row.m);
        v.load(m, decodeToLatin1(row.x));
        if (row.t !== null) ttl.load(m, Number(row.t));
        note(m, row.blobs);
      }
      return { type: 'hash', v, ttl };
    }
    if (r.type === 'zset') {
      const v = new PartialMap<number>(t);
      for (const row of rows) {
        const m = decodeToLatin1(row.m);
        v.load(m, Number(row.x));
        note(m, row.blobs);
      }
      return { type: 'zset', v };
    }
    const v = new PartialSet(t);
    for (const row of rows) {
      const m = decodeToLatin1(row.m);
      v.load(m);
      note(m, row.blobs);
    }
    return { type: 'set', v };
  }

  /** A list's first `need.left` and last `need.right` elements (positions are consecutive, see PartialList). */
  private async loadEnds(
    client: PoolClient,
    e: KeyEntry,
    r: RowState,
    need: MemberNeed,
  ): Promise<RedisValue> {
    const t = this.t('list');
    const { rows: b } = await this.timed('list head', () =>
      client.query<{ head: string | null }>(`SELECT min(pos) AS head FROM ${t} WHERE db = $1 AND key = $2`, [
        e.db,
        e.key,
      ]),
    );
    const head = Number(b[0]?.head ?? 0);
    const left = Math.min(need.left, r.size);
    const right = Math.min(need.right, r.size - left);
    const read = async (order: string, n: number) => {
      if (n === 0) return [];
      const { rows } = await this.timed(`list ends ${order}`, () =>
        client.query<{ pos: string; value: unknown; blobs: string[] | null }>(
          `SELECT pos, value, blobs FROM ${t} WHERE db = $1 AND key = $2 ORDER BY pos ${order} LIMIT $3`,
          [e.db, e.key, n],
        ),
      );
      return rows.map((row) => {
        if (row.blobs) r.blobs.set(Number(row.pos), row.blobs);
        return decodeToLatin1(row.value);
      });
    };
    const headItems = await read('ASC', left);
    const tailItems = (await read('DESC', right)).reverse();
    this.stats.membersLoaded += left + right;
    return {
      type: 'list',
      v: new PartialList(head, r.size - left - right, headItems, tailItems) as unknown as Bytes[],
    };
  }

  /** The whole collection as an ordinary model value (O(size)). */
  async loadWhole(client: PoolClient, db: number, key: Buffer, type: RowType): Promise<RedisValue> {
    const where = `WHERE db = $1 AND key = $2`;
    const p = [db, key];
    switch (type) {
      case 'hash': {
        const { rows } = await client.query<[unknown, unknown, string | null]>({
          text: `SELECT field_j, value, expire_ms FROM ${this.t(type)} ${where}`,
          values: p,
          rowMode: 'array',
        });
        const v = new Map<Bytes, Bytes>();
        const ttl = new Map<Bytes, number>();
        for (const [f, x, ms] of rows) {
          const m = decodeToLatin1(f);
          v.set(m, decodeToLatin1(x));
          if (ms !== null) ttl.set(m, Number(ms));
        }
        return { type, v, ttl };
      }
      case 'set': {
        const { rows } = await client.query<[unknown]>({
          text: `SELECT member_j FROM ${this.t(type)} ${where}`,
          values: p,
          rowMode: 'array',
        });
        return { type, v: new Set(rows.map((row) => decodeToLatin1(row[0]))) };
      }
      case 'zset': {
        const { rows } = await client.query<[unknown, number]>({
          text: `SELECT member_j, score FROM ${this.t(type)} ${where}`,
          values: p,
          rowMode: 'array',
        });
        return { type, v: new Map(rows.map(([m, sc]) => [decodeToLatin1(m), Number(sc)])) };
      }
      case 'list': {
        const { rows } = await client.query<[unknown]>({
          text: `SELECT value FROM ${this.t(type)} ${where} ORDER BY pos`,
          values: p,
          rowMode: 'array',
        });
        return { type, v: rows.map((row) => decodeToLatin1(row[0])) };
      }
    }
  }

  // ---- writing ----

  /**
   * Writes the member rows of the dirty entries that are or become row-stored and sets each one's `memberRows` (the
   * `keys` row's member_rows: the size, or null for a value stored inline again). A partial value writes its changed
   * rows; a replaced or wholly loaded one deletes the old rows and copies the new value's (O(size)). A row-stored
   * collection that shrank below half the threshold goes back inline; one that grows to the threshold goes to rows.
   */
  async write(client: PoolClient, entries: KeyEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const t0 = performance.now();
    try {
      await this.writeEntries(client, entries);
    } finally {
      this.stats.writeMs += performance.now() - t0;
    }
  }

  private async writeEntries(client: PoolClient, entries: KeyEntry[]): Promise<void> {
    const staged = new Map<RowType, Staged>();
    const stage = (t: RowType) => {
      let x = staged.get(t);
      if (!x) {
        x = new Staged();
        staged.set(t, x);
      }
      return x;
    };
    const shrink: Array<[KeyEntry, RowType]> = [];
    const rewrite: KeyEntry[] = [];
    for (const e of entries) {
      const r = e.rows;
      if (r && e.value !== null && e.value === r.partial) {
        this.stageChanges(e, e.value, r, stage(r.type));
        e.memberRows = collectionSize(e.value);
        if (e.memberRows < this.threshold / 2) shrink.push([e, r.type]);
      } else rewrite.push(e);
    }
    for (const [type, x] of staged) await this.runStaged(client, type, x);
    for (const [e, type] of shrink) {
      // Small again: the rest of it is read (fewer than threshold / 2 rows) and stored inline.
      e.value = await this.loadWhole(client, e.db, e.key, type);
      rewrite.push(e);
    }
    for (const e of rewrite) {
      const r = e.rows;
      if (r) await this.deleteAll(client, e.db, e.key, r.type);
      const n = collectionSize(e.value);
      // Hysteresis: a value that was in rows stays there down to half the threshold.
      const big =
        n >= this.threshold || (r != null && n >= this.threshold / 2 && !shrink.some((x) => x[0] === e));
      if (big && e.value) {
        await this.copyAll(client, e.db, e.key, e.value);
        e.memberRows = n;
      } else e.memberRows = null;
    }
  }

  private stageChanges(e: KeyEntry, v: RedisValue, r: RowState, x: Staged): void {
    if (v.type === 'list') {
      const list = v.v as unknown as PartialList;
      for (const [pos, el] of list.changed) {
        this.blobs.drop(r.blobs.get(pos));
        if (el === null) x.del.push([e.db, e.key, pos]);
        else x.up.push(listRow(e.db, e.key, pos, el));
      }
      return;
    }
    const t = (v.v as PartialMap<unknown> | PartialSet).t;
    for (const m of t.dirty) {
      this.blobs.drop(r.blobs.get(m));
      const row = memberRow(e.db, e.key, m, v);
      if (row === null) x.del.push([e.db, e.key, memberId(m)]);
      else {
        const shas = row[row.length - 1];
        if (Array.isArray(shas)) this.blobs.need(shas as string[]);
        x.up.push(row);
      }
    }
  }

  private async runStaged(client: PoolClient, type: RowType, x: Staged): Promise<void> {
    const t = this.t(type);
    const idCol = type === 'list' ? 'pos' : 'h';
    if (x.del.length > 0) {
      const { rowCount } = await this.timed(`${type} delete`, () =>
        client.query(
          `DELETE FROM ${t} m USING unnest($1::int[], $2::bytea[], $3::${type === 'list' ? 'bigint[]' : 'bytea[]'}) AS u(d, k, i)
           WHERE m.db = u.d AND m.key = u.k AND m.${idCol} = u.i`,
          [x.del.map((d) => d[0]), x.del.map((d) => d[1]), x.del.map((d) => d[2])],
        ),
      );
      this.stats.rowsDeleted += rowCount ?? 0;
    }
    if (x.up.length === 0) return;
    const { names, types } = COLUMNS[type];
    const last = names.length - 1;
    const params = names.map((_, i) =>
      i === last
        ? x.up.map((row) => (Array.isArray(row[i]) ? (row[i] as string[]).join(',') : null))
        : x.up.map((row) => row[i]),
    );
    const select = names
      .map((_, i) =>
        i === last ? `string_to_array(c${i}, ',')` : types[i] === 'jsonb' ? `c${i}::jsonb` : `c${i}`,
      )
      .join(', ');
    const unnest = names
      .map((_, i) => `$${i + 1}::${i === last ? 'text[]' : ARRAY_TYPE[types[i] ?? 'text']}`)
      .join(', ');
    const alias = names.map((_, i) => `c${i}`).join(', ');
    const set = names
      .slice(3)
      .map((n) => `${n} = EXCLUDED.${n}`)
      .join(', ');
    await this.timed(`${type} upsert`, () =>
      client.query(
        `INSERT INTO ${t} (${names.join(', ')}) SELECT ${select} FROM unnest(${unnest}) AS u(${alias})
         ON CONFLICT (db, key, ${idCol}) DO UPDATE SET ${set}`,
        params,
      ),
    );
    this.stats.rowsUpserted += x.up.length;
  }

  /** Deletes every member row of a key, dropping the blobs they referenced (they may have lost their last reference). */
  async deleteAll(client: PoolClient, db: number, key: Buffer, type: RowType): Promise<void> {
    const { rows } = await client.query<{ sha: string }>(
      `WITH d AS (DELETE FROM ${this.t(type)} WHERE db = $1 AND key = $2 RETURNING blobs)
       SELECT DISTINCT x AS sha FROM d, unnest(d.blobs) AS x WHERE d.blobs IS NOT NULL`,
      [db, key],
    );
    this.blobs.drop(rows.map((r) => r.sha));
  }

  /** Deletes the rows a key may have in any member table (a snapshot key replacing an older generation's). */
  async deleteAnyType(client: PoolClient, db: number, key: Buffer): Promise<void> {
    for (const t of ['hash', 'set', 'zset', 'list'] as RowType[]) await this.deleteAll(client, db, key, t);
  }

  /** Copies a full collection value into its member table with one binary COPY. */
  async copyAll(client: PoolClient, db: number, key: Buffer, v: RedisValue): Promise<void> {
    if (!isRowType(v.type)) return;
    const type = v.type;
    const blobs = this.blobs;
    function* rows(): Generator<CopyValue[]> {
      if (v.type === 'list') {
        let pos = 0;
        for (const x of v.v) {
          const row = listRow(db, key, pos++, x);
          if (row[4]) blobs.need(row[4] as string[]);
          yield row;
        }
        return;
      }
      const members = v.type === 'set' ? v.v : (v as Extract<RedisValue, { type: 'hash' | 'zset' }>).v.keys();
      for (const m of members) {
        const row = memberRow(db, key, m, v);
        if (row === null) continue;
        const shas = row[row.length - 1];
        if (Array.isArray(shas)) blobs.need(shas as string[]);
        yield row;
      }
    }
    const { names, types } = COLUMNS[type];
    this.stats.rowsCopied += await copyBinary(client, this.t(type), names, types, rows());
  }

  /**
   * Copies a snapshot collection's members into its table straight from the event's Buffers (no model value, no
   * latin1 copies): the path of a big collection in the initial load.
   */
  async copySnapshot(
    client: PoolClient,
    db: number,
    key: Buffer,
    type: RowType,
    value: unknown,
    fieldExpireAt: Array<[Buffer, number]> | undefined,
    /** Position of a list's first element here (a later part continues after the earlier ones). */
    firstPos = 0,
  ): Promise<void> {
    const blobs = this.blobs;
    const { names, types } = COLUMNS[type];
    this.stats.rowsCopied += await copyBinary(
      client,
      this.t(type),
      names,
      types,
      snapshotRows(db, key, type, value, fieldExpireAt, firstPos, (shas) => blobs.need(shas)),
    );
  }

  // ---- keyspace-wide ops ----

  async flushDb(client: PoolClient, db: number | null): Promise<void> {
    for (const t of MEMBER_TABLES)
      if (db === null) await client.query(`DELETE FROM ${this.s}.${t}`);
      else await client.query(`DELETE FROM ${this.s}.${t} WHERE db = $1`, [db]);
  }

  async swapDb(client: PoolClient, a: number, b: number): Promise<void> {
    for (const t of MEMBER_TABLES) {
      const q = `${this.s}.${t}`;
      await client.query(`UPDATE ${q} SET db = -1 WHERE db = $1`, [a]);
      await client.query(`UPDATE ${q} SET db = $1 WHERE db = $2`, [a, b]);
      await client.query(`UPDATE ${q} SET db = $1 WHERE db = -1`, [b]);
    }
  }

  /**
   * Member rows whose key is gone or no longer row-stored as that type (the end of a full resync). Then ANALYZE: the
   * load copied up to millions of rows that autovacuum has not sampled yet, and the streaming statements that follow
   * should be planned with their statistics.
   */
  async deleteOrphans(client: PoolClient): Promise<void> {
    for (const [type, t] of Object.entries(MEMBER_TABLE)) {
      await client.query(
        `DELETE FROM ${this.s}.${t} m WHERE NOT EXISTS (SELECT 1 FROM ${this.s}.keys k
           WHERE k.db = m.db AND k.key = m.key AND k.member_rows IS NOT NULL AND k.type = '${type}')`,
      );
      await client.query(`ANALYZE ${this.s}.${t}`);
    }
  }
}

/** The encoding of a byte string and the blob it references (a huge one), without a collector per row. */
function encoded(b: Buffer, shas: string[]): string {
  if (isHuge(b)) shas.push(blobRefOf(b).sha256);
  return JSON.stringify(encodeBytes(b));
}

/** The row id of a member given as a Buffer: the same as memberId of its model form. */
function memberIdOfBuffer(b: Buffer): Buffer {
  if (isHuge(b)) return Buffer.concat([ONE, Buffer.from(blobRefOf(b).sha256, 'hex')]);
  if (b.length < SHORT_ID) return Buffer.concat([ZERO, b]);
  return Buffer.concat([ONE, createHash('sha256').update(b).digest()]);
}

/** Member rows of a snapshot value (the RDB decoder's form: Buffers, [field, value] and [member, score] pairs). */
function* snapshotRows(
  db: number,
  key: Buffer,
  type: RowType,
  value: unknown,
  fieldExpireAt: Array<[Buffer, number]> | undefined,
  firstPos: number,
  need: (shas: string[]) => void,
): Generator<CopyValue[]> {
  const ttl = new Map<string, number>();
  for (const [f, ms] of fieldExpireAt ?? []) ttl.set(f.toString('latin1'), ms);
  let pos = firstPos;
  for (const item of value as unknown[]) {
    const shas: string[] = [];
    let row: CopyValue[];
    if (type === 'list') row = [db, key, pos++, encoded(item as Buffer, shas)];
    else {
      const m = type === 'set' ? (item as Buffer) : (item as [Buffer, unknown])[0];
      const head = [db, key, memberIdOfBuffer(m), isHuge(m) ? null : m, encoded(m, shas)];
      if (type === 'set') row = head;
      else if (type === 'zset')
        row = [...head, scoreFromJson(scoreToJson(scoreFromJson((item as [Buffer, unknown])[1])))];
      else {
        const [f, x] = item as [Buffer, Buffer];
        row = [...head, encoded(x, shas), ttl.size > 0 ? (ttl.get(f.toString('latin1')) ?? null) : null];
      }
    }
    if (shas.length > 0) need(shas);
    row.push(shas.length > 0 ? shas : null);
    yield row;
  }
}
