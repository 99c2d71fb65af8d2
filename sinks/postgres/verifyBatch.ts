import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { CopiedRow } from './copyOut.js';
import { mirrorValueSql } from './migrations.js';
import { type BlobRef, blobFromJson, blobRefOf, isHuge, placeholder } from './model/blobRef.js';
import { decodeToBuffer, encodeBytes } from './model/encoding.js';
import { type Command, latin1, type Reply, ReplyError, type RespPipe } from './RespPipe.js';
import {
  type ComparableKey,
  cmpBuf,
  comparableFromRow,
  difference,
  FIELDS_PER_HPEXPIRETIME,
  type KeyDifference,
  type MirrorRow,
  mirrorFields,
  type ReadOptions,
  readRedisKeyAt,
  sameJson,
  zsetInMirrorOrder,
} from './verifyKey.js';

/*
 * The batched path of `redtail verify`: a batch of keys (from the mirror's COPY, or from SCAN) with their mirror rows
 * is read from the master with one pipelined write (in one MULTI/EXEC when a key takes two reads) whose reads are
 * chosen by the mirror's type of each key (MGET for all strings, LRANGE/SMEMBERS/ZRANGE/HGETALL per collection,
 * PEXPIRETIME per key where the db has TTLs), so a correct mirror costs about one Redis command per key and no TYPE: a key of another type on the master answers WRONGTYPE, which is a difference.
 * Keys the batch cannot settle (no mirror row, streams, hashes with field TTLs, a type mismatch) are read on their
 * own, atomically, by readRedisKeyAt; collections above BIG_MEMBERS are compared in chunks (compareBig).
 */

/** Members above which a collection is compared chunk by chunk instead of in one reply. */
export const BIG_MEMBERS = 5_000;
/** Members per chunk read of a big collection (LRANGE/ZRANGE ranges, HSCAN/SSCAN COUNT). */
export const CHUNK_MEMBERS = 5_000;

export interface BatchContext {
  pipe: RespPipe;
  /** For the one-key atomic reads; must have `db` selected, as must `pipe`. */
  redis: Redis;
  /** Batches run on several connections at once. */
  pg: pg.Pool | pg.Client;
  /** Quoted schema name. */
  schema: string;
  db: number;
  read: ReadOptions;
  /**
   * Whether the db has keys with a TTL (`INFO keyspace` expires > 0), shared by its batches: while false, batches
   * read no PEXPIRETIME and check the count in their MULTI instead (a batch that finds one is read again with them).
   */
  volatile: { value: boolean };
  /**
   * Called after the master's reads and before the mirror's rows they are judged against are read again: the re-read
   * rounds wait there for the mirror to catch up with the master, so a key written between the two reads converges.
   * Without it the rows read first (to choose the reads) are the ones judged.
   */
  settle?: () => Promise<void>;
  /**
   * Blobs whose chunks do not hash to their name (verify.ts checkBlobs): SHA-256 → what the chunks really hold. A
   * mirror row referencing one is compared as holding those bytes, so a tampered chunk shows as a difference.
   */
  badBlobs?: Map<string, BlobRef>;
}

/** Bytes per GETRANGE when a huge string is hashed on the master (four per round trip). */
const GETRANGE_BYTES = 8 << 20;

export interface BatchResult {
  differences: KeyDifference[];
}

/**
 * The live mirror rows of `keys` in one query, by key (latin1). The keys are joined from `unnest` so the plan is one
 * primary-key lookup per key whatever the table's statistics say (with `key = ANY(...)` and no ANALYZE since the
 * snapshot load, Postgres 15 chose a scan of every row of the db per batch); rows come back with the key's position
 * in the batch instead of the key, which spares decoding a hex bytea per row.
 */
export async function mirrorBatch(c: BatchContext, keys: Buffer[]): Promise<Array<MirrorRow | undefined>> {
  const { rows } = await c.pg.query<[number, string, unknown, string | null, unknown]>({
    text: `SELECT u.i::int, k.type, ${mirrorValueSql(c.schema, 'k.')}
     FROM unnest($2::bytea[]) WITH ORDINALITY AS u(key, i)
     JOIN ${c.schema}.keys k ON k.db = $1 AND k.key = u.key
     WHERE k.expire_at IS NULL OR k.expire_at > now()`,
    values: [c.db, keys],
    rowMode: 'array',
  });
  const out = new Array<MirrorRow | undefined>(keys.length);
  for (const r of rows) out[r[0] - 1] = { type: r[1], value: r[2], expire_ms: r[3], field_expire_at: r[4] };
  return patchBadBlobs(c, out);
}

/** Rows referencing a bad blob (BatchContext.badBlobs) with the reference replaced by what the chunks hold. */
function patchBadBlobs(c: BatchContext, rows: Array<MirrorRow | undefined>): Array<MirrorRow | undefined> {
  const bad = c.badBlobs;
  if (!bad || bad.size === 0) return rows;
  const replace = (v: unknown): unknown => {
    const r = blobFromJson(v);
    if (r) {
      const real = bad.get(r.sha256);
      return real ? { blob: real } : v;
    }
    if (Array.isArray(v)) return v.map(replace);
    if (v !== null && typeof v === 'object')
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, replace(x)]));
    return v;
  };
  return rows.map((row) => {
    if (!row) return row;
    const text = JSON.stringify(row.value);
    if (![...bad.keys()].some((sha) => text.includes(sha))) return row;
    return {
      type: row.type,
      value: replace(row.value),
      expire_ms: row.expire_ms,
      field_expire_at: row.field_expire_at,
    };
  });
}

/** The reference of a string row stored as a blob, or null (most rows are settled by their bytes, unparsed). */
function hugeString(row: MirrorRow): BlobRef | null {
  if (row.type !== 'string' || row.stringBytes !== undefined || row.stringBase64 !== undefined) return null;
  return blobFromJson(row.value);
}

/**
 * Whether a string the mirror holds as a blob differs on the master: type, expiry and length in one MULTI, then the
 * value read with GETRANGE in pieces and hashed incrementally, never whole in memory. Not one atomic read: a
 * difference is read again (verify.ts), atomically.
 */
async function hugeStringDiffers(
  c: BatchContext,
  key: Buffer,
  row: MirrorRow,
  ref: BlobRef,
): Promise<boolean> {
  const now = Date.now();
  const head = await c.pipe.send([['MULTI'], ['TYPE', key], ttlCommand(c, key), ['STRLEN', key], ['EXEC']]);
  const exec = head[head.length - 1];
  if (!Array.isArray(exec) || exec[0] !== 'string') return true;
  const expireAt = expiryOf(c, exec[1] ?? null, now);
  const mirrorExpire = row.expire_ms === null ? null : Number(row.expire_ms);
  if (expireAt !== mirrorExpire || exec[2] !== ref.bytes) return true;
  const h = createHash('sha256');
  for (let at = 0; at < ref.bytes; at += GETRANGE_BYTES * 4) {
    const cmds: Command[] = [];
    for (let from = at; from < Math.min(ref.bytes, at + GETRANGE_BYTES * 4); from += GETRANGE_BYTES)
      cmds.push(['GETRANGE', key, String(from), String(Math.min(ref.bytes, from + GETRANGE_BYTES) - 1)]);
    for (const r of await c.pipe.send(cmds)) {
      if (!Buffer.isBuffer(r)) return true;
      h.update(r);
    }
  }
  return h.digest('hex') !== ref.sha256;
}

const hasFieldTtls = (row: MirrorRow) =>
  Array.isArray(row.field_expire_at) && (row.field_expire_at as unknown[]).length > 0;

function isBig(row: MirrorRow): boolean {
  // Every member takes at least 4 bytes of JSON text ('""' and ', '): a short text is not big, and is not parsed.
  if (row instanceof CopiedRow && row.jsonField.length <= 4 * BIG_MEMBERS) return false;
  return row.type !== 'string' && Array.isArray(row.value) && (row.value as unknown[]).length > BIG_MEMBERS;
}

function ttlCommand(c: BatchContext, key: Buffer): Command {
  return c.read.pexpiretime === false ? ['PTTL', key] : ['PEXPIRETIME', key];
}

/** The absolute expiry from a PEXPIRETIME (or PTTL, read at `now`) reply; undefined when the key does not exist. */
function expiryOf(c: BatchContext, r: Reply, now: number): number | null | undefined {
  const n = Number(r);
  if (n === -2) return undefined;
  if (n < 0) return null;
  return c.read.pexpiretime === false ? now + n : n;
}

function readCommand(type: string, key: Buffer): Command | null {
  switch (type) {
    case 'list':
      return ['LRANGE', key, '0', '-1'];
    case 'set':
      return ['SMEMBERS', key];
    case 'zset':
      return ['ZRANGE', key, '0', '-1', 'WITHSCORES'];
    case 'hash':
      return ['HGETALL', key];
    default:
      return null;
  }
}

/** The master's value of a list/set/zset/hash reply in the mirror's encoding (verifyKey's readRedisKeyAt). */
function replyValue(type: string, r: Buffer[]): unknown {
  switch (type) {
    case 'list':
      return r.map(encodeBytes);
    case 'set':
      return [...r].sort(cmpBuf).map(encodeBytes);
    case 'zset': {
      const pairs: Array<[Buffer, string]> = [];
      for (let i = 0; i + 1 < r.length; i += 2) pairs.push([r[i] as Buffer, latin1(r[i + 1] as Buffer)]);
      return zsetInMirrorOrder(pairs);
    }
    default: {
      const pairs: Array<[Buffer, Buffer]> = [];
      for (let i = 0; i + 1 < r.length; i += 2) pairs.push([r[i] as Buffer, r[i + 1] as Buffer]);
      return pairs.sort((x, y) => cmpBuf(x[0], y[0])).map(([f, v]) => [encodeBytes(f), encodeBytes(v)]);
    }
  }
}

function sameBytes(mirror: unknown, b: Buffer): boolean {
  const e = encodeBytes(b);
  if (typeof e === 'string') return e === mirror;
  return sameJson(e, mirror);
}

/** Whether a string row holds `v`, from the bytes or base64 text the COPY kept when it can (CopiedRow). */
function sameString(row: MirrorRow, v: Buffer): boolean {
  if (row.stringBytes) return row.stringBytes.equals(v);
  // The mirror keeps base64 exactly for values that are not UTF-8 or hold NUL (encodeBytes).
  if (row.stringBase64 !== undefined)
    return (v.includes(0) || !isUtf8(v)) && v.toString('base64') === row.stringBase64;
  return sameBytes(row.value, v);
}

/** A key of the batch whose reads went into the MULTI. */
interface Planned {
  /** Position in the batch. */
  i: number;
  key: Buffer;
  row: MirrorRow;
  /** Index in EXEC's reply of its PEXPIRETIME, or -1 when the db had no key with a TTL (BatchContext.volatile). */
  ttlAt: number;
  /** Index of its value read (collections); HPEXPIRETIMEs follow it for hashes. */
  readAt: number;
  /** For strings: index in the MGET reply. */
  mget: number;
  ttlCommands: number;
}

/** A key as read on its own (readRedisKeyAt), with the master's clock at the read. */
type KeyRead = Awaited<ReturnType<typeof readRedisKeyAt>>;

/** How a batch is read from the master: its pipelined commands, and the keys the pipeline cannot settle. */
interface BatchPlan {
  /** The reads, between MULTI and EXEC when `atomic`. */
  inner: Command[];
  atomic: boolean;
  /** Whether the keys' PEXPIRETIMEs are read (BatchContext.volatile at the start of the batch). */
  withTtl: boolean;
  planned: Planned[];
  // Positions in `keys` of the keys read on their own, of the big collections, and of strings stored as blobs.
  alone: number[];
  big: number[];
  huge: Array<[number, BlobRef]>;
  /** The string keys, read by one MGET. */
  strings: Buffer[];
}

/** Index in the reads' replies (EXEC's array has no entry for MULTI) of the command pushed last. */
const lastAt = (plan: BatchPlan): number => plan.inner.length - (plan.atomic ? 2 : 1);

/** Chooses each key's reads by its mirror row's type, or sets the key aside for a read of its own. */
function planBatch(c: BatchContext, keys: Buffer[], rows: Array<MirrorRow | undefined>): BatchPlan {
  // Without keys with a TTL in the db, no PEXPIRETIME: INFO keyspace after the reads proves there were none.
  const withTtl = c.volatile.value;
  // A key read by more than one command (PEXPIRETIME or HPEXPIRETIME beside its value) needs them in one MULTI, so
  // both see the same version of the key. Otherwise every key is read by one command, atomic for that key, and the
  // batch's reads are only pipelined: MULTI cost the master a queued copy and a +QUEUED reply per command. INFO
  // keyspace then comes after the reads: a key that had a TTL at its read but none at the INFO was written during
  // verify (compared as it was read, like any key written after its read); a TTL still there shows, and the batch
  // is read again with PEXPIRETIME.
  const atomic = withTtl || c.read.fieldTtl === true;
  const inner: Command[] = atomic ? [['MULTI']] : [];
  const plan: BatchPlan = { inner, atomic, withTtl, planned: [], alone: [], big: [], huge: [], strings: [] };
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as Buffer;
    const row = rows[i];
    if (
      !row ||
      (row.type === 'hash' && hasFieldTtls(row)) ||
      !(row.type === 'string' || readCommand(row.type, key))
    )
      plan.alone.push(i);
    else if (isBig(row)) plan.big.push(i);
    else if (hugeString(row)) plan.huge.push([i, hugeString(row)!]);
    else plan.planned.push(planKey(c, plan, i, key, row));
  }
  return plan;
}

/** Adds a key's reads to the pipeline: its PEXPIRETIME, its value (strings by the batch's MGET), field TTLs. */
function planKey(c: BatchContext, plan: BatchPlan, i: number, key: Buffer, row: MirrorRow): Planned {
  const p: Planned = { i, key, row, ttlAt: -1, readAt: -1, mget: -1, ttlCommands: 0 };
  if (plan.withTtl) {
    plan.inner.push(ttlCommand(c, key));
    p.ttlAt = lastAt(plan);
  }
  if (row.type === 'string') p.mget = plan.strings.push(key) - 1;
  else {
    plan.inner.push(readCommand(row.type, key) as Command);
    p.readAt = lastAt(plan);
  }
  if (row.type === 'hash' && c.read.fieldTtl) {
    const fields = mirrorFields(row) ?? [];
    for (let j = 0; j < fields.length; j += FIELDS_PER_HPEXPIRETIME) {
      const chunk = fields.slice(j, j + FIELDS_PER_HPEXPIRETIME);
      plan.inner.push(['HPEXPIRETIME', key, 'FIELDS', String(chunk.length), ...chunk]);
      p.ttlCommands++;
    }
  }
  return p;
}

/** The replies of a batch's pipelined reads: the reads' (EXEC's when atomic) and MGET's. */
interface BatchReplies {
  exec: Reply[];
  mget: Reply[];
}

/**
 * Sends the planned reads with one pipelined write. Null when a key got a TTL since the last batch and the batch read
 * no PEXPIRETIME: it must be read again, with them from now on.
 */
async function sendPlan(c: BatchContext, plan: BatchPlan): Promise<BatchReplies | null> {
  const got: BatchReplies = { exec: [], mget: [] };
  if (plan.planned.length === 0) return got;
  const { inner, atomic } = plan;
  if (plan.strings.length > 0) inner.push(['MGET', ...plan.strings]);
  const mgetAt = lastAt(plan);
  inner.push(atomic ? ['EXEC'] : ['INFO', 'keyspace']);
  const replies = await c.pipe.send(inner);
  const last = replies[replies.length - 1];
  if (atomic && !Array.isArray(last))
    throw new Error(
      `the master refused the batched reads: ${last instanceof ReplyError ? last.message : String(last)}`,
    );
  got.exec = atomic ? (last as Reply[]) : replies;
  if (!plan.withTtl && volatileIn(last, c.db)) {
    c.volatile.value = true;
    return null;
  }
  if (plan.strings.length > 0) {
    const r = got.exec[mgetAt];
    if (!Array.isArray(r))
      throw new Error(`the master refused MGET: ${r instanceof ReplyError ? r.message : String(r)}`);
    got.mget = r;
  }
  return got;
}

/**
 * Starts the reads of the keys the pipeline did not settle, each on its own and atomic: the `alone` keys, and the big
 * collections and huge strings whose chunked comparison found a difference (added to `plan.alone`).
 */
async function readUnsettled(
  c: BatchContext,
  keys: Buffer[],
  rows: Array<MirrorRow | undefined>,
  plan: BatchPlan,
): Promise<Array<KeyRead | null>> {
  for (const i of plan.big)
    if (await bigDiffers(c, keys[i] as Buffer, rows[i] as MirrorRow)) plan.alone.push(i);
  for (const [i, ref] of plan.huge)
    if (await hugeStringDiffers(c, keys[i] as Buffer, rows[i] as MirrorRow, ref)) plan.alone.push(i);
  return Promise.all(
    plan.alone.map((i) =>
      readRedisKeyAt(c.redis, keys[i] as Buffer, { ...c.read, hashFields: mirrorFields(rows[i]) }),
    ),
  );
}

/** Adds the differences between the keys at `positions`, read on their own (`reads`), and their `judged` rows. */
function pushDifferences(
  c: BatchContext,
  keys: Buffer[],
  judged: Array<MirrorRow | undefined>,
  positions: number[],
  reads: Array<KeyRead | null | undefined>,
  differences: KeyDifference[],
): void {
  positions.forEach((i, n) => {
    const r = reads[n];
    if (!r) return;
    const row = judged[i];
    const d = difference(c.db, keys[i] as Buffer, r.key, row ? comparableFromRow(row, r.at) : null);
    if (d) differences.push(d);
  });
}

/**
 * Judges the planned keys by the pipeline's replies against their `judged` rows. A key whose mirror row changed type
 * meanwhile (or went) is read again on its own: the reads chosen for the old type tell nothing.
 */
async function judgePlanned(
  c: BatchContext,
  keys: Buffer[],
  judged: Array<MirrorRow | undefined>,
  plan: BatchPlan,
  got: BatchReplies,
  now: number,
): Promise<KeyDifference[]> {
  const differences: KeyDifference[] = [];
  const late: number[] = [];
  for (const p of plan.planned) {
    const row = judged[p.i];
    const verdict =
      row?.type === p.row.type
        ? judge(c, row === p.row ? p : { ...p, row }, got.exec, got.mget, now)
        : 'alone';
    if (verdict === 'alone') late.push(p.i);
    else if (verdict) differences.push(verdict);
  }
  // Read together, not one round trip after another (a mirror of a flushed master has only such keys).
  const lateRead = await Promise.all(
    late.map((i) =>
      readRedisKeyAt(c.redis, keys[i] as Buffer, { ...c.read, hashFields: mirrorFields(judged[i]) }),
    ),
  );
  pushDifferences(c, keys, judged, late, lateRead, differences);
  return differences;
}

/**
 * Compares a batch of distinct keys with the mirror: their rows as `given` (read by the caller, by position) or read
 * here. Differences found here are real at the moment of the
 * read (the MULTI is atomic) but may be lag of the mirror: verifyMirror compares them again after catching up.
 */
export async function compareBatch(
  c: BatchContext,
  keys: Buffer[],
  given?: Array<MirrorRow | undefined>,
): Promise<BatchResult> {
  const rows = given ? patchBadBlobs(c, given) : await mirrorBatch(c, keys);
  const plan = planBatch(c, keys, rows);
  const now = Date.now();
  const got = await sendPlan(c, plan);
  // A key got a TTL since the last batch: this one again, with PEXPIRETIME from now on (sendPlan set volatile).
  if (!got) return compareBatch(c, keys, rows);
  const read = await readUnsettled(c, keys, rows, plan);
  // The re-read rounds judge the reads against the rows read again once the mirror caught up (BatchContext.settle).
  let judged = rows;
  if (c.settle) {
    await c.settle();
    judged = await mirrorBatch(c, keys);
  }
  const differences = await judgePlanned(c, keys, judged, plan, got, now);
  pushDifferences(c, keys, judged, plan.alone, read, differences);
  return { differences };
}

/**
 * A key's expiry read without PEXPIRETIME, in a db that had no key with a TTL at the batch's EXEC: null, or undefined
 * when the key does not exist (a collection is never empty in Redis; an empty reply means no key). A string's nil
 * from MGET may also be a key of another type: judge sends it to the one-key read either way.
 */
function existence(p: Planned, exec: Reply[], mget: Reply[]): null | undefined {
  if (p.row.type === 'string') return Buffer.isBuffer(mget[p.mget]) ? null : undefined;
  const r = exec[p.readAt];
  return Array.isArray(r) && r.length === 0 ? undefined : null;
}

/** Whether `INFO keyspace` counts keys with a TTL ("expires=") in db `db`. */
export function volatileIn(info: Reply | undefined, db: number): boolean {
  // No INFO reply (a MULTI that lost it, an error) proves nothing: read TTLs as if the db had some.
  if (!Buffer.isBuffer(info) && typeof info !== 'string') return true;
  const text = Buffer.isBuffer(info) ? info.toString('latin1') : String(info);
  const m = new RegExp(`^db${db}:keys=\\d+,expires=(\\d+)`, 'm').exec(text);
  return m !== null && Number(m[1]) > 0;
}

/** One planned key: null when it agrees, its difference, or 'alone' when only a one-key read can tell. */
function judge(
  c: BatchContext,
  p: Planned,
  exec: Reply[],
  mget: Reply[],
  now: number,
): KeyDifference | 'alone' | null {
  const expireAt = p.ttlAt < 0 ? existence(p, exec, mget) : expiryOf(c, exec[p.ttlAt] ?? null, now);
  if (p.row.type === 'string') {
    const v = mget[p.mget];
    const mirrorExpire = p.row.expire_ms === null ? null : Number(p.row.expire_ms);
    // Most keys agree: settled without building either side's comparable form.
    if (expireAt === mirrorExpire && Buffer.isBuffer(v) && sameString(p.row, v)) return null;
    // MGET answers nil for a key of another type too: without PEXPIRETIME's -2, only the one-key read can tell.
    if (!Buffer.isBuffer(v) && p.ttlAt < 0) return 'alone';
    const mirror = comparableFromRow(p.row, now);
    if (expireAt === undefined) return difference(c.db, p.key, null, mirror);
    if (!Buffer.isBuffer(v)) return 'alone';
    return difference(c.db, p.key, { type: 'string', value: encodeBytes(v), expireAt }, mirror);
  }
  if (expireAt === undefined) return difference(c.db, p.key, null, comparableFromRow(p.row, now));
  const r = exec[p.readAt];
  if (!Array.isArray(r)) return 'alone'; // WRONGTYPE: the master's key has another type
  for (let i = 0; i < p.ttlCommands; i++) {
    const ttls = exec[p.readAt + 1 + i];
    // A field TTL the mirror lacks (or an error): the one-key read states the key with every field's TTL.
    if (!Array.isArray(ttls) || ttls.some((t) => typeof t !== 'number' || t >= 0)) return 'alone';
  }
  const mirrorExpire = p.row.expire_ms === null ? null : Number(p.row.expire_ms);
  // Most collections agree: settled on the JSON text, without parsing it or building the master's side.
  if (
    expireAt === mirrorExpire &&
    p.row instanceof CopiedRow &&
    sameText(p.row.type, p.row.jsonField, r as Buffer[])
  )
    return null;
  const value = replyValue(p.row.type, r as Buffer[]);
  // The mirror's row here has no field TTLs (hashes with some are read alone), so its value is what it shows.
  if (expireAt === mirrorExpire && sameJson(value, p.row.value)) return null;
  const mirror = comparableFromRow(p.row, now);
  const redis: ComparableKey = { type: p.row.type, value, expireAt };
  if (p.row.type === 'hash') redis.fieldExpireAt = [];
  const d = difference(c.db, p.key, redis, mirror);
  // The TTLs read were those of the mirror's fields: a field only the master has is stated, with its TTL, by the
  // one-key read, which asks for the master's own fields.
  if (d && p.row.type === 'hash' && c.read.fieldTtl) return 'alone';
  return d;
}

/**
 * Where the member `b` ends in `json` if the text at `pos` is `"b"` and `b` is printable ASCII without '"' or '\\'
 * (Postgres prints such a string verbatim between quotes, and the mirror keeps it as a JSON string); else -1.
 */
function quoted(json: Buffer, pos: number, b: Buffer): number {
  const end = pos + 1 + b.length;
  if (json[pos] !== 0x22 || json[end] !== 0x22 || json.compare(b, 0, b.length, pos + 1, end) !== 0) return -1;
  for (let i = 0; i < b.length; i++) {
    const x = b[i] as number;
    if (x < 0x20 || x > 0x7e || x === 0x22 || x === 0x5c) return -1;
  }
  return end + 1;
}

/** `json[pos]` is ', ' (between the elements of a jsonb array as Postgres prints it). */
const comma = (json: Buffer, pos: number) => json[pos] === 0x2c && json[pos + 1] === 0x20;

/**
 * Whether a list, set or hash row's JSON text (a jsonb field: version byte, text) is exactly what Postgres prints for
 * the master's reply in the mirror's order (sets and hash fields sorted by bytes) when every member is printable
 * ASCII. Most collections are so settled without parsing either side; false only means "not shown this way".
 */
export function sameText(type: string, json: Buffer, r: Buffer[]): boolean {
  if (json[1] !== 0x5b || (type !== 'list' && type !== 'set' && type !== 'hash')) return false;
  let pos = 2;
  if (type === 'hash') {
    const order: number[] = [];
    for (let i = 0; i + 1 < r.length; i += 2) order.push(i);
    order.sort((x, y) => cmpBuf(r[x] as Buffer, r[y] as Buffer));
    for (let n = 0; n < order.length; n++) {
      const i = order[n] as number;
      if (n > 0 && !comma(json, pos)) return false;
      if (n > 0) pos += 2;
      if (json[pos] !== 0x5b) return false;
      pos = quoted(json, pos + 1, r[i] as Buffer);
      if (pos < 0 || !comma(json, pos)) return false;
      pos = quoted(json, pos + 2, r[i + 1] as Buffer);
      if (pos < 0 || json[pos] !== 0x5d) return false;
      pos++;
    }
  } else {
    const members = type === 'set' ? [...r].sort(cmpBuf) : r;
    for (let n = 0; n < members.length; n++) {
      if (n > 0 && !comma(json, pos)) return false;
      if (n > 0) pos += 2;
      pos = quoted(json, pos, members[n] as Buffer);
      if (pos < 0) return false;
    }
  }
  return json[pos] === 0x5d && pos + 1 === json.length;
}

/**
 * Whether a big collection differs, read in chunks: size, type and expiry first (one MULTI), then LRANGE/ZRANGE
 * ranges compared in order, or HSCAN/SSCAN chunks looked up in an index of the mirror's members (SCAN may return a
 * member twice; each counts once). The chunks are not one atomic read, so a key written meanwhile can look
 * different: verifyMirror reads every difference again, and reports it from an atomic read.
 */
export async function bigDiffers(c: BatchContext, key: Buffer, row: MirrorRow): Promise<boolean> {
  const mirror = row.value as unknown[];
  const size = { list: 'LLEN', set: 'SCARD', zset: 'ZCARD', hash: 'HLEN' }[row.type];
  if (!size) return true;
  const now = Date.now();
  const head = await c.pipe.send([['MULTI'], ['TYPE', key], ttlCommand(c, key), [size, key], ['EXEC']]);
  const exec = head[head.length - 1];
  if (!Array.isArray(exec) || exec[0] !== row.type) return true;
  const expireAt = expiryOf(c, exec[1] ?? null, now);
  const mirrorExpire = row.expire_ms === null ? null : Number(row.expire_ms);
  if (expireAt !== mirrorExpire || exec[2] !== mirror.length) return true;
  if (row.type === 'list' || row.type === 'zset') return rangesDiffer(c, key, row.type, mirror);
  return scanDiffers(c, key, row.type, mirror);
}

async function rangesDiffer(c: BatchContext, key: Buffer, type: string, mirror: unknown[]): Promise<boolean> {
  // A few chunks per round trip: fewer waits, still a bounded reply.
  const perTrip = 4;
  for (let start = 0; start < mirror.length; start += CHUNK_MEMBERS * perTrip) {
    const cmds: Command[] = [];
    for (let i = 0; i < perTrip && start + i * CHUNK_MEMBERS < mirror.length; i++) {
      const from = start + i * CHUNK_MEMBERS;
      const to = String(from + CHUNK_MEMBERS - 1);
      cmds.push(
        type === 'list' ? ['LRANGE', key, String(from), to] : ['ZRANGE', key, String(from), to, 'WITHSCORES'],
      );
    }
    const replies = await c.pipe.send(cmds);
    for (let i = 0; i < replies.length; i++) {
      const r = replies[i];
      if (!Array.isArray(r)) return true;
      const from = start + i * CHUNK_MEMBERS;
      const got = replyValue(type, r as Buffer[]) as unknown[];
      const want = mirror.slice(from, from + CHUNK_MEMBERS);
      if (JSON.stringify(got) !== JSON.stringify(want)) return true;
    }
  }
  return false;
}

async function scanDiffers(c: BatchContext, key: Buffer, type: string, mirror: unknown[]): Promise<boolean> {
  const hash = type === 'hash';
  // The mirror's members by their bytes (latin1), to the index of their entry.
  const index = new Map<string, number>();
  mirror.forEach((m, i) => {
    index.set(memberId(hash ? (m as unknown[])[0] : m), i);
  });
  const seen = new Uint8Array(mirror.length);
  let found = 0;
  let cursor = '0';
  do {
    const cmds: Command[] = [[hash ? 'HSCAN' : 'SSCAN', key, cursor, 'COUNT', String(CHUNK_MEMBERS)]];
    const r = await c.pipe.call(...(cmds[0] as Command));
    if (!Array.isArray(r) || !Array.isArray(r[1])) return true;
    cursor = String(r[0]);
    const items = r[1] as Buffer[];
    const step = hash ? 2 : 1;
    const fields: Buffer[] = [];
    for (let i = 0; i < items.length; i += step) {
      const m = items[i] as Buffer;
      const at = index.get(isHuge(m) ? placeholder(blobRefOf(m)) : latin1(m));
      if (at === undefined) return true;
      if (seen[at]) continue;
      if (hash && !sameBytes((mirror[at] as unknown[])[1], items[i + 1] as Buffer)) return true;
      seen[at] = 1;
      found++;
      fields.push(m);
    }
    if (hash && c.read.fieldTtl && fields.length > 0 && (await anyFieldTtl(c, key, fields))) return true;
  } while (cursor !== '0');
  return found !== mirror.length;
}

/** A mirror member's identity in scanDiffers's index: its bytes as latin1, or a blob's placeholder (its SHA-256). */
function memberId(m: unknown): string {
  const r = blobFromJson(m);
  return r ? placeholder(r) : latin1(decodeToBuffer(m));
}

/** Whether any of `fields` has a TTL on the master (the mirror's big hashes reaching here have none). */
async function anyFieldTtl(c: BatchContext, key: Buffer, fields: Buffer[]): Promise<boolean> {
  const cmds: Command[] = [];
  for (let i = 0; i < fields.length; i += FIELDS_PER_HPEXPIRETIME) {
    const chunk = fields.slice(i, i + FIELDS_PER_HPEXPIRETIME);
    cmds.push(['HPEXPIRETIME', key, 'FIELDS', String(chunk.length), ...chunk]);
  }
  const replies = await c.pipe.send(cmds);
  return replies.some((r) => !Array.isArray(r) || r.some((t) => typeof t !== 'number' || t >= 0));
}
