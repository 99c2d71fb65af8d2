/**
 * Shared machinery for the real-server round trips (redisRoundTrip*.test.ts): take the RDB of a live server in
 * every way a server hands one out (SAVE, BGSAVE, a replication snapshot sent with `$<len>` and a diskless one
 * framed by `$EOF:<mark>`, the RDB base file of a multi-part AOF), parse each whole and in small chunks, and compare every key with what the same server
 * answers to typed commands (GET, LRANGE, HGETALL, HPEXPIRETIME, XINFO STREAM FULL, ...). DUMP payloads of every
 * key go through `decodeDumpPayload` and are held to the same answers.
 *
 * What each server version writes (RDB version, stream type, which encodings exist) comes from its rdb.h/rdb.c and
 * is listed in TRAITS; the values themselves always come from the live server.
 */
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { expect } from 'vitest';
import { decodeDumpPayload } from '../../src/rdb/dump.js';
import { RdbParser, type RdbParserOptions } from '../../src/rdb/RdbParser.js';
import type { ModuleInfo, RdbKeyRecord, RdbSummary, Score, StreamValue } from '../../src/rdb/records.js';
import type { RedisServer } from '../harness/RedisServer.js';
import { type RedisBinaryInfo, type RedisVersion, redisBinaryInfo } from '../harness/redisVersions.js';
import type { TestScope } from '../harness/TestScope.js';

export const ROUND_TRIP_VERSIONS = ['7.0', '8.0', 'valkey-8.1'] as const satisfies readonly RedisVersion[];
export type RoundTripVersion = (typeof ROUND_TRIP_VERSIONS)[number];

/** What a server version writes, from its src/rdb.h and src/rdb.c (never from our parser). */
export interface ServerTraits {
  /** RDB_VERSION: the file header's number and the DUMP payload footer's. */
  rdbVersion: number;
  /** The AUX field that names the server version. */
  versionAux: 'redis-ver' | 'valkey-ver';
  /** INFO field with the server's own version. */
  infoVersion: 'redis_version' | 'valkey_version';
  /** Small lists are OBJ_ENCODING_LISTPACK (Redis 7.2+), not a one-node quicklist. */
  listpackLists: boolean;
  /** Small non-integer sets are OBJ_ENCODING_LISTPACK (7.2+) and `set-max-listpack-*` exists. */
  listpackSets: boolean;
  /** RDB type of streams: RDB_TYPE_STREAM_LISTPACKS_2 (7.0) or _3 (7.2+). */
  streamType: number;
  /** Hash field expiry (HEXPIRE & co., Redis 7.4+): listpackex / hashtable-with-TTL encodings. */
  fieldExpiry: boolean;
  /** The built-in vectorset module (Redis 8.0). */
  vectorSets: boolean;
  /** How cluster mode records per-slot key counts: RDB_OPCODE_SLOT_INFO (Redis 7.4+), a `slot-info` AUX field
   *  per slot (Valkey 8.0+), or nothing (7.0). */
  slotInfo: 'opcode' | 'aux' | 'none';
}

export const TRAITS: Record<RoundTripVersion, ServerTraits> = {
  '7.0': {
    rdbVersion: 10,
    versionAux: 'redis-ver',
    infoVersion: 'redis_version',
    listpackLists: false,
    listpackSets: false,
    streamType: 19,
    fieldExpiry: false,
    vectorSets: false,
    slotInfo: 'none',
  },
  '8.0': {
    rdbVersion: 12,
    versionAux: 'redis-ver',
    infoVersion: 'redis_version',
    listpackLists: true,
    listpackSets: true,
    streamType: 21,
    fieldExpiry: true,
    vectorSets: true,
    slotInfo: 'opcode',
  },
  'valkey-8.1': {
    rdbVersion: 11,
    versionAux: 'valkey-ver',
    infoVersion: 'valkey_version',
    listpackLists: true,
    listpackSets: true,
    streamType: 21,
    fieldExpiry: false,
    vectorSets: false,
    slotInfo: 'aux',
  },
};

export type RoundTripServerInfo = RedisBinaryInfo & { version: RoundTripVersion };

/** Every round-trip version, with the binary this machine has for it or the reason it has none. */
export function roundTripServers(): Promise<RoundTripServerInfo[]> {
  return Promise.all(
    ROUND_TRIP_VERSIONS.map(async (version) => ({ ...(await redisBinaryInfo(version)), version })),
  );
}

/**
 * A server of `info`'s version with `config` (DEBUG enabled), checked to report exactly that version in INFO, and a
 * client of it; both stopped by `scope`.
 */
export async function startServer(
  scope: TestScope,
  info: RoundTripServerInfo,
  config: Record<string, string> = {},
): Promise<{ server: RedisServer; c: Redis }> {
  if (info.path === null) throw new Error(info.reason);
  const server = await scope.server({
    binary: info.path,
    config: { 'enable-debug-command': 'yes', ...config },
  });
  const fields = await server.info('server');
  expect(fields[TRAITS[info.version].infoVersion]).toBe(info.exact);
  return { server, c: server.client() };
}

/** What OBJECT ENCODING says of `key`. */
export async function encodingOf(c: Redis, key: string): Promise<string> {
  return (await c.object('ENCODING', key)) as string;
}

// ---------------------------------------------------------------------------------------------------------------
// Taking the RDB

export interface Snapshot {
  how: 'SAVE' | 'BGSAVE' | 'replication ($len)' | 'replication ($EOF:)' | 'AOF base';
  rdb: Buffer;
  /** For replication snapshots: what +FULLRESYNC said. */
  fullresync?: { replid: string; offset: number };
}

/**
 * SAVE, BGSAVE, a full resync both disk-based and diskless, and the RDB base file of a multi-part AOF (turning
 * `appendonly` on rewrites the AOF with an RDB preamble), in that order; the dataset must not change meanwhile.
 */
export async function takeSnapshots(server: RedisServer, c: Redis): Promise<Snapshot[]> {
  const file = path.join(server.dir, 'dump.rdb');
  expect(await c.save()).toBe('OK');
  const save = readFileSync(file);
  await bgsave(c);
  const bg = readFileSync(file);
  const disk = await replicationSnapshot(server.port, c, false);
  const diskless = await replicationSnapshot(server.port, c, true);
  return [
    { how: 'SAVE', rdb: save },
    { how: 'BGSAVE', rdb: bg },
    disk,
    diskless,
    { how: 'AOF base', rdb: await aofBase(server, c) },
  ];
}

async function aofBase(server: RedisServer, c: Redis): Promise<Buffer> {
  expect(await c.config('SET', 'appendonly', 'yes')).toBe('OK');
  for (;;) {
    const p = await persistence(c);
    if (p.aof_rewrite_in_progress === '0' && p.aof_rewrite_scheduled === '0' && p.aof_enabled === '1') {
      expect(p.aof_last_bgrewrite_status).toBe('ok');
      break;
    }
    await sleep(5);
  }
  const dir = path.join(server.dir, 'appendonlydir');
  const base = readdirSync(dir).filter((f) => f.endsWith('.base.rdb'));
  expect(base).toHaveLength(1);
  return readFileSync(path.join(dir, base[0]!));
}

async function persistence(c: Redis): Promise<Record<string, string>> {
  const text = (await c.info('persistence')) as string;
  return Object.fromEntries(
    text
      .split('\r\n')
      .filter((l) => l.includes(':'))
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]),
  );
}

async function bgsave(c: Redis): Promise<void> {
  await c.bgsave();
  // BGSAVE forks before it replies, so the child is in progress until it is done.
  for (;;) {
    const p = await persistence(c);
    if (p.rdb_bgsave_in_progress === '0') {
      expect(p.rdb_last_bgsave_status).toBe('ok');
      return;
    }
    await sleep(5);
  }
}

/**
 * Plays a replica up to the end of the full-resync payload: PING, REPLCONF capa eof psync2, PSYNC ? -1. With
 * `repl-diskless-sync no` the master sends `$<len>` and its BGSAVE file; with `yes` it streams the RDB from the
 * fork as `$EOF:<40-byte mark>`, the RDB, then the mark.
 */
export async function replicationSnapshot(port: number, c: Redis, diskless: boolean): Promise<Snapshot> {
  await c.call('CONFIG', 'SET', 'repl-diskless-sync', diskless ? 'yes' : 'no');
  const socket = net.connect(port, '127.0.0.1');
  let buf: Buffer = Buffer.alloc(0);
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  socket.on('data', (d: Buffer) => {
    buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
    wake?.();
  });
  const stop = (err: Error) => {
    failure ??= err;
    wake?.();
  };
  socket.on('error', stop);
  socket.on('close', () => stop(new Error('the master closed the replication link')));
  const more = () =>
    failure
      ? Promise.reject(failure)
      : new Promise<void>((res) => {
          wake = () => {
            wake = undefined;
            res();
          };
        });
  const line = async (): Promise<string> => {
    for (;;) {
      // A master sends bare newlines as keepalives while it prepares the payload.
      while (buf[0] === 0x0a) buf = buf.subarray(1);
      const i = buf.indexOf('\r\n');
      if (i >= 0) {
        const l = buf.toString('latin1', 0, i);
        buf = buf.subarray(i + 2);
        return l;
      }
      await more();
    }
  };
  const command = (...args: string[]) => {
    socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    return line();
  };
  try {
    await new Promise<void>((res, rej) => {
      socket.once('connect', res);
      socket.once('error', rej);
    });
    expect(await command('PING')).toBe('+PONG');
    expect(await command('REPLCONF', 'capa', 'eof', 'capa', 'psync2')).toBe('+OK');
    const reply = await command('PSYNC', '?', '-1');
    const m = /^\+FULLRESYNC ([0-9a-f]{40}) (\d+)$/.exec(reply);
    expect(m, reply).not.toBeNull();
    const fullresync = { replid: m![1]!, offset: Number(m![2]) };
    const header = await line();
    let rdb: Buffer;
    if (diskless) {
      expect(header).toMatch(/^\$EOF:.{40}$/);
      const mark = Buffer.from(header.slice(5), 'latin1');
      while (!buf.includes(mark)) await more();
      rdb = Buffer.from(buf.subarray(0, buf.indexOf(mark)));
    } else {
      expect(header).toMatch(/^\$\d+$/);
      const len = Number(header.slice(1));
      while (buf.length < len) await more();
      rdb = Buffer.from(buf.subarray(0, len));
    }
    return { how: diskless ? 'replication ($EOF:)' : 'replication ($len)', rdb, fullresync };
  } finally {
    socket.destroy();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing

export interface Parsed {
  records: RdbKeyRecord[];
  functions: Buffer[];
  slotInfo: Array<[slot: number, keys: number, expires: number]>;
  summary: RdbSummary;
}

/** Parses `rdb` fed in chunks of `chunk` bytes. */
export function parseRdb(
  rdb: Buffer,
  chunk: number,
  opts: Omit<RdbParserOptions, 'onKey' | 'onFunction' | 'onSlotInfo'> = {},
): Parsed {
  const records: RdbKeyRecord[] = [];
  const functions: Buffer[] = [];
  const slotInfo: Parsed['slotInfo'] = [];
  const parser = new RdbParser({
    onKey: (r) => records.push(r),
    onFunction: (code) => functions.push(code),
    onSlotInfo: (slot, keys, expires) => slotInfo.push([slot, keys, expires]),
    ...opts,
  });
  for (let i = 0; i < rdb.length; i += chunk) parser.write(rdb.subarray(i, i + chunk));
  return { records, functions, slotInfo, summary: parser.end() };
}

export const id = (db: number, key: Buffer | string): string => `${db}:${Buffer.from(key).toString('hex')}`;

// ---------------------------------------------------------------------------------------------------------------
// What the server says

export interface StreamTruth {
  range: Array<[Buffer, Buffer[]]>;
  /** XINFO STREAM key FULL COUNT 0, as nested objects. */
  info: Record<string, unknown>;
}

export interface KeyTruth {
  db: number;
  key: Buffer;
  /** TYPE: a core type name, or a module type's name. */
  type: string;
  /** OBJECT ENCODING. */
  encoding: string;
  /** PEXPIRETIME, null for none. */
  expireAt: number | null;
  value?: Buffer | Buffer[] | Array<[Buffer, Score]> | Array<[Buffer, Buffer]>;
  /** Hashes on servers with field expiry: HPEXPIRETIME of every field that has one, sorted by field. */
  fieldExpireAt?: Array<[Buffer, number]>;
  stream?: StreamTruth;
  /** Module values: the DUMP payload. */
  dump?: Buffer;
}

export type Truth = Map<string, KeyTruth>;

const CORE_TYPES = new Set(['string', 'list', 'set', 'zset', 'hash', 'stream']);

function pairs(flat: Buffer[]): Array<[Buffer, Buffer]> {
  const out: Array<[Buffer, Buffer]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

const byFirst = (a: [Buffer, unknown], b: [Buffer, unknown]) => Buffer.compare(a[0], b[0]);

function redisScore(s: Buffer): Score {
  const t = s.toString();
  return t === 'inf' ? 'inf' : t === '-inf' ? '-inf' : t === 'nan' ? 'nan' : Number(t);
}

/** A flat [name, value, name, value, ...] reply as an object. */
export function kv(arr: unknown): Record<string, unknown> {
  const a = arr as unknown[];
  const out: Record<string, unknown> = {};
  for (let i = 0; i < a.length; i += 2) out[String(a[i])] = a[i + 1];
  return out;
}

/** Every key of every database with its value, read with typed commands (which touch LRU/LFU: read those first). */
export async function serverTruth(c: Redis, traits: ServerTraits): Promise<Truth> {
  const truth: Truth = new Map();
  // INFO keyspace lists the non-empty databases (and cluster mode allows SELECT 0 only).
  const keyspace = (await c.info('keyspace')) as string;
  const dbs = [...keyspace.matchAll(/^db(\d+):keys=(\d+)/gm)].map(
    (m) => [Number(m[1]), Number(m[2])] as const,
  );
  for (const [db, size] of dbs) {
    await c.select(db);
    const keys: Buffer[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await c.scanBuffer(cursor, 'COUNT', 1000);
      cursor = next.toString();
      keys.push(...batch);
    } while (cursor !== '0');
    expect(new Set(keys.map((k) => k.toString('hex'))).size).toBe(size);
    for (const key of keys) truth.set(id(db, key), await keyTruth(c, db, key, traits));
  }
  await c.select(0);
  return truth;
}

async function keyTruth(c: Redis, db: number, key: Buffer, traits: ServerTraits): Promise<KeyTruth> {
  const type = await c.type(key);
  const encoding = (await c.object('ENCODING', key)) as string;
  const pexpiretime = Number(await c.call('PEXPIRETIME', key));
  const t: KeyTruth = { db, key, type, encoding, expireAt: pexpiretime < 0 ? null : pexpiretime };
  switch (type) {
    case 'string':
      t.value = (await c.getBuffer(key))!;
      break;
    case 'list':
      t.value = await c.lrangeBuffer(key, 0, -1);
      break;
    case 'set':
      t.value = (await c.smembersBuffer(key)).sort(Buffer.compare);
      break;
    case 'zset': {
      const flat = (await c.callBuffer('ZRANGE', key, 0, -1, 'WITHSCORES')) as Buffer[];
      t.value = pairs(flat).map(([m, s]): [Buffer, Score] => [m, redisScore(s)]);
      break;
    }
    case 'hash': {
      const fields = pairs((await c.callBuffer('HGETALL', key)) as Buffer[]).sort(byFirst);
      t.value = fields;
      // A plain listpack hash has no field TTLs by construction (the first one makes it listpackex); asking would
      // cost a listpack scan per field.
      if (traits.fieldExpiry && encoding !== 'listpack') {
        const times = (await c.call(
          'HPEXPIRETIME',
          key,
          'FIELDS',
          fields.length,
          ...fields.map(([f]) => f),
        )) as number[];
        t.fieldExpireAt = [];
        fields.forEach(([f], i) => {
          expect(times[i], `HPEXPIRETIME of a field HGETALL listed`).not.toBe(-2);
          if (times[i]! >= 0) t.fieldExpireAt!.push([f, times[i]!]);
        });
      } else if (traits.fieldExpiry) t.fieldExpireAt = [];
      break;
    }
    case 'stream':
      t.stream = {
        range: (await c.xrangeBuffer(key, '-', '+')) as Array<[Buffer, Buffer[]]>,
        info: kv(await c.call('XINFO', 'STREAM', key, 'FULL', 'COUNT', '0')),
      };
      break;
    default:
      t.dump = (await c.dumpBuffer(key))!;
  }
  return t;
}

// ---------------------------------------------------------------------------------------------------------------
// Comparing

/**
 * Deep equality that compares Buffers with Buffer.equals: vitest's toEqual walks typed arrays element by element,
 * which takes minutes for a megabyte string or a 100k-element list compared a dozen times.
 */
function same(a: unknown, b: unknown): boolean {
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b))
    return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b);
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!same(a[i], b[i])) return false;
    return true;
  }
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
    const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
    if (ka.length !== kb.length) return false;
    for (const k of ka)
      if (!same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
    return true;
  }
  return Object.is(a, b);
}

/** expect(got).toEqual(want), with a fast path for the (usual) equal case. */
export function expectSame(got: unknown, want: unknown, what: string): void {
  if (!same(got, want)) expect(got, what).toEqual(want);
}

/**
 * The RDB object type rdbSaveObjectType picks for an object of this type and OBJECT ENCODING (src/rdb.c): lists
 * are always saved as QUICKLIST_2 (a listpack list as one node), and a hashtable hash only uses HASH_METADATA
 * when some field has a TTL.
 */
export function expectedRdbType(t: KeyTruth, traits: ServerTraits): number {
  if (!CORE_TYPES.has(t.type)) return 7;
  switch (`${t.type}/${t.encoding}`) {
    case 'string/int':
    case 'string/embstr':
    case 'string/raw':
      return 0;
    case 'list/quicklist':
    case 'list/listpack':
      return 18;
    case 'set/hashtable':
      return 2;
    case 'set/intset':
      return 11;
    case 'set/listpack':
      return 20;
    case 'zset/skiplist':
      return 5;
    case 'zset/listpack':
      return 17;
    case 'hash/hashtable':
      return (t.fieldExpireAt?.length ?? 0) > 0 ? 24 : 4;
    case 'hash/listpack':
      return 16;
    case 'hash/listpackex':
      return 25;
    case 'stream/stream':
      return traits.streamType;
    default:
      throw new Error(`no expected RDB type for ${t.type} encoded as ${t.encoding}`);
  }
}

/** The parts of a record or DUMP payload that describe the value. */
export interface DecodedValue {
  type: RdbKeyRecord['type'];
  rdbType: number;
  value: RdbKeyRecord['value'];
  fieldExpireAt?: Array<[Buffer, number]> | undefined;
  module?: ModuleInfo | undefined;
}

/** Holds a decoded value (a whole record or a DUMP payload) to the server's answers about the key. */
export function expectValueMatches(
  got: DecodedValue,
  t: KeyTruth,
  traits: ServerTraits,
  label: string,
): void {
  const what = `${label}: db ${t.db} key ${JSON.stringify(t.key.toString('latin1').slice(0, 40))}`;
  expect(got.rdbType, `${what} (RDB type of ${t.type}/${t.encoding})`).toBe(expectedRdbType(t, traits));
  if (!CORE_TYPES.has(t.type)) {
    expect(got.type, what).toBe('module');
    expect(got.module?.name, what).toBe(t.type);
    // The module value's bytes are exactly what DUMP frames between the module id and the footer.
    const dump = t.dump!;
    const value = got.value as Buffer;
    expect(value.length, what).toBeGreaterThan(0);
    expect(
      Buffer.compare(value, dump.subarray(dump.length - 10 - value.length, dump.length - 10)),
      what,
    ).toBe(0);
    return;
  }
  expect(got.type, what).toBe(t.type);
  switch (t.type) {
    case 'set':
      expectSame([...(got.value as Buffer[])].sort(Buffer.compare), t.value, what);
      break;
    case 'hash': {
      expectSame([...(got.value as Array<[Buffer, Buffer]>)].sort(byFirst), t.value, what);
      const fe = [...(got.fieldExpireAt ?? [])].sort(byFirst);
      expectSame(fe, t.fieldExpireAt ?? [], `${what} field expiries`);
      break;
    }
    case 'stream':
      expectStreamMatches(got.value as StreamValue, t.stream!, traits, what);
      break;
    default:
      expectSame(got.value, t.value, what);
  }
  if (t.type !== 'hash') expect(got.fieldExpireAt, what).toBeUndefined();
}

function expectStreamMatches(s: StreamValue, t: StreamTruth, traits: ServerTraits, what: string): void {
  expectSame(
    s.entries.map((e) => e.id),
    t.range.map(([i]) => i.toString()),
    what,
  );
  expectSame(
    s.entries.map((e) => e.fields),
    t.range.map(([, f]) => pairs(f)),
    what,
  );
  const info = t.info;
  expect(s.length, what).toBe(info.length);
  expect(s.lastId, what).toBe(info['last-generated-id']);
  expect(s.maxDeletedEntryId, what).toBe(info['max-deleted-entry-id']);
  expect(s.entriesAdded, what).toBe(info['entries-added']);
  expect(s.firstId, what).toBe(info['recorded-first-entry-id']);
  // Tombstones are entries XRANGE does not show.
  const live = new Set(s.entries.map((e) => e.id));
  for (const d of s.deleted) expect(live.has(d), `${what}: deleted ${d} is also live`).toBe(false);
  const groups = (info.groups as unknown[]).map(kv);
  expect(s.groups.map((g) => g.name.toString()).sort(), what).toEqual(groups.map((g) => g.name).sort());
  for (const g of groups) {
    const gw = `${what} group ${g.name}`;
    const mine = s.groups.find((x) => x.name.toString() === g.name)!;
    expect(mine.lastId, gw).toBe(g['last-delivered-id']);
    expect(mine.entriesRead, gw).toBe(g['entries-read']);
    expect(
      mine.pending.map((p) => [p.id, p.consumer?.toString(), p.deliveryTime, p.deliveryCount]),
      gw,
    ).toEqual(g.pending);
    const consumers = (g.consumers as unknown[]).map(kv);
    expect(mine.consumers.map((x) => x.name.toString()).sort(), gw).toEqual(
      consumers.map((x) => x.name).sort(),
    );
    for (const cons of consumers) {
      const m = mine.consumers.find((x) => x.name.toString() === cons.name)!;
      expect(m.seenTime, gw).toBe(cons['seen-time']);
      // active-time came with stream listpacks v3 (7.2).
      expect(m.activeTime, gw).toBe(traits.streamType >= 21 ? cons['active-time'] : null);
      const cpel = cons.pending as Array<[string, number, number]>;
      expect(m.pending, gw).toEqual(cpel.map((p) => p[0]));
    }
  }
}

export interface CheckOptions {
  /** Exact server version, for the version AUX field. */
  exact: string;
  /** Chunk sizes to feed each RDB in; 0 stands for the whole RDB at once. */
  chunks?: number[];
  /**
   * The server runs an LRU or LFU maxmemory-policy, so keys carry IDLE or FREQ (checked by the caller). Otherwise
   * records must have neither.
   */
  evictionMeta?: boolean;
  /** `disabled` for a server with `rdbchecksum no`. */
  checksum?: 'ok' | 'disabled';
}

/**
 * Parses every snapshot in every chunking and holds each to the server: the same keys per database, each with
 * its type, RDB type, value, expiry and field expiries; plus the header version, checksum and AUX fields.
 * Returns the whole-file parses, in snapshot order.
 */
export function expectSnapshotsMatch(
  snapshots: Snapshot[],
  truth: Truth,
  traits: ServerTraits,
  opts: CheckOptions,
): Parsed[] {
  const out: Parsed[] = [];
  const keysPerDb: Record<number, number> = {};
  for (const t of truth.values()) keysPerDb[t.db] = (keysPerDb[t.db] ?? 0) + 1;
  for (const snap of snapshots) {
    // The header, read by hand: REDIS + 4 digits, whatever the server (Valkey 8.1 still writes REDIS0011).
    expect(snap.rdb.toString('latin1', 0, 9), snap.how).toBe(
      `REDIS${String(traits.rdbVersion).padStart(4, '0')}`,
    );
    for (const chunk of opts.chunks ?? [0, 4096, 7]) {
      const label = `${snap.how}, ${chunk === 0 ? 'whole' : `chunks of ${chunk} bytes`}`;
      const parsed = parseRdb(snap.rdb, chunk === 0 ? snap.rdb.length : chunk);
      const { summary, records } = parsed;
      expect(summary.version, label).toBe(traits.rdbVersion);
      expect(summary.checksum, label).toBe(opts.checksum ?? 'ok');
      expect(summary.bytes, label).toBe(snap.rdb.length);
      expect(summary.aux[traits.versionAux], label).toBe(opts.exact);
      expect(summary.aux['aof-base'], label).toBe(snap.how === 'AOF base' ? '1' : '0');
      if (snap.fullresync) {
        expect(summary.replId, label).toBe(snap.fullresync.replid);
        expect(summary.replOffset, label).toBe(snap.fullresync.offset);
      }
      expect(summary.keys, label).toBe(records.length);
      expect(summary.keysPerDb, label).toEqual(keysPerDb);
      expect(records.map((r) => id(r.db, r.key)).sort(), label).toEqual([...truth.keys()].sort());
      for (const rec of records) {
        const t = truth.get(id(rec.db, rec.key))!;
        expect(rec.part, label).toBeUndefined();
        if (!opts.evictionMeta) {
          expect(rec.idle, label).toBeUndefined();
          expect(rec.freq, label).toBeUndefined();
        }
        expect(rec.expireAt, `${label}: expiry of ${rec.key.toString('latin1')}`).toBe(t.expireAt);
        expectValueMatches(rec, t, traits, label);
      }
      if (chunk === 0) out.push(parsed);
    }
    expectStatsModeMatches(snap, truth, traits, keysPerDb);
    expectStreamingModeMatches(snap, truth, traits);
  }
  return out;
}

/** `values: false` (what `redtail rdb --stats` runs): the same keys, types and expiries, no values. */
function expectStatsModeMatches(
  snap: Snapshot,
  truth: Truth,
  traits: ServerTraits,
  keysPerDb: Record<number, number>,
): void {
  const label = `${snap.how}, values: false`;
  const { summary, records } = parseRdb(snap.rdb, 4096, { values: false });
  expect(summary.checksum, label).not.toBe('skipped');
  expect(summary.keys, label).toBe(truth.size);
  expect(summary.keysPerDb, label).toEqual(keysPerDb);
  for (const rec of records) {
    const t = truth.get(id(rec.db, rec.key));
    expect(t, label).toBeDefined();
    expect(rec.value, label).toBeUndefined();
    expect(rec.rdbType, label).toBe(expectedRdbType(t!, traits));
    expect(rec.expireAt, label).toBe(t!.expireAt);
  }
}

/**
 * A tiny `streamThreshold` (64 bytes): raw strings, element-by-element collections and quicklists come in parts
 * that reassemble to the server's value; everything else comes whole.
 */
function expectStreamingModeMatches(snap: Snapshot, truth: Truth, traits: ServerTraits): void {
  const label = `${snap.how}, streamThreshold 64`;
  const { summary, records } = parseRdb(snap.rdb, 4096, { streamThreshold: 64 });
  expect(summary.keys, label).toBe(truth.size);
  const byKey = new Map<string, RdbKeyRecord[]>();
  for (const rec of records) {
    const k = id(rec.db, rec.key);
    const list = byKey.get(k);
    if (list) list.push(rec);
    else byKey.set(k, [rec]);
  }
  expect([...byKey.keys()].sort(), label).toEqual([...truth.keys()].sort());
  for (const [k, recs] of byKey) {
    const t = truth.get(k)!;
    if (recs.length === 1 && recs[0]!.part === undefined) {
      expectValueMatches(recs[0]!, t, traits, label);
      continue;
    }
    expect(recs[0]!.rdbType, label).toBe(expectedRdbType(t, traits));
    expectPartsReassemble(recs, t, `${label}: ${t.key.toString('latin1').slice(0, 40)}`);
  }
}

/** DUMP every key: the payload decodes to the server's value, with the server's RDB version in its footer. */
export async function expectDumpsMatch(c: Redis, truth: Truth, traits: ServerTraits): Promise<void> {
  for (const t of truth.values()) {
    await c.select(t.db);
    const payload = (await c.dumpBuffer(t.key))!;
    const d = decodeDumpPayload(payload);
    expect(d.rdbVersion).toBe(traits.rdbVersion);
    expect(d.flavor).toBe('redis');
    expectValueMatches(d, t, traits, 'DUMP');
  }
  await c.select(0);
}

/** Snapshots every way, reads the server's view, and checks parses and DUMPs against it. */
export async function roundTrip(
  server: RedisServer,
  c: Redis,
  traits: ServerTraits,
  opts: CheckOptions,
): Promise<{ snapshots: Snapshot[]; truth: Truth; parsed: Parsed[] }> {
  const snapshots = await takeSnapshots(server, c);
  const truth = await serverTruth(c, traits);
  const parsed = expectSnapshotsMatch(snapshots, truth, traits, opts);
  await expectDumpsMatch(c, truth, traits);
  return { snapshots, truth, parsed };
}

/** One parsed record by db and key. */
export function recordOf(parsed: Parsed, db: number, key: string | Buffer): RdbKeyRecord {
  const rec = parsed.records.find((r) => r.db === db && Buffer.from(key).equals(r.key));
  if (!rec) throw new Error(`no record for ${db}:${key.toString()}`);
  return rec;
}

/**
 * Streaming mode: records of one key come in parts whose concatenation (values, and field expiries for hashes)
 * is the server's value. Returns the number of parts.
 */
export function expectPartsMatch(parsed: Parsed, t: KeyTruth, label: string): number {
  const parts = parsed.records.filter((r) => r.db === t.db && r.key.equals(t.key));
  expect(parts.length, label).toBeGreaterThan(1);
  expectPartsReassemble(parts, t, label);
  return parts.length;
}

function expectPartsReassemble(parts: RdbKeyRecord[], t: KeyTruth, label: string): void {
  // One comparison for all parts (tens of thousands of expect() calls would dominate the run).
  expectSame(
    parts.map((p) => [p.rdbType, p.part, p.last, p.expireAt]),
    parts.map((_, i) => [parts[0]!.rdbType, i, i === parts.length - 1, t.expireAt]),
    `${label}: part numbering`,
  );
  switch (t.type) {
    case 'string':
      expectSame(Buffer.concat(parts.map((p) => p.value as Buffer)), t.value, label);
      break;
    case 'list':
      expectSame(
        parts.flatMap((p) => p.value as Buffer[]),
        t.value,
        label,
      );
      break;
    case 'set':
      expectSame(parts.flatMap((p) => p.value as Buffer[]).sort(Buffer.compare), t.value, label);
      break;
    case 'zset': {
      const all = parts.flatMap((p) => p.value as Array<[Buffer, Score]>);
      const num = (s: Score) => (s === 'inf' ? Infinity : s === '-inf' ? -Infinity : Number(s));
      const order = (a: [Buffer, Score], b: [Buffer, Score]) =>
        num(a[1]) - num(b[1]) || Buffer.compare(a[0], b[0]);
      expectSame(all.sort(order), [...(t.value as Array<[Buffer, Score]>)].sort(order), label);
      break;
    }
    case 'hash':
      expectSame(parts.flatMap((p) => p.value as Array<[Buffer, Buffer]>).sort(byFirst), t.value, label);
      expectSame(parts.flatMap((p) => p.fieldExpireAt ?? []).sort(byFirst), t.fieldExpireAt ?? [], label);
      break;
    default:
      throw new Error(`${t.type} values are not streamed in parts`);
  }
}
