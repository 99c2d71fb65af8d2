import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { tlsSettingsFrom } from '../../src/config/Config.js';
import { rejectSecondPassword, resolveSecret } from '../../src/config/secrets.js';
import { type MasterAddress, parseMasterUrl } from '../../src/link/MasterAddress.js';
import { ioredisTarget, loadTls, type MasterTls } from '../../src/link/tls.js';
import { ProgressLine } from '../../src/observe/progress.js';
import { registerSecret, scrubbedMessage, secretsInEndpoint } from '../../src/observe/redact.js';
import { hashChunks, shaLiteral } from './blobs.js';
import { parsePostgresSpec, pgConnectionString } from './config.js';
import { CopiedRow, CopyBinaryRows, jsonb } from './copyOut.js';
import { KeyHashes } from './KeyHashes.js';
import { ident, MEMBER_TABLES, mirrorValueSql } from './migrations.js';
import type { BlobRef } from './model/blobRef.js';
import { encodeBytes } from './model/encoding.js';
import { latin1, ReplyError, RespPipe } from './RespPipe.js';
import { type BatchContext, compareBatch, volatileIn } from './verifyBatch.js';
import {
  type ComparableKey,
  type KeyDifference,
  type MirrorRow,
  masterHasFieldTtl,
  type ReadOptions,
} from './verifyKey.js';

export {
  type ComparableKey,
  comparableFromRow,
  type FieldTtlDifference,
  fieldTtlDifferences,
  type KeyDifference,
  type MirrorRow,
  masterHasFieldTtl,
  type ReadOptions,
  readRedisKey,
} from './verifyKey.js';

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

const copyTo = copyStreams.to;

/** Keys per batch: one pipelined write of reads each (bench/NOTES.md: 2,000 × 8 beat 1,000 × 4 in both A/B pairs). */
const BATCH_KEYS = 2_000;
/**
 * Batches being compared at once, so the master, Postgres and this process work at the same time: with more in
 * flight the master always has a batch to read while this process compares another.
 */
const BATCHES_IN_FLIGHT = 8;
/** SCAN's COUNT: how many dict buckets the master walks per call (several thousand keys a round trip). */
const SCAN_COUNT = 5_000;

/**
 * Reads the live mirror rows of db `db` with one binary COPY, in batches of about BATCH_KEYS: a sequential read of
 * the table instead of an index lookup per key, and no per-row parsing by pg (bytea as hex, objects per row).
 */
async function copyMirror(
  client: pg.Client,
  s: string,
  db: number,
  onBatch: (keys: Buffer[], rows: MirrorRow[]) => Promise<void>,
): Promise<void> {
  const stream = client.query(
    copyTo(
      `COPY (SELECT key, type, ${mirrorValueSql(s, '')} FROM ${s}.keys
             WHERE db = ${Math.trunc(db)} AND (expire_at IS NULL OR expire_at > now())) TO STDOUT (FORMAT binary)`,
    ),
  );
  let keys: Buffer[] = [];
  let rows: MirrorRow[] = [];
  const parser = new CopyBinaryRows((b, at) => {
    const [k0 = -1, k1 = 0, t0 = -1, t1 = 0, v0 = -1, v1 = 0, e0 = -1, , f0 = -1, f1 = 0] = at;
    if (k0 < 0 || t0 < 0 || v0 < 0) throw new Error('internal: a NULL key, type or value in the mirror');
    keys.push(b.subarray(k0, k1));
    rows.push(
      new CopiedRow(
        latin1(b, t0, t1),
        b.subarray(v0, v1),
        e0 < 0 ? null : Number(b.readBigInt64BE(e0)),
        f0 < 0 ? null : jsonb(b.subarray(f0, f1)),
      ),
    );
  });
  for await (const chunk of stream) {
    parser.feed(chunk as Buffer);
    if (keys.length >= BATCH_KEYS) {
      await onBatch(keys, rows);
      keys = [];
      rows = [];
    }
  }
  if (keys.length > 0) await onBatch(keys, rows);
}

/**
 * The blobs of huge values (blobs.ts) whose chunks do not hash to their SHA-256 or length, and blobs a key references
 * that are missing: SHA-256 → what the mirror really holds for it. Each blob is read once with a binary COPY and hashed
 * as it streams (never whole in memory).
 */
async function checkBlobs(client: pg.Client, s: string): Promise<Map<string, BlobRef>> {
  const bad = new Map<string, BlobRef>();
  const { rows } = await client.query<{ sha256: string; bytes: string }>(
    `SELECT sha256, bytes FROM ${s}.blobs ORDER BY sha256`,
  );
  for (const r of rows) {
    const got = await hashChunks(
      client,
      `SELECT chunk FROM ${s}.blob_chunks WHERE sha256 = ${shaLiteral(r.sha256)} ORDER BY n`,
    );
    if (got.sha256 !== r.sha256 || got.bytes !== Number(r.bytes)) bad.set(r.sha256, got);
  }
  const { rows: missing } = await client.query<{ sha256: string }>(
    `SELECT DISTINCT x AS sha256 FROM ${s}.keys, unnest(blobs) AS x WHERE blobs IS NOT NULL
     ${MEMBER_TABLES.map((t) => `UNION SELECT x FROM ${s}.${t}, unnest(blobs) AS x WHERE blobs IS NOT NULL`).join('\n     ')}
     EXCEPT SELECT sha256 FROM ${s}.blobs`,
  );
  for (const m of missing) bad.set(m.sha256, { bytes: 0, sha256: 'missing' });
  return bad;
}

/** Every key of the selected db, by SCAN on a connection of its own. */
async function scanKeys(pipe: RespPipe, onKey: (key: Buffer) => void): Promise<void> {
  let cursor = '0';
  do {
    const r = await pipe.call('SCAN', cursor, 'COUNT', String(SCAN_COUNT));
    if (!Array.isArray(r) || !Array.isArray(r[1]))
      throw new Error(`SCAN failed on the master: ${r instanceof ReplyError ? r.message : String(r)}`);
    cursor = String(r[0]);
    for (const k of r[1] as Buffer[]) onKey(k);
  } while (cursor !== '0');
}

/**
 * What moves with any write to the master's dataset: the dirty counter (every change a command makes) and the saves
 * that reset it, expired and evicted keys. Two equal marks mean no key was added, changed or removed between them.
 * Not the replication offset: the master's PING to its replicas every 10 s moves it without a write.
 */
export function writeMark(info: string): string {
  const fields = [
    'rdb_changes_since_last_save',
    'rdb_last_save_time',
    'rdb_saves',
    'expired_keys',
    'evicted_keys',
  ];
  return fields.map((f) => new RegExp(`^${f}:(.*)$`, 'm').exec(info)?.[1]?.trim() ?? '?').join(',');
}

/** The master's key count of db `db` in an `INFO` reply (0 when the db has no line). */
function keysIn(info: string, db: number): number {
  return Number(new RegExp(`^db${db}:keys=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
}

/**
 * The master's keys of a db, read by SCAN only when the mirror's own keys cannot account for them. SCAN costs the
 * master about as much CPU as reading every value (a robj and a reply per key, 40 % of its time in verify), and
 * the master's one thread bounds verify. So: when the master's dataset did not change since `start` (writeMark)
 * and the mirror's keys found on the master are as many as the master holds, those are all of its keys and no key
 * is missing from the mirror; SCAN runs only otherwise. A write seen while the batches run starts SCAN at once,
 * beside them, as before.
 */
class MasterScan {
  private scanning: Promise<KeyHashes> | null = null;
  private readonly timer: NodeJS.Timeout;
  /** The poll whose INFO is on its way, so finish() waits for it rather than racing it. */
  private polling: Promise<void> | null = null;
  /** writeMark of the INFO at verify's start. */
  private readonly startMark: string;

  constructor(
    private readonly pipe: RespPipe,
    private readonly redis: Redis,
    private readonly start: string,
  ) {
    this.startMark = writeMark(start);
    this.timer = setInterval(() => {
      if (!this.scanning && !this.polling) this.polling = this.poll().finally(() => (this.polling = null));
    }, 1_000);
    this.timer.unref();
  }

  /** Stops polling (the db's comparison failed; finish() stops it otherwise). */
  stop(): void {
    clearInterval(this.timer);
  }

  private async poll(): Promise<void> {
    try {
      if (writeMark((await this.redis.info()) as string) !== this.startMark) this.begin();
    } catch {
      // finish() asks again and scans when in doubt.
    }
  }

  private begin(): Promise<KeyHashes> {
    this.scanning ??= (async () => {
      const keys = new KeyHashes();
      await scanKeys(this.pipe, (k) => keys.add(k));
      keys.seal();
      return keys;
    })();
    this.scanning.catch(() => {});
    return this.scanning;
  }

  /**
   * The master's keys (sealed), or null when `present` (distinct mirror keys the master has) proves the mirror
   * holds all of them.
   */
  async finish(db: number, present: number): Promise<KeyHashes | null> {
    clearInterval(this.timer);
    await this.polling;
    if (!this.scanning) {
      const now = (await this.redis.info()) as string;
      if (
        writeMark(now) === this.startMark &&
        keysIn(now, db) === present &&
        keysIn(this.start, db) === present
      )
        return null;
    }
    return this.begin();
  }
}

/** Differences of keys SCAN returned twice, kept once. */
function once(diffs: KeyDifference[]): KeyDifference[] {
  const ids = new Set<string>();
  return diffs.filter((d) => {
    const id = `${d.db}:${latin1(d.key)}`;
    if (ids.has(id)) return false;
    ids.add(id);
    return true;
  });
}

/** Runs at most `limit` tasks at once; `drain` waits for all and rethrows the first failure. */
class Limiter {
  private readonly running = new Set<Promise<void>>();
  private failure: unknown = null;

  constructor(private readonly limit: number) {}

  async run(task: () => Promise<void>): Promise<void> {
    while (this.running.size >= this.limit) await Promise.race(this.running);
    if (this.failure) throw this.failure;
    const p: Promise<void> = task()
      .catch((err) => {
        this.failure ??= err;
      })
      .finally(() => this.running.delete(p));
    this.running.add(p);
  }

  async drain(): Promise<void> {
    await Promise.all(this.running);
    if (this.failure) throw this.failure;
  }
}

/** Everything verify holds open, closed in one place whatever failed; the RESP pipes exist once connected. */
interface Clients {
  redis: Redis;
  db: pg.Client;
  copyClient: pg.Client;
  pool: pg.Pool;
  pipe: RespPipe | null;
  scanPipe: RespPipe | null;
}

/** Creates (does not connect) the clients of one verify run. */
function createClients(a: MasterAddress, pgUrl: string): Clients {
  const redis = new Redis({
    ...ioredisTarget(a),
    lazyConnect: true,
    maxRetriesPerRequest: 2,
    // ioredis's ready check (an INFO) fails on a master that wants a password none was given for, and ioredis then
    // reconnects for ever: without it the first command fails with the master's NOAUTH, which verify reports.
    enableReadyCheck: false,
  });
  redis.on('error', () => {});
  const db = new pg.Client({ connectionString: pgUrl });
  // The mirror's rows stream through a COPY on a connection of its own while batches query on the pool.
  const copyClient = new pg.Client({ connectionString: pgUrl });
  copyClient.on('error', () => {});
  // Batches in flight each query on a connection of their own: Postgres runs them on both cores.
  const pool = new pg.Pool({ connectionString: pgUrl, max: BATCHES_IN_FLIGHT });
  pool.on('error', () => {});
  return { redis, db, copyClient, pool, pipe: null, scanPipe: null };
}

/** Connects the clients; returns how to read the master's keys, and the RESP pipes (also kept in `c` to close). */
async function connectClients(
  c: Clients,
  a: MasterAddress,
): Promise<{ read: ReadOptions; pipe: RespPipe; scanPipe: RespPipe }> {
  await c.redis.connect();
  await c.db.connect();
  const info = (await c.redis.info('server')) as string;
  const read: ReadOptions = {
    pexpiretime: Number(/redis_version:(\d+)/.exec(info)?.[1] ?? 0) >= 7,
    fieldTtl: await masterHasFieldTtl(c.redis),
  };
  const pipe = await RespPipe.connect(a);
  c.pipe = pipe;
  const scanPipe = await RespPipe.connect(a, { name: 'redtail-verify-scan' });
  c.scanPipe = scanPipe;
  await c.copyClient.connect();
  return { read, pipe, scanPipe };
}

async function closeClients(c: Clients): Promise<void> {
  c.pipe?.close();
  c.scanPipe?.close();
  c.redis.disconnect();
  await c.db.end();
  await c.copyClient.end().catch(() => {});
  await c.pool.end();
}

/** One verify run once connected: what every db's comparison and the rechecks share. */
interface Run {
  redis: Redis;
  db: pg.Client;
  copyClient: pg.Client;
  pipe: RespPipe;
  scanPipe: RespPipe;
  /** The sink's schema (quoted) and checkpoint name, to wait for the mirror (catchUp). */
  s: string;
  sink: string;
  deadline: number;
  /** The default INFO at the start: its keyspace section, and what MasterScan compares with (writeMark). */
  start: string;
  /** The master's key count at the start, for onProgress. */
  masterKeys: number;
  compared: number;
  onProgress: VerifyOptions['onProgress'];
  /** What a batch of db `d` compares with; `volatile` starts true (every key may expire) until the caller knows. */
  contextFor: (d: number, settle?: () => Promise<void>) => BatchContext;
}

/** The dbs to compare: those the master's keyspace lists and those the mirror has, in ascending order. */
async function dbsToCompare(db: pg.Client, s: string, keyspace: string): Promise<number[]> {
  const dbs = new Set<number>([...keyspace.matchAll(/^db(\d+):/gm)].map((m) => Number(m[1])));
  // The dbs the mirror has, by a walk of the primary key's index (DISTINCT would read every row).
  const { rows } = await db.query<{ db: number }>(
    `WITH RECURSIVE d AS (SELECT min(db) AS db FROM ${s}.keys
       UNION ALL SELECT (SELECT min(db) FROM ${s}.keys WHERE db > d.db) FROM d WHERE d.db IS NOT NULL)
     SELECT db FROM d WHERE db IS NOT NULL`,
  );
  for (const r of rows) dbs.add(r.db);
  return [...dbs].sort((x, y) => x - y);
}

/** Compares `keys` of one db BATCH_KEYS at a time, one batch after the other (rare paths: lost keys, rechecks). */
async function compareKeys(ctx: BatchContext, keys: Buffer[]): Promise<KeyDifference[]> {
  const diffs: KeyDifference[] = [];
  for (let i = 0; i < keys.length; i += BATCH_KEYS)
    diffs.push(...(await compareBatch(ctx, keys.slice(i, i + BATCH_KEYS))).differences);
  return diffs;
}

/**
 * Compares the mirror's live rows of db `ctx.db` with the master, BATCHES_IN_FLIGHT batches at once, adding every
 * mirror key to `onMirror` and the differences to `diffs`; returns how many of the mirror's keys the master has.
 * Keys only the mirror has show here (the master answers -2).
 */
async function compareMirrorRows(
  run: Run,
  ctx: BatchContext,
  onMirror: KeyHashes,
  diffs: KeyDifference[],
): Promise<number> {
  const limiter = new Limiter(BATCHES_IN_FLIGHT);
  let present = 0;
  await copyMirror(run.copyClient, run.s, ctx.db, (keys, rows) => {
    for (const k of keys) onMirror.add(k);
    return limiter.run(async () => {
      const found = (await compareBatch(ctx, keys, rows)).differences;
      diffs.push(...found);
      present += keys.length - found.filter((x) => x.redis === null).length;
      run.compared += keys.length;
      run.onProgress?.(run.compared, run.masterKeys);
    });
  });
  await limiter.drain();
  return present;
}

/**
 * Compares db `d`: the mirror's rows, then the master's keys the mirror lacks, which come from SCAN only when the
 * counts and writeMark do not rule them out (MasterScan). Returns the db's key count and its differences.
 */
async function compareDb(run: Run, d: number): Promise<{ keys: number; differences: KeyDifference[] }> {
  await run.redis.select(d);
  await run.pipe.call('SELECT', String(d));
  await run.scanPipe.call('SELECT', String(d));
  const ctx = run.contextFor(d);
  ctx.volatile.value = volatileIn(run.start, d);
  const onMirror = new KeyHashes();
  const scan = new MasterScan(run.scanPipe, run.redis, run.start);
  const diffs: KeyDifference[] = [];
  let present: number;
  try {
    present = await compareMirrorRows(run, ctx, onMirror, diffs);
  } catch (err) {
    scan.stop();
    throw err;
  }
  onMirror.seal();
  const onMaster = await scan.finish(d, present);
  if (!onMaster) return { keys: present, differences: diffs };
  const missing = onMaster.notIn(onMirror);
  if (missing.size > 0) {
    // Rare (a mirror that lost keys, or keys written during verify): SCAN again for the keys behind the hashes.
    const lost: Buffer[] = [];
    await scanKeys(run.scanPipe, (k) => {
      if (missing.has(k)) lost.push(k);
    });
    diffs.push(...(await compareKeys(ctx, lost)));
  }
  return { keys: onMaster.distinct, differences: diffs };
}

/** The keys of `diffs` by db, each db in the order of its first difference. */
function keysByDb(diffs: KeyDifference[]): Map<number, Buffer[]> {
  const byDb = new Map<number, Buffer[]>();
  for (const dd of diffs) {
    const keys = byDb.get(dd.db);
    if (keys) keys.push(dd.key);
    else byDb.set(dd.db, [dd.key]);
  }
  return byDb;
}

/**
 * Compares the keys that differ again after the mirror has caught up with the master once more (a key can change
 * between the two reads on a busy master), up to three times; what still differs is reported.
 */
async function recheck(run: Run, first: KeyDifference[]): Promise<KeyDifference[]> {
  let diffs = first;
  for (let round = 0; round < 3 && diffs.length > 0; round++) {
    await catchUp(run.redis, run.db, run.s, run.sink, Math.max(run.deadline, Date.now() + 15_000));
    const still: KeyDifference[] = [];
    for (const [d, keys] of keysByDb(diffs)) {
      await run.redis.select(d);
      await run.pipe.call('SELECT', String(d));
      const ctx = run.contextFor(d, async () => {
        await catchUp(run.redis, run.db, run.s, run.sink, Date.now() + 15_000);
      });
      still.push(...(await compareKeys(ctx, keys)));
    }
    diffs = still;
  }
  return diffs;
}

/**
 * Compares every key of every database. The mirror is first allowed to reach the master's offset. Each db's live
 * mirror rows are read with one COPY and compared in batches (verifyBatch.ts; a key the master lacks is an extra
 * key); the master's keys the mirror lacks are found by SCAN when the counts and writeMark do not rule them out
 * (MasterScan). Keys that differ are compared again after the mirror has caught
 * up with the master once more (a key can change between the two reads on a busy master), up to three times, and
 * only then reported.
 */
export async function verifyMirror(o: VerifyOptions): Promise<VerifyResult> {
  const cfg = parsePostgresSpec(o.postgres, o.schema ? { schema: o.schema } : {});
  const s = ident(cfg.schema);
  const sink = o.sink ?? cfg.name;
  const a = parseMasterUrl(o.master, o.tls);
  const c = createClients(a, pgConnectionString(cfg));
  try {
    const { read, pipe, scanPipe } = await connectClients(c, a);
    const deadline = Date.now() + (o.timeoutMs ?? 60_000);
    const caughtUp = await catchUp(c.redis, c.db, s, sink, deadline);
    const badBlobs = await checkBlobs(c.db, s);
    const { redis, db, copyClient, pool } = c;
    const contextFor = (d: number, settle?: () => Promise<void>): BatchContext => ({
      pipe,
      redis,
      pg: pool,
      schema: s,
      db: d,
      read,
      volatile: { value: true },
      badBlobs,
      ...(settle ? { settle } : {}),
    });
    const start = (await redis.info()) as string;
    const masterKeys = [...start.matchAll(/^db\d+:keys=(\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    const run: Run = {
      redis,
      db,
      copyClient,
      pipe,
      scanPipe,
      s,
      sink,
      deadline,
      start,
      masterKeys,
      contextFor,
      compared: 0,
      onProgress: o.onProgress,
    };
    let total = 0;
    const diffs: KeyDifference[] = [];
    for (const d of await dbsToCompare(db, s, start)) {
      const r = await compareDb(run, d);
      total += r.keys;
      diffs.push(...r.differences);
    }
    return { keys: total, differences: await recheck(run, once(diffs)), caughtUp };
  } finally {
    await closeClients(c);
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

type VerifyArgs = Record<string, string | boolean | undefined>;

/** The command line's options, or exit status 2 after reporting a usage error. */
function parseVerifyArgs(argv: string[]): VerifyArgs | 2 {
  try {
    return parseArgs({
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
    }).values;
  } catch (err) {
    process.stderr.write(`redtail verify: ${(err as Error).message}\n\n${verifyUsage}`);
    return 2;
  }
}

/**
 * What to verify, from the options and the environment: the URLs with the passwords given apart from them, and the
 * master's TLS settings. Throws when a password is given twice or a TLS file cannot be read (exit status 2).
 */
function verifyOptionsFrom(values: VerifyArgs, master: string, postgres: string): VerifyOptions {
  const urls = withPasswordsFromEnv(master, postgres, process.env);
  const tls = loadTls(
    tlsSettingsFrom(process.env, {
      caFile: values['tls-ca'] as string | undefined,
      certFile: values['tls-cert'] as string | undefined,
      keyFile: values['tls-key'] as string | undefined,
      servername: values['tls-servername'] as string | undefined,
      insecure: values['tls-insecure'] as boolean | undefined,
    }),
  );
  return {
    tls,
    master: urls.master,
    postgres: urls.postgres,
    schema: values.schema as string | undefined,
    sink: values.sink as string | undefined,
    timeoutMs: Number(values.timeout ?? 60) * 1000,
  };
}

/** verifyMirror with a progress line on stderr; null after reporting a failure (its message without passwords). */
async function verifyWithProgress(o: VerifyOptions): Promise<VerifyResult | null> {
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
    return await verifyMirror({
      ...o,
      onProgress: (n, t) => {
        compared = n;
        totalKeys = t;
      },
    });
  } catch (err) {
    process.stderr.write(`redtail verify: ${scrubbedMessage(err)}\n`);
    return null;
  } finally {
    progress.stop();
  }
}

/** The report printed on stdout: a lag warning, the first `maxDiffs` differences, and the counts. */
function verifyReport(result: VerifyResult, maxDiffs: number): string {
  const out: string[] = [];
  if (!result.caughtUp)
    out.push(
      "warning: the mirror did not reach the master's offset before the timeout; differences may be lag",
    );
  for (const d of result.differences.slice(0, maxDiffs)) out.push(describeDifference(d));
  if (result.differences.length > maxDiffs) out.push(`... and ${result.differences.length - maxDiffs} more`);
  out.push(`verify: ${result.keys} keys on the master, ${result.differences.length} differences`);
  return `${out.join('\n')}\n`;
}

/** `redtail verify`: returns the exit status (0 agree, 1 differ, 2 usage/connection error). */
export async function verifyCommand(argv: string[]): Promise<number> {
  const values = parseVerifyArgs(argv);
  if (values === 2) return 2;
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
  let o: VerifyOptions;
  try {
    o = verifyOptionsFrom(values, master, postgres);
  } catch (err) {
    process.stderr.write(`redtail verify: ${(err as Error).message}\n`);
    return 2;
  }
  const result = await verifyWithProgress(o);
  if (!result) return 2;
  process.stdout.write(verifyReport(result, Number(values['max-diffs'] ?? 20)));
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
