import type { Redis } from 'ioredis';
import { blobFromJson, isHuge, mirrorBufferOrder } from './model/blobRef.js';
import { decodeToBuffer, encodeBytes } from './model/encoding.js';

/*
 * One key of `redtail verify`: the comparable form of a key on both sides (the master's reads, the mirror's row),
 * the atomic one-key read used for keys the batched path cannot settle, and the comparison.
 */

/**
 * One key as compared: type, value in the mirror's JSON encoding (streams summarized), absolute expiry, and for
 * hashes the absolute TTLs of the fields that have one (`[[field, ms], ...]` sorted by field bytes, as in
 * `field_expire_at`; always empty when the master has no hash field expiry). Hashes show only the fields whose TTL
 * has not passed at the master's read: the master's reads hide the others until it deletes them (docs/postgres.md).
 */
export interface ComparableKey {
  type: string;
  value: unknown;
  expireAt: number | null;
  fieldExpireAt?: Array<[unknown, number]>;
}

/** A field whose TTL differs between the master and the mirror (null: no TTL). */
export interface FieldTtlDifference {
  field: unknown;
  redis: number | null;
  mirror: number | null;
}

/**
 * The mirror's order of set members and hash fields: bytes, with huge ones (stored as blobs) after all others by
 * SHA-256 (model/blobRef.ts). The master's replies are put in this order before they are compared.
 */
export function cmpBuf(a: Buffer, b: Buffer): number {
  return mirrorBufferOrder(a, b);
}

function scoreNumber(s: number | string): number {
  if (typeof s === 'number') return s;
  return s.startsWith('-') ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
}

/**
 * A zset reply ([member, score text] in ZRANGE order) in the mirror's order: the same, except that members tied on
 * score with a huge member follow the mirror's order of ties (cmpBuf) instead of Redis's byte order.
 */
export function zsetInMirrorOrder(pairs: Array<[Buffer, string]>): unknown[] {
  const scored = pairs.map(([m, s]) => [m, score(s)] as [Buffer, number | string]);
  if (scored.some(([m]) => isHuge(m)))
    scored.sort((x, y) => scoreNumber(x[1]) - scoreNumber(y[1]) || cmpBuf(x[0], y[0]));
  return scored.map(([m, s]) => [encodeBytes(m), s]);
}

export function score(s: string): number | string {
  const n = Number(s);
  if (Number.isFinite(n)) return Object.is(n, -0) ? 0 : n;
  return s.startsWith('-') ? '-inf' : 'inf';
}

function kv(arr: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i + 1 < arr.length; i += 2) out[String(arr[i])] = arr[i + 1];
  return out;
}

/**
 * The parts of a stream both sides can state exactly: entries, length, last id, max deleted id, entries added, and
 * per group its last-delivered id, entries-read, pending ids with owner and delivery count, and consumers with their
 * pending ids. Times (delivery, seen, active) are left out: replicas apply them from propagated XCLAIMs but a
 * consumer's seen-time also moves on reads the master does not propagate.
 */
function streamSummary(s: {
  entries: unknown[];
  lastId: string;
  maxDeletedEntryId: string;
  entriesAdded: number | string;
  groups: Array<{
    name: unknown;
    lastId: string;
    entriesRead: unknown;
    pending: Array<{ id: string; consumer: unknown; deliveryCount: number }>;
    consumers: Array<{ name: unknown; pending: string[] }>;
  }>;
}): unknown {
  const key = (x: unknown) => JSON.stringify(x);
  return {
    entries: s.entries,
    length: s.entries.length,
    lastId: s.lastId,
    maxDeletedEntryId: s.maxDeletedEntryId,
    entriesAdded: Number(s.entriesAdded),
    groups: s.groups
      .map((g) => ({
        name: g.name,
        lastId: g.lastId,
        entriesRead: g.entriesRead === null || g.entriesRead === undefined ? null : Number(g.entriesRead),
        pending: g.pending.map((p) => [p.id, p.consumer, p.deliveryCount]),
        consumers: g.consumers
          .map((c) => ({ name: c.name, pending: [...c.pending] }))
          .sort((a, b) => (key(a.name) < key(b.name) ? -1 : 1)),
      }))
      .sort((a, b) => (key(a.name) < key(b.name) ? -1 : 1)),
  };
}

export interface MirrorRow {
  type: string;
  value: unknown;
  expire_ms: string | number | null;
  field_expire_at?: unknown;
  /**
   * For a string stored as a JSON string with no escape in it: its UTF-8 bytes, which equal the master's value
   * exactly when the key agrees (verify's batches compare them without parsing the JSON).
   */
  stringBytes?: Buffer;
  /** For a string stored as `{"base64": ...}`: the base64 text. */
  stringBase64?: string | undefined;
}

/** Equality of two JSON values (arrays, strings, numbers, objects such as {"base64": ...}), without stringifying. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object' || Array.isArray(b))
    return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka)
    if (!sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  return true;
}

/**
 * A `keys` row in the comparable form. Hash fields whose TTL is at or before `at` (ms; the master's clock when it
 * was read) are left out with their TTLs: the master's reads no longer show them, and they stay in the mirror only
 * until the master's `HDEL` for them arrives.
 */
export function comparableFromRow(row: MirrorRow, at: number = Date.now()): ComparableKey {
  const expireAt = row.expire_ms === null ? null : Number(row.expire_ms);
  if (row.type === 'stream')
    return {
      type: row.type,
      value: streamSummary(row.value as Parameters<typeof streamSummary>[0]),
      expireAt,
    };
  if (row.type !== 'hash') return { type: row.type, value: row.value, expireAt };
  const ttls = ((row.field_expire_at ?? []) as Array<[unknown, number | string]>).map(
    ([f, ms]) => [f, Number(ms)] as [unknown, number],
  );
  const passed = new Set(ttls.filter(([, ms]) => ms <= at).map(([f]) => JSON.stringify(f)));
  const value = (row.value as Array<[unknown, unknown]>).filter(([f]) => !passed.has(JSON.stringify(f)));
  return { type: row.type, value, expireAt, fieldExpireAt: ttls.filter(([, ms]) => ms > at) };
}

/** Fields present on both sides whose TTLs differ, in field order. */
export function fieldTtlDifferences(
  redis: ComparableKey | null,
  mirror: ComparableKey | null,
): FieldTtlDifference[] {
  if (redis?.type !== 'hash' || mirror?.type !== 'hash') return [];
  const r = new Map((redis.fieldExpireAt ?? []).map(([f, ms]) => [JSON.stringify(f), ms]));
  const m = new Map((mirror.fieldExpireAt ?? []).map(([f, ms]) => [JSON.stringify(f), ms]));
  const inMirror = new Set((mirror.value as Array<[unknown, unknown]>).map(([f]) => JSON.stringify(f)));
  const out: FieldTtlDifference[] = [];
  for (const [f] of redis.value as Array<[unknown, unknown]>) {
    const id = JSON.stringify(f);
    if (!inMirror.has(id)) continue;
    const a = r.get(id) ?? null;
    const b = m.get(id) ?? null;
    if (a !== b) out.push({ field: f, redis: a, mirror: b });
  }
  return out;
}

/**
 * Whether the master has hash field expiry (Redis 7.4+): it knows `HPEXPIRETIME`. Valkey 8.1 and Redis before 7.4
 * answer "unknown command"; any other error (WRONGTYPE if the probed name happens to hold another type) means it
 * does.
 */
export async function masterHasFieldTtl(redis: Redis): Promise<boolean> {
  try {
    await redis.call('hpexpiretime', 'redtail:verify:probe', 'FIELDS', '1', 'f');
    return true;
  } catch (err) {
    const msg = (err as Error).message;
    if (/unknown command/i.test(msg)) return false;
    if (/WRONGTYPE/.test(msg)) return true;
    throw err;
  }
}

export interface ReadOptions {
  /** The master has `PEXPIRETIME` (7.0+); else `PTTL` plus local time. Default true. */
  pexpiretime?: boolean;
  /** The master has hash field expiry (`masterHasFieldTtl`): read field TTLs with `HPEXPIRETIME`. Default false. */
  fieldTtl?: boolean;
  /**
   * The hash's fields as far as known (the mirror's): asked for in the same `MULTI`, saving a round trip. When the
   * master has a field not in the list, the key is read again with its own `HKEYS`.
   */
  hashFields?: Buffer[];
}

/** Fields per `HPEXPIRETIME` command, so a huge hash does not become one huge command. */
export const FIELDS_PER_HPEXPIRETIME = 1000;

/**
 * Reads one key from Redis in the comparable form, atomically (MULTI/EXEC), or null when it does not exist.
 * The client must have the key's db selected.
 */
export async function readRedisKey(
  redis: Redis,
  key: Buffer,
  opts: ReadOptions = {},
): Promise<ComparableKey | null> {
  return (await readRedisKeyAt(redis, key, opts)).key;
}

/**
 * readRedisKey, plus the master's clock (ms) at the read for hashes (`TIME` in the same `MULTI`; local time for other
 * types): the time the mirror's hash fields are judged at (comparableFromRow).
 */
export async function readRedisKeyAt(
  redis: Redis,
  key: Buffer,
  opts: ReadOptions,
): Promise<{ key: ComparableKey | null; at: number }> {
  const hasPexpiretime = opts.pexpiretime ?? true;
  const type = await redis.type(key);
  if (type === 'none') return { key: null, at: Date.now() };
  // Fields whose TTLs are asked for: the caller's list, else the master's own (one more round trip).
  let asked: Buffer[] = [];
  if (type === 'hash' && opts.fieldTtl) asked = opts.hashFields ?? (await redis.hkeysBuffer(key));
  const m = redis.multi();
  m.type(key);
  if (hasPexpiretime) m.call('pexpiretime', key);
  else m.pttl(key);
  if (!queueValueRead(m, type, key, asked))
    return { key: { type, value: null, expireAt: null }, at: Date.now() };
  const now = Date.now();
  const res = await m.exec();
  if (!res) return readRedisKeyAt(redis, key, opts);
  const t = res[0]![1] as string;
  // The key changed type between TYPE and MULTI: read again (a wrong type fails the commands queued for the old one).
  if (t !== type)
    return t === 'none'
      ? { key: null, at: now }
      : readRedisKeyAt(redis, key, { ...opts, hashFields: undefined });
  for (const [err] of res) if (err) throw err;
  const ttl = Number(res[1]![1]);
  const expireAt = ttl < 0 ? null : hasPexpiretime ? ttl : now + ttl;
  const raw = res[2]![1];
  if (type === 'hash') {
    const hash = hashFromReplies(raw as Buffer[], res, asked, opts.fieldTtl === true);
    // A field HKEYS shows but the list did not name: read again with the master's own field list.
    if (hash === null) return readRedisKeyAt(redis, key, { ...opts, hashFields: undefined });
    return { key: { type, value: hash.value, expireAt, fieldExpireAt: hash.fieldExpireAt }, at: hash.at };
  }
  const value = type === 'stream' ? streamFromReplies(raw, res[3]![1]) : plainValue(type, raw);
  return { key: { type, value, expireAt }, at: now };
}

type Multi = ReturnType<Redis['multi']>;

/** Queues the reads of a `type` value after TYPE and the expiry; false for a type verify does not read. */
function queueValueRead(m: Multi, type: string, key: Buffer, asked: Buffer[]): boolean {
  switch (type) {
    case 'string':
      m.getBuffer(key);
      return true;
    case 'list':
      m.lrangeBuffer(key, 0, -1);
      return true;
    case 'set':
      m.smembersBuffer(key);
      return true;
    case 'zset':
      m.zrangeBuffer(key, 0, -1, 'WITHSCORES');
      return true;
    case 'hash':
      // HKEYS and HVALS in one MULTI walk the same dict in the same order; HGETALL's reply would be turned into an
      // object keyed by decoded text, which loses binary field names.
      m.hkeysBuffer(key);
      m.hvalsBuffer(key);
      m.call('time');
      for (let i = 0; i < asked.length; i += FIELDS_PER_HPEXPIRETIME) {
        const chunk = asked.slice(i, i + FIELDS_PER_HPEXPIRETIME);
        m.call('hpexpiretime', key, 'FIELDS', String(chunk.length), ...chunk);
      }
      return true;
    case 'stream':
      m.xrangeBuffer(key, '-', '+');
      m.call('xinfo', 'stream', key, 'full');
      return true;
    default:
      return false;
  }
}

/** A string, list, set or zset reply in the mirror's comparable form (sets by bytes, zsets in the mirror's order). */
function plainValue(type: string, raw: unknown): unknown {
  switch (type) {
    case 'string':
      return encodeBytes(raw as Buffer);
    case 'list':
      return (raw as Buffer[]).map(encodeBytes);
    case 'set':
      return [...(raw as Buffer[])].sort(cmpBuf).map(encodeBytes);
    default: {
      const a = raw as Buffer[];
      const pairs: Array<[Buffer, string]> = [];
      for (let i = 0; i < a.length; i += 2) pairs.push([a[i]!, a[i + 1]!.toString('latin1')]);
      return zsetInMirrorOrder(pairs);
    }
  }
}

/**
 * A hash from HKEYS, HVALS, TIME and the HPEXPIRETIME replies of one MULTI: fields by bytes, the field TTLs, and the
 * master's time of the read. Null when HKEYS shows a field the TTL list did not name (read again).
 */
function hashFromReplies(
  fields: Buffer[],
  res: Array<[Error | null, unknown]>,
  asked: Buffer[],
  fieldTtl: boolean,
): { value: unknown; fieldExpireAt: Array<[unknown, number]>; at: number } | null {
  const vals = res[3]![1] as Buffer[];
  const [sec, usec] = res[4]![1] as [string, string];
  const at = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  const pairs: Array<[Buffer, Buffer]> = fields.map((f, i) => [f, vals[i]!]);
  const value = pairs.sort((x, y) => cmpBuf(x[0], y[0])).map(([f, v]) => [encodeBytes(f), encodeBytes(v)]);
  if (!fieldTtl) return { value, fieldExpireAt: [], at };
  // HPEXPIRETIME answers in the order asked: ms, -1 (no TTL), -2 (no such field, or its TTL has passed).
  const replies = res.slice(5).flatMap(([, r]) => r as number[]);
  const ttls = new Map(asked.map((f, i) => [f.toString('latin1'), Number(replies[i])]));
  const ttlOf = (f: Buffer) => ttls.get(f.toString('latin1')) ?? -2;
  // The MULTI is atomic, so a field that was named has -1 or a time.
  if (fields.some((f) => ttlOf(f) === -2)) return null;
  const fieldExpireAt = fields
    .filter((f) => ttlOf(f) >= 0)
    .sort(cmpBuf)
    .map((f): [unknown, number] => [encodeBytes(f), ttlOf(f)]);
  return { value, fieldExpireAt, at };
}

/** XRANGE's entries and XINFO STREAM FULL's groups, in the comparable summary the mirror's stream gives too. */
function streamFromReplies(raw: unknown, infoReply: unknown): unknown {
  const entries = (raw as Array<[Buffer, Buffer[]]>).map(([id, fv]) => {
    const fields: unknown[] = [];
    for (let i = 0; i < fv.length; i += 2) fields.push([encodeBytes(fv[i]!), encodeBytes(fv[i + 1]!)]);
    return { id: id.toString('latin1'), fields };
  });
  const info = kv(infoReply as unknown[]);
  const groups = ((info.groups as unknown[][]) ?? []).map((gr) => {
    const g = kv(gr);
    return {
      name: encodeBytes(Buffer.from(String(g.name), 'utf8')),
      lastId: String(g['last-delivered-id']),
      entriesRead: g['entries-read'] ?? null,
      pending: ((g.pending as unknown[][]) ?? []).map((p) => ({
        id: String(p[0]),
        consumer: encodeBytes(Buffer.from(String(p[1]), 'utf8')),
        deliveryCount: Number(p[3]),
      })),
      consumers: ((g.consumers as unknown[][]) ?? []).map((cr) => {
        const c = kv(cr);
        return {
          name: encodeBytes(Buffer.from(String(c.name), 'utf8')),
          pending: ((c.pending as unknown[][]) ?? []).map((p) => String(p[0])),
        };
      }),
    };
  });
  return streamSummary({
    entries,
    lastId: String(info['last-generated-id']),
    maxDeletedEntryId: String(info['max-deleted-entry-id'] ?? '0-0'),
    entriesAdded: Number(info['entries-added'] ?? entries.length),
    groups,
  });
}

export interface KeyDifference {
  db: number;
  key: Buffer;
  redis: ComparableKey | null;
  mirror: ComparableKey | null;
  /** Hash fields on both sides whose TTLs differ. */
  fieldTtls: FieldTtlDifference[];
}

export function same(a: ComparableKey | null, b: ComparableKey | null): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The fields of a mirrored hash, as the guess of readRedisKey's `hashFields`. */
export function mirrorFields(row: MirrorRow | undefined): Buffer[] | undefined {
  if (row?.type !== 'hash') return undefined;
  // A field stored as a blob has no bytes here: left out, the master's HKEYS shows it and the key is read again.
  return (row.value as Array<[unknown, unknown]>)
    .filter(([f]) => !blobFromJson(f))
    .map(([f]) => decodeToBuffer(f));
}

export function difference(
  db: number,
  key: Buffer,
  redis: ComparableKey | null,
  mirror: ComparableKey | null,
): KeyDifference | null {
  if (same(redis, mirror)) return null;
  return { db, key, redis, mirror, fieldTtls: fieldTtlDifferences(redis, mirror) };
}
