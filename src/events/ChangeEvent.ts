/**
 * The internal shape of a change event: a discriminated union by `op` (docs/events.md, config/event.schema.json),
 * so sinks switch on `op` and get the payload's type. Keys, values and arguments stay `Buffer`s until a sink encodes
 * them (see `NdjsonEncoder`), so binary data is never mangled and no string is built that nobody reads.
 *
 * Payload fields are listed in the order the normalizer sets them, which is the order they appear in the NDJSON
 * output (the encoder writes them in this order; test/events/NdjsonEncoder.test.ts proves it byte for byte).
 */
import type { ModuleInfo, RdbValue, StreamValue } from '../rdb/records.js';
import type { RdbValueType } from '../rdb/types.js';

/** Where an event sits in the master's replication stream. */
export interface EventSource {
  /** Replication id of the master history the offset belongs to. */
  replid: string;
  /** Replication offset at the end of the command that produced the event (for snapshot events: the +FULLRESYNC offset). */
  offset: number;
  /** Orders the several events one command (or one snapshot) produces; 0 for the first. */
  seq: number;
  /** Shared by every event of one MULTI/EXEC transaction. */
  txn?: string;
  /** True for events produced from the RDB snapshot. */
  snapshot: boolean;
}

/** Values an open (untyped) field can hold; Buffers are encoded by the sink. */
export type PayloadValue =
  | Buffer
  | string
  | number
  | boolean
  | null
  | undefined
  | readonly PayloadValue[]
  | { readonly [field: string]: PayloadValue };

/** Redis value types as they appear in the `type` field of command events (HyperLogLogs are strings). */
export type RedisType = 'string' | 'list' | 'set' | 'zset' | 'hash' | 'stream';

/** Fields every event has, in output order: `v`, `op`, `db`, [`key`, `type`, payload], `source`, `ts`. */
interface Envelope {
  /** Event schema version. */
  v: 1;
  db: number;
  /** Absent on keyspace-wide, server and control ops; declared on all so `event.key` reads on the union. */
  key?: Buffer;
  /** Absent on ops that work on any type (`del`, `expire`, ...) and on those without a key. */
  type?: RedisType | RdbValueType;
  source: EventSource;
  /** Time redtail received the command, ms since the epoch (the replication stream carries no timestamps). */
  ts: number;
}

interface Keyed<T extends RedisType | undefined> extends Envelope {
  key: Buffer;
  type: T;
}

/** A key op that works on any type (`del`, `expire`, ...): no `type` field. */
interface Untyped extends Envelope {
  key: Buffer;
  type?: undefined;
}

/** An op without a key (keyspace-wide, server, control). */
interface Keyless extends Envelope {
  key?: undefined;
  type?: undefined;
}

/** An integer that may exceed 2^53: a number when exact, else decimal text. */
export type BigIntText = number | string;
export type Side = 'left' | 'right';

// Strings
export interface SetEvent extends Keyed<'string'> {
  op: 'set';
  value: Buffer;
  /** null: no TTL after the op; absent: TTL unchanged (KEEPTTL). */
  expireAt?: number | null;
  expireApprox?: true;
}
export interface IncrbyEvent extends Keyed<'string'> {
  op: 'incrby';
  delta: BigIntText;
}
export interface IncrbyfloatEvent extends Keyed<'string'> {
  op: 'incrbyfloat';
  delta: string;
}
export interface AppendEvent extends Keyed<'string'> {
  op: 'append';
  value: Buffer;
}
export interface SetrangeEvent extends Keyed<'string'> {
  op: 'setrange';
  offset: number;
  value: Buffer;
}
export interface SetbitEvent extends Keyed<'string'> {
  op: 'setbit';
  offset: number;
  bit: 0 | 1;
}
export type BitfieldOp =
  | { kind: 'set'; encoding: string; offset: string; value: BigIntText }
  | { kind: 'incrby'; encoding: string; offset: string; increment: BigIntText }
  | { kind: 'overflow'; behavior: 'wrap' | 'sat' | 'fail' };
export interface BitfieldEvent extends Keyed<'string'> {
  op: 'bitfield';
  ops: BitfieldOp[];
}
export interface BitopEvent extends Keyed<'string'> {
  op: 'bitop';
  operation: string;
  sources: Buffer[];
}
export interface PfaddEvent extends Keyed<'string'> {
  op: 'pfadd';
  elements: Buffer[];
}
export interface PfmergeEvent extends Keyed<'string'> {
  op: 'pfmerge';
  sources: Buffer[];
}
export interface HllCacheEvent extends Keyed<'string'> {
  op: 'hll-cache';
}

// Keys and keyspace
export interface DelEvent extends Untyped {
  op: 'del';
}
export interface ExpireEvent extends Untyped {
  op: 'expire';
  expireAt: number;
  expireApprox?: true;
}
export interface PersistEvent extends Untyped {
  op: 'persist';
  expireAt: null;
}
export interface RenameEvent extends Untyped {
  op: 'rename';
  destKey: Buffer;
}
export interface MoveEvent extends Untyped {
  op: 'move';
  destDb: number;
}
export interface CopyEvent extends Untyped {
  op: 'copy';
  destKey: Buffer;
  destDb: number;
  replace: boolean;
}
export interface RestoreEvent extends Untyped {
  op: 'restore';
  payload: Buffer;
  replace: boolean;
  idleTime?: number;
  frequency?: number;
  expireAt: number | null;
  expireApprox?: true;
}
export interface StoreEvent extends Keyed<RedisType> {
  op: 'store';
  command: string;
  sources: Buffer[];
  args: Buffer[];
}
export interface FlushdbEvent extends Keyless {
  op: 'flushdb';
  async: boolean;
}
export interface FlushallEvent extends Keyless {
  op: 'flushall';
  async: boolean;
}
export interface SwapdbEvent extends Keyless {
  op: 'swapdb';
  db1: number;
  db2: number;
}

// Lists
export interface PushEvent extends Keyed<'list'> {
  op: 'push';
  side: Side;
  elements: Buffer[];
}
export interface PopEvent extends Keyed<'list'> {
  op: 'pop';
  side: Side;
  count: number;
}
export interface LmoveEvent extends Keyed<'list'> {
  op: 'lmove';
  destKey: Buffer;
  from: Side;
  to: Side;
}
export interface LinsertEvent extends Keyed<'list'> {
  op: 'linsert';
  position: 'before' | 'after';
  pivot: Buffer;
  element: Buffer;
}
export interface LsetEvent extends Keyed<'list'> {
  op: 'lset';
  index: number;
  element: Buffer;
}
export interface LremEvent extends Keyed<'list'> {
  op: 'lrem';
  count: number;
  element: Buffer;
}
export interface LtrimEvent extends Keyed<'list'> {
  op: 'ltrim';
  start: number;
  stop: number;
}

// Sets
export interface SaddEvent extends Keyed<'set'> {
  op: 'sadd';
  members: Buffer[];
}
export interface SremEvent extends Keyed<'set'> {
  op: 'srem';
  members: Buffer[];
}
export interface SmoveEvent extends Keyed<'set'> {
  op: 'smove';
  destKey: Buffer;
  member: Buffer;
}

// Sorted sets and geo
/** A sorted-set score on the stream: a number, or `"inf"`/`"-inf"`. */
export type StreamScore = number | string;
export interface ZaddEvent extends Keyed<'zset'> {
  op: 'zadd';
  members: Array<[member: Buffer, score: StreamScore]>;
  flags: string[];
}
export interface GeoaddEvent extends Keyed<'zset'> {
  op: 'geoadd';
  members: Array<[member: Buffer, longitude: number, latitude: number]>;
  flags: string[];
}
export interface ZremEvent extends Keyed<'zset'> {
  op: 'zrem';
  members: Buffer[];
}
export type ZremrangeEvent = Keyed<'zset'> & { op: 'zremrange' } & (
    | { by: 'rank'; start: number; stop: number }
    | { by: 'score' | 'lex'; min: Buffer; max: Buffer }
  );
export interface ZpopEvent extends Keyed<'zset'> {
  op: 'zpop';
  side: 'min' | 'max';
  count: number;
}

// Hashes
export interface HsetEvent extends Keyed<'hash'> {
  op: 'hset';
  fields: Array<[field: Buffer, value: Buffer]>;
  /** null: the fields lose their TTL; absent: kept (HSETEX KEEPTTL). */
  fieldExpireAt?: number | null;
  expireApprox?: true;
}
export interface HincrbyEvent extends Keyed<'hash'> {
  op: 'hincrby';
  field: Buffer;
  delta: BigIntText;
}
export interface HincrbyfloatEvent extends Keyed<'hash'> {
  op: 'hincrbyfloat';
  field: Buffer;
  delta: string;
}
export interface HdelEvent extends Keyed<'hash'> {
  op: 'hdel';
  fields: Buffer[];
}
export interface HexpireEvent extends Keyed<'hash'> {
  op: 'hexpire';
  fields: Buffer[];
  expireAt: number;
  expireApprox?: true;
  condition?: 'nx' | 'xx' | 'gt' | 'lt';
}
export interface HpersistEvent extends Keyed<'hash'> {
  op: 'hpersist';
  fields: Buffer[];
}

// Streams
export interface StreamTrim {
  strategy: 'maxlen' | 'minid';
  exact: boolean;
  threshold: string;
  limit?: number;
}
export type StreamPolicy = 'keepref' | 'delref' | 'acked';
/** XADD/XTRIM options, in the order the command gave them. */
export interface StreamTrimOptions {
  trim?: StreamTrim;
  nomkstream?: true;
  policy?: StreamPolicy;
}
export interface XaddEvent extends Keyed<'stream'>, StreamTrimOptions {
  op: 'xadd';
  id: string;
  fields: Array<[field: Buffer, value: Buffer]>;
}
export interface XtrimEvent extends Keyed<'stream'>, StreamTrimOptions {
  op: 'xtrim';
}
export interface XdelEvent extends Keyed<'stream'> {
  op: 'xdel';
  policy?: StreamPolicy;
  ids: string[];
}
export interface XackEvent extends Keyed<'stream'> {
  op: 'xack';
  group: Buffer;
  ids: string[];
}
export interface XackdelEvent extends Keyed<'stream'> {
  op: 'xackdel';
  group: Buffer;
  policy?: StreamPolicy;
  ids: string[];
}
/** XCLAIM's options, in the order the command gave them. */
export interface XclaimOptions {
  idle?: number;
  time?: number;
  retryCount?: number;
  force?: true;
  justId?: true;
  lastId?: string;
}
export interface XclaimEvent extends Keyed<'stream'>, XclaimOptions {
  op: 'xclaim';
  group: Buffer;
  consumer: Buffer;
  minIdle: number;
  ids: string[];
}
export interface XautoclaimEvent extends Keyed<'stream'> {
  op: 'xautoclaim';
  group: Buffer;
  consumer: Buffer;
  minIdle: number;
  start: string;
  count?: number;
  justId?: true;
}
export interface XgroupCreateEvent extends Keyed<'stream'> {
  op: 'xgroup-create';
  group: Buffer;
  id: string;
  mkstream: boolean;
  entriesRead?: number;
}
export interface XgroupSetidEvent extends Keyed<'stream'> {
  op: 'xgroup-setid';
  group: Buffer;
  id: string;
  entriesRead?: number;
}
export interface XgroupDestroyEvent extends Keyed<'stream'> {
  op: 'xgroup-destroy';
  group: Buffer;
}
export interface XgroupCreateconsumerEvent extends Keyed<'stream'> {
  op: 'xgroup-createconsumer';
  group: Buffer;
  consumer: Buffer;
}
export interface XgroupDelconsumerEvent extends Keyed<'stream'> {
  op: 'xgroup-delconsumer';
  group: Buffer;
  consumer: Buffer;
}
/** XSETID's options, in the order the command gave them. */
export interface XsetidOptions {
  entriesAdded?: BigIntText;
  maxDeletedId?: string;
}
export interface XsetidEvent extends Keyed<'stream'>, XsetidOptions {
  op: 'xsetid';
  id: string;
}

// Server
export interface FunctionLoadEvent extends Keyless {
  op: 'function-load';
  code: Buffer;
  replace: boolean;
}
export interface FunctionDeleteEvent extends Keyless {
  op: 'function-delete';
  library: Buffer;
}
export interface FunctionFlushEvent extends Keyless {
  op: 'function-flush';
  async: boolean;
}
export interface FunctionRestoreEvent extends Keyless {
  op: 'function-restore';
  payload: Buffer;
  policy: 'append' | 'replace' | 'flush';
}
export interface PublishEvent extends Keyless {
  op: 'publish';
  channel: Buffer;
  message: Buffer;
  sharded: boolean;
}
/** A command redtail could not normalize: every argument, name first. */
export interface UnknownCommandEvent extends Keyless {
  op: 'command';
  unknown: true;
  args: Buffer[];
  reason?: string;
}

/** Every event a replicated command can become. */
export type CommandEvent =
  | SetEvent
  | IncrbyEvent
  | IncrbyfloatEvent
  | AppendEvent
  | SetrangeEvent
  | SetbitEvent
  | BitfieldEvent
  | BitopEvent
  | PfaddEvent
  | PfmergeEvent
  | HllCacheEvent
  | DelEvent
  | ExpireEvent
  | PersistEvent
  | RenameEvent
  | MoveEvent
  | CopyEvent
  | RestoreEvent
  | StoreEvent
  | FlushdbEvent
  | FlushallEvent
  | SwapdbEvent
  | PushEvent
  | PopEvent
  | LmoveEvent
  | LinsertEvent
  | LsetEvent
  | LremEvent
  | LtrimEvent
  | SaddEvent
  | SremEvent
  | SmoveEvent
  | ZaddEvent
  | GeoaddEvent
  | ZremEvent
  | ZremrangeEvent
  | ZpopEvent
  | HsetEvent
  | HincrbyEvent
  | HincrbyfloatEvent
  | HdelEvent
  | HexpireEvent
  | HpersistEvent
  | XaddEvent
  | XtrimEvent
  | XdelEvent
  | XackEvent
  | XackdelEvent
  | XclaimEvent
  | XautoclaimEvent
  | XgroupCreateEvent
  | XgroupSetidEvent
  | XgroupDestroyEvent
  | XgroupCreateconsumerEvent
  | XgroupDelconsumerEvent
  | XsetidEvent
  | FunctionLoadEvent
  | FunctionDeleteEvent
  | FunctionFlushEvent
  | FunctionRestoreEvent
  | PublishEvent
  | UnknownCommandEvent;

/** The stream value of a `snapshot` event (docs/rdb.md): entries, groups, ids; Buffers inside. */
export type SnapshotStreamValue = { readonly [field: string]: unknown };

/** One key of the RDB snapshot (or one part of a huge one). */
export interface SnapshotEvent extends Envelope {
  op: 'snapshot';
  key: Buffer;
  type: RdbValueType;
  encoding: string;
  /** By type: string/module → bytes; list/set → bytes[]; zset → [member, score][]; hash → [field, value][]; stream → object. */
  value: Exclude<RdbValue, StreamValue> | SnapshotStreamValue | undefined;
  expireAt: number | null;
  fieldExpireAt?: Array<[field: Buffer, ms: number]>;
  module?: ModuleInfo;
  part?: number;
  last?: boolean;
}

/**
 * Control events frame snapshots and resyncs. Their fields beyond those named here are open (the schema says so):
 * decoders add facts such as `rdbVersion` or `checksum`, in the order they set them.
 */
export interface ResyncEvent extends Keyless {
  op: 'resync';
  reason?: string;
  requested?: { replid: string; offset: number };
  [fact: string]: unknown;
}
export interface SnapshotBeginEvent extends Keyless {
  op: 'snapshot-begin';
  resync?: boolean;
  interrupted?: boolean;
  [fact: string]: unknown;
}
export interface SnapshotEndEvent extends Keyless {
  op: 'snapshot-end';
  keys?: number;
  bytes?: number;
  [fact: string]: unknown;
}
export type ControlEvent = ResyncEvent | SnapshotBeginEvent | SnapshotEndEvent;

export type ChangeEvent = CommandEvent | SnapshotEvent | ControlEvent;
export type EventOp = ChangeEvent['op'];
export type CommandOp = CommandEvent['op'];
/** The event type of one op, e.g. `EventOf<'set'>` is `SetEvent`. */
export type EventOf<O extends EventOp> = Extract<ChangeEvent, { op: O }>;

/** The position a sink must remember to resume exactly: the master does not repeat SELECT after +CONTINUE. */
export interface ReplicationPosition {
  replid: string;
  offset: number;
  db: number;
}
