import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { tlsSettingsFrom } from '../../src/config/Config.js';
import { rejectSecondPassword, resolveSecret } from '../../src/config/secrets.js';
import { parseMasterUrl } from '../../src/link/MasterAddress.js';
import { ioredisTarget, loadTls, type MasterTls } from '../../src/link/tls.js';
import { ProgressLine } from '../../src/observe/progress.js';
import { registerSecret, scrubbedMessage, secretsInEndpoint } from '../../src/observe/redact.js';
import { parsePostgresSpec, pgConnectionString } from './config.js';
import { ident } from './migrations.js';
import { decodeToBuffer, encodeBytes } from './model/encoding.js';

export const verifyUsage = `Usage: redtail verify --master URL --postgres URL [options]

Compares the master's dataset with the Postgres mirror (the 'keys' table) and prints the differences.
Exit status: 0 when they agree, 1 when they differ, 2 on usage or connection errors.

Options:
  --master URL       redis[s]://[user:password@]host:port of the master redtail replicates
  --postgres URL     postgres://... of the sink (its ?schema= is honoured)
  --schema NAME      schema of the sink's tables (default: from the URL, else redtail)
  --sink NAME        the sink's checkpoint name (default postgres)
  --timeout SECONDS  how long to wait for the mirror to reach the master's offset (default 60)
  --max-diffs N      differences printed (default 20)
  --tls-ca FILE, --tls-cert FILE, --tls-key FILE, --tls-servername NAME, --tls-insecure
                     TLS settings for a rediss:// master, as for 'redtail run' (env REDTAIL_TLS_*)
  -h, --help         this text

  Passwords apart from the URLs, as for 'redtail run': REDTAIL_MASTER_PASSWORD, REDTAIL_POSTGRES_PASSWORD, each
  also as *_FILE naming a file (docs/secrets.md)
`;

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

function cmpBuf(a: Buffer, b: Buffer): number {
  return Buffer.compare(a, b);
}

function score(s: string): number | string {
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
const FIELDS_PER_HPEXPIRETIME = 1000;

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
async function readRedisKeyAt(
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
  switch (type) {
    case 'string':
      m.getBuffer(key);
      break;
    case 'list':
      m.lrangeBuffer(key, 0, -1);
      break;
    case 'set':
      m.smembersBuffer(key);
      break;
    case 'zset':
      m.zrangeBuffer(key, 0, -1, 'WITHSCORES');
      break;
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
      break;
    case 'stream':
      m.xrangeBuffer(key, '-', '+');
      m.call('xinfo', 'stream', key, 'full');
      break;
    default:
      return { key: { type, value: null, expireAt: null }, at: Date.now() };
  }
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
  let value: unknown;
  let fieldExpireAt: Array<[unknown, number]> | undefined;
  let at = now;
  switch (type) {
    case 'string':
      value = encodeBytes(raw as Buffer);
      break;
    case 'list':
      value = (raw as Buffer[]).map(encodeBytes);
      break;
    case 'set':
      value = [...(raw as Buffer[])].sort(cmpBuf).map(encodeBytes);
      break;
    case 'zset': {
      const a = raw as Buffer[];
      const out: unknown[] = [];
      for (let i = 0; i < a.length; i += 2)
        out.push([encodeBytes(a[i]!), score(a[i + 1]!.toString('latin1'))]);
      value = out;
      break;
    }
    case 'hash': {
      const fields = raw as Buffer[];
      const vals = res[3]![1] as Buffer[];
      const [sec, usec] = res[4]![1] as [string, string];
      at = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
      const pairs: Array<[Buffer, Buffer]> = fields.map((f, i) => [f, vals[i]!]);
      value = pairs.sort((x, y) => cmpBuf(x[0], y[0])).map(([f, v]) => [encodeBytes(f), encodeBytes(v)]);
      fieldExpireAt = [];
      if (opts.fieldTtl) {
        // HPEXPIRETIME answers in the order asked: ms, -1 (no TTL), -2 (no such field, or its TTL has passed).
        const replies = res.slice(5).flatMap(([, r]) => r as number[]);
        const fieldTtl = new Map(asked.map((f, i) => [f.toString('latin1'), Number(replies[i])]));
        const ttlOf = (f: Buffer) => fieldTtl.get(f.toString('latin1')) ?? -2;
        // A field HKEYS shows but the list did not name (the MULTI is atomic, so a named one has -1 or a time): read
        // again with the master's own field list.
        if (fields.some((f) => ttlOf(f) === -2))
          return readRedisKeyAt(redis, key, { ...opts, hashFields: undefined });
        fieldExpireAt = fields
          .filter((f) => ttlOf(f) >= 0)
          .sort(cmpBuf)
          .map((f) => [encodeBytes(f), ttlOf(f)]);
      }
      break;
    }
    case 'stream': {
      const entries = (raw as Array<[Buffer, Buffer[]]>).map(([id, fv]) => {
        const fields: unknown[] = [];
        for (let i = 0; i < fv.length; i += 2) fields.push([encodeBytes(fv[i]!), encodeBytes(fv[i + 1]!)]);
        return { id: id.toString('latin1'), fields };
      });
      const info = kv(res[3]![1] as unknown[]);
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
      value = streamSummary({
        entries,
        lastId: String(info['last-generated-id']),
        maxDeletedEntryId: String(info['max-deleted-entry-id'] ?? '0-0'),
        entriesAdded: Number(info['entries-added'] ?? entries.length),
        groups,
      });
      break;
    }
  }
  return { key: fieldExpireAt ? { type, value, expireAt, fieldExpireAt } : { type, value, expireAt }, at };
}

export interface KeyDifference {
  db: number;
  key: Buffer;
  redis: ComparableKey | null;
  mirror: ComparableKey | null;
  /** Hash fields on both sides whose TTLs differ. */
  fieldTtls: FieldTtlDifference[];
}

function same(a: ComparableKey | null, b: ComparableKey | null): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function masterOffset(redis: Redis): Promise<number> {
  const info = (await redis.info('replication')) as string;
  const m = /master_repl_offset:(\d+)/.exec(info);
  return m ? Number(m[1]) : 0;
}

async function mirrorOffset(db: pg.Client, s: string, sink: string): Promise<number> {
  try {
    const { rows } = await db.query<{ offset: string }>(
      `SELECT "offset" FROM ${s}.checkpoints WHERE sink = $1`,
      [sink],
    );
    return rows[0] ? Number(rows[0].offset) : -1;
  } catch (err) {
    // The sink has not created its schema yet: nothing is mirrored so far.
    const code = (err as { code?: string }).code;
    if (code === '42P01' || code === '3F000') return -1;
    throw err;
  }
}

/** Waits until the sink's checkpoint has reached the master's current offset; false on timeout. */
async function catchUp(
  redis: Redis,
  db: pg.Client,
  s: string,
  sink: string,
  deadline: number,
): Promise<boolean> {
  const target = await masterOffset(redis);
  for (;;) {
    if ((await mirrorOffset(db, s, sink)) >= target) return true;
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
}

async function mirrorRows(
  db: pg.Client,
  s: string,
  dbIndex: number,
  keys?: Buffer[],
): Promise<Map<string, MirrorRow>> {
  const where = keys ? 'AND key = ANY($2::bytea[])' : '';
  const { rows } = await db.query<MirrorRow & { key: Buffer }>(
    `SELECT key, type, value, (extract(epoch FROM expire_at) * 1000)::bigint AS expire_ms, field_expire_at
     FROM ${s}.keys WHERE db = $1 AND (expire_at IS NULL OR expire_at > now()) ${where}`,
    keys ? [dbIndex, keys] : [dbIndex],
  );
  const out = new Map<string, MirrorRow>();
  for (const { key, ...r } of rows) out.set(key.toString('latin1'), r);
  return out;
}

/** The fields of a mirrored hash, as the guess of readRedisKey's `hashFields`. */
function mirrorFields(row: MirrorRow | undefined): Buffer[] | undefined {
  if (row?.type !== 'hash') return undefined;
  return (row.value as Array<[unknown, unknown]>).map(([f]) => decodeToBuffer(f));
}

function difference(
  db: number,
  key: Buffer,
  redis: ComparableKey | null,
  mirror: ComparableKey | null,
): KeyDifference | null {
  if (same(redis, mirror)) return null;
  return { db, key, redis, mirror, fieldTtls: fieldTtlDifferences(redis, mirror) };
}

async function scanDb(redis: Redis): Promise<Buffer[]> {
  const keys: Buffer[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scanBuffer(cursor, 'COUNT', 1000);
    cursor = next.toString();
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

export interface VerifyOptions {
  master: string;
  postgres: string;
  schema?: string;
  sink?: string;
  timeoutMs?: number;
  /** Settings for a rediss:// master (default: system CAs, verification on). */
  tls?: MasterTls;
  /** Keys compared so far, of about `total` (the master's key count when the comparison began). */
  onProgress?: (compared: number, total: number | null) => void;
}

export interface VerifyResult {
  keys: number;
  differences: KeyDifference[];
  caughtUp: boolean;
}

/**
 * Compares every key of every database. The mirror is first allowed to reach the master's offset; keys that still
 * differ are read again after the mirror has caught up with the master once more (a key can change between the
 * two reads on a busy master), up to three times, and only then reported.
 */
export async function verifyMirror(o: VerifyOptions): Promise<VerifyResult> {
  const cfg = parsePostgresSpec(o.postgres, o.schema ? { schema: o.schema } : {});
  const s = ident(cfg.schema);
  const sink = o.sink ?? cfg.name;
  const a = parseMasterUrl(o.master, o.tls);
  const redis = new Redis({
    ...ioredisTarget(a),
    lazyConnect: true,
    maxRetriesPerRequest: 2,
    // ioredis's ready check (an INFO) fails on a master that wants a password none was given for, and ioredis then
    // reconnects for ever: without it the first command fails with the master's NOAUTH, which verify reports.
    enableReadyCheck: false,
  });
  redis.on('error', () => {});
  const db = new pg.Client({ connectionString: pgConnectionString(cfg) });
  await redis.connect();
  await db.connect();
  try {
    const info = (await redis.info('server')) as string;
    const read: ReadOptions = {
      pexpiretime: Number(/redis_version:(\d+)/.exec(info)?.[1] ?? 0) >= 7,
      fieldTtl: await masterHasFieldTtl(redis),
    };
    const deadline = Date.now() + (o.timeoutMs ?? 60_000);
    const caughtUp = await catchUp(redis, db, s, sink, deadline);
    const keyspace = (await redis.info('keyspace')) as string;
    const dbs = new Set<number>([...keyspace.matchAll(/^db(\d+):/gm)].map((m) => Number(m[1])));
    const masterKeys = [...keyspace.matchAll(/^db\d+:keys=(\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    const { rows } = await db.query<{ db: number }>(`SELECT DISTINCT db FROM ${s}.keys`);
    for (const r of rows) dbs.add(r.db);
    let total = 0;
    let diffs: KeyDifference[] = [];
    for (const d of [...dbs].sort((x, y) => x - y)) {
      await redis.select(d);
      const keys = await scanDb(redis);
      const mirror = await mirrorRows(db, s, d);
      const seen = new Set<string>();
      for (const k of keys) {
        const id = k.toString('latin1');
        if (seen.has(id)) continue;
        seen.add(id);
        total++;
        o.onProgress?.(total, masterKeys);
        const row = mirror.get(id);
        const r = await readRedisKeyAt(redis, k, { ...read, hashFields: mirrorFields(row) });
        const dd = difference(d, k, r.key, row ? comparableFromRow(row, r.at) : null);
        if (dd) diffs.push(dd);
      }
      for (const [id, m] of mirror)
        if (!seen.has(id)) {
          const dd = difference(d, Buffer.from(id, 'latin1'), null, comparableFromRow(m));
          if (dd) diffs.push(dd);
        }
    }
    for (let round = 0; round < 3 && diffs.length > 0; round++) {
      await catchUp(redis, db, s, sink, Math.max(deadline, Date.now() + 15_000));
      const still: KeyDifference[] = [];
      for (const dd of diffs) {
        await redis.select(dd.db);
        const r = await readRedisKeyAt(redis, dd.key, read);
        await catchUp(redis, db, s, sink, Date.now() + 15_000);
        const row = (await mirrorRows(db, s, dd.db, [dd.key])).get(dd.key.toString('latin1'));
        const again = difference(dd.db, dd.key, r.key, row ? comparableFromRow(row, r.at) : null);
        if (again) still.push(again);
      }
      diffs = still;
    }
    return { keys: total, differences: diffs, caughtUp };
  } finally {
    redis.disconnect();
    await db.end();
  }
}

function show(x: ComparableKey | null): string {
  if (!x) return '(absent)';
  const v = JSON.stringify(x.value);
  const f = x.fieldExpireAt?.length ? JSON.stringify(x.fieldExpireAt) : '';
  return `${x.type} ${v.length > 200 ? `${v.slice(0, 200)}…` : v}${x.expireAt !== null ? ` expireAt=${x.expireAt}` : ''}${f ? ` fieldExpireAt=${f.length > 200 ? `${f.slice(0, 200)}…` : f}` : ''}`;
}

const showTtl = (ms: number | null) => (ms === null ? 'none' : String(ms));

/** The report of one difference: both sides, then each field whose TTL differs. */
export function describeDifference(d: KeyDifference): string {
  const lines = [
    `db ${d.db} key ${JSON.stringify(encodeBytes(d.key))}:`,
    `  redis:  ${show(d.redis)}`,
    `  mirror: ${show(d.mirror)}`,
  ];
  for (const f of d.fieldTtls.slice(0, 10))
    lines.push(
      `  field ${JSON.stringify(f.field)} expireAt: redis ${showTtl(f.redis)}, mirror ${showTtl(f.mirror)}`,
    );
  if (d.fieldTtls.length > 10) lines.push(`  ... and ${d.fieldTtls.length - 10} more fields with other TTLs`);
  return lines.join('\n');
}

/** `redtail verify`: returns the exit status (0 agree, 1 differ, 2 usage/connection error). */
export async function verifyCommand(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        master: { type: 'string' },
        postgres: { type: 'string' },
        schema: { type: 'string' },
        sink: { type: 'string' },
        timeout: { type: 'string' },
        'max-diffs': { type: 'string' },
        'tls-ca': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'tls-servername': { type: 'string' },
        'tls-insecure': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`redtail verify: ${(err as Error).message}\n\n${verifyUsage}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(verifyUsage);
    return 0;
  }
  const master = (values.master as string | undefined) ?? process.env.REDTAIL_MASTER;
  const postgres = values.postgres as string | undefined;
  if (!master || !postgres) {
    process.stderr.write(`redtail verify: --master and --postgres are required\n\n${verifyUsage}`);
    return 2;
  }
  // Whatever pg or ioredis quote in an error, the passwords of these URLs are not printed.
  for (const url of [master, postgres]) for (const pw of secretsInEndpoint(url)) registerSecret(pw);
  let urls: { master: string; postgres: string };
  try {
    urls = withPasswordsFromEnv(master, postgres, process.env);
  } catch (err) {
    process.stderr.write(`redtail verify: ${(err as Error).message}\n`);
    return 2;
  }
  const maxDiffs = Number(values['max-diffs'] ?? 20);
  let tls: MasterTls;
  try {
    tls = loadTls(
      tlsSettingsFrom(process.env, {
        caFile: values['tls-ca'] as string | undefined,
        certFile: values['tls-cert'] as string | undefined,
        keyFile: values['tls-key'] as string | undefined,
        servername: values['tls-servername'] as string | undefined,
        insecure: values['tls-insecure'] as boolean | undefined,
      }),
    );
  } catch (err) {
    process.stderr.write(`redtail verify: ${(err as Error).message}\n`);
    return 2;
  }
  let result: VerifyResult;
  let compared = 0;
  let totalKeys: number | null = null;
  const startedAt = Date.now();
  const progress = new ProgressLine('verify', () => ({
    keys: compared,
    bytes: null,
    totalBytes: null,
    totalKeys,
    startedAt,
  })).start();
  try {
    result = await verifyMirror({
      onProgress: (n, t) => {
        compared = n;
        totalKeys = t;
      },
      tls,
      master: urls.master,
      postgres: urls.postgres,
      schema: values.schema as string | undefined,
      sink: values.sink as string | undefined,
      timeoutMs: Number(values.timeout ?? 60) * 1000,
    });
  } catch (err) {
    process.stderr.write(`redtail verify: ${scrubbedMessage(err)}\n`);
    return 2;
  } finally {
    progress.stop();
  }
  const out: string[] = [];
  if (!result.caughtUp)
    out.push(
      "warning: the mirror did not reach the master's offset before the timeout; differences may be lag",
    );
  for (const d of result.differences.slice(0, maxDiffs)) out.push(describeDifference(d));
  if (result.differences.length > maxDiffs) out.push(`... and ${result.differences.length - maxDiffs} more`);
  out.push(`verify: ${result.keys} keys on the master, ${result.differences.length} differences`);
  process.stdout.write(`${out.join('\n')}\n`);
  return result.differences.length === 0 ? 0 : 1;
}

/**
 * `redtail verify` takes the passwords `redtail run` takes apart from the URLs (REDTAIL_MASTER_PASSWORD[_FILE],
 * REDTAIL_POSTGRES_PASSWORD[_FILE]; docs/secrets.md), so one Kubernetes secret serves both; a password given in the
 * URL too is an error, as for run.
 */
export function withPasswordsFromEnv(
  master: string,
  postgres: string,
  env: NodeJS.ProcessEnv,
): { master: string; postgres: string } {
  const masterSecret = resolveSecret('master', env, {}, '');
  const pgSecret = resolveSecret('postgres', env, {}, '');
  rejectSecondPassword(master, '--master', masterSecret);
  rejectSecondPassword(postgres, '--postgres', pgSecret);
  let masterUrl = master;
  if (masterSecret) {
    const u = new URL(master);
    u.password = encodeURIComponent(masterSecret.value);
    masterUrl = u.toString();
  }
  return {
    master: masterUrl,
    postgres: pgSecret
      ? pgConnectionString({ connectionString: postgres, password: pgSecret.value })
      : postgres,
  };
}
