import type { ByteView } from './Cursor.js';
import type { Layout, RdbValueType } from './types.js';

/** A zset score: a number, or the strings Redis prints for the non-finite doubles. */
export type Score = number | 'inf' | '-inf' | 'nan';

export interface StreamEntry {
  /** "ms-seq". */
  id: string;
  fields: Array<[Buffer, Buffer]>;
}

export interface StreamPendingEntry {
  id: string;
  /** Last delivery time, ms since the epoch. */
  deliveryTime: number;
  deliveryCount: number;
  /** Owning consumer, or null for an entry in the XNACK zone (RDB 14) or left without owner. */
  consumer: Buffer | null;
  /** True for entries listed in the group's NACK zone (stream listpacks v5, Redis 8.8). */
  nacked?: boolean;
}

export interface StreamConsumer {
  name: Buffer;
  seenTime: number;
  /** null before stream listpacks v3 (Redis 7.2), which did not store it. */
  activeTime: number | null;
  pending: string[];
}

export interface StreamGroup {
  name: Buffer;
  lastId: string;
  /** null when the file predates it (v1) or Redis stored the "invalid" marker. */
  entriesRead: number | string | null;
  pending: StreamPendingEntry[];
  consumers: StreamConsumer[];
}

export interface StreamIdmpProducer {
  pid: Buffer;
  entries: Array<{ iid: Buffer; id: string }>;
}

export interface StreamValue {
  /** Live entries in ID order. */
  entries: StreamEntry[];
  /** IDs of deleted entries still present as tombstones in the listpacks (XRANGE does not show them). */
  deleted: string[];
  length: number;
  lastId: string;
  /** Present from stream listpacks v2 (Redis 7.0). */
  firstId?: string;
  maxDeletedEntryId?: string;
  entriesAdded?: number | string;
  groups: StreamGroup[];
  /** Idempotent-producer state (stream listpacks v4, Redis 8.6). */
  idmp?: {
    duration: number | string;
    maxEntries: number | string;
    producers: StreamIdmpProducer[];
    iidsAdded: number | string;
    iidsDuplicates: number | string;
  };
}

export interface ModuleInfo {
  /** The 9-character module type name encoded in the module id. */
  name: string;
  encodingVersion: number;
  /** The 64-bit module type id as a decimal string. */
  id: string;
}

/**
 * The decoded value, by type:
 * - string: Buffer
 * - list, set: Buffer[]
 * - zset: Array<[member, score]>, in Redis order (score ascending, then member bytes) for whole values
 * - hash: Array<[field, value]> (field names are arbitrary bytes, so pairs rather than an object)
 * - stream: StreamValue
 * - module: Buffer (the module value's serialized bytes, opaque)
 */
export type RdbValue = Buffer | Buffer[] | Array<[Buffer, Score]> | Array<[Buffer, Buffer]> | StreamValue;

export interface RdbKeyRecord {
  db: number;
  key: Buffer;
  type: RdbValueType;
  /** Encoding name as stored (e.g. "hash-listpack", "list-quicklist2"). */
  encoding: string;
  /** The RDB object type byte. */
  rdbType: number;
  layout: Layout;
  /** Absolute expiry in ms since the epoch, or null. */
  expireAt: number | null;
  /** LRU idle seconds (RDB_OPCODE_IDLE), when the file stores it. */
  idle?: number;
  /** LFU counter (RDB_OPCODE_FREQ), when the file stores it. */
  freq?: number;
  /** Undefined when the parser runs with `values: false` (stats mode). */
  value: RdbValue | undefined;
  /** Hashes with per-field expiry: [field, absolute ms] for each field that has one. */
  fieldExpireAt?: Array<[Buffer, number]>;
  module?: ModuleInfo;
  /** Raw KEY_META (Redis 8.6+) bytes that preceded the key, opaque. */
  keyMeta?: Buffer;
  /** Absolute offset of the record's first byte (its type byte) and its size in the file. */
  offset: number;
  size: number;
  /**
   * Streaming mode only (a value larger than `streamThreshold`): this record carries one part of the value.
   * Parts are numbered from 0; the one with `last: true` ends the key. A value that fits is one record without
   * these fields.
   */
  part?: number;
  last?: boolean;
}

/**
 * A string key (type RDB_TYPE_STRING) handed to `onStringKey` without Buffers: the key's and value's bytes are
 * located by ByteViews into the input or a scratch buffer. One object, reused for every key: its fields are valid
 * only during the call.
 */
export interface RdbStringKey {
  db: number;
  key: ByteView;
  value: ByteView;
  /** Absolute expiry in ms since the epoch, or null. */
  expireAt: number | null;
  /** Absolute offset of the record's first byte (its type byte) and its size in the file. */
  offset: number;
  size: number;
}

/** Layouts whose whole value is one packed blob that `onPackedKey` takes (RdbParserOptions). */
export type DirectPackedLayout = 'intset' | 'set-listpack' | 'zset-listpack' | 'hash-listpack';

/**
 * A key whose value is one intset or listpack blob, handed to `onPackedKey` without decoding it into Buffers: the
 * parser has already walked and checked the blob, so walking it again (walkListpack, walkIntset) cannot fail. Reused
 * for every key: valid only during the call.
 */
export interface RdbPackedKey {
  db: number;
  key: ByteView;
  type: RdbValueType;
  encoding: string;
  layout: DirectPackedLayout;
  /** The blob's bytes, and the absolute offset its walk reports errors at. */
  blob: ByteView;
  blobBase: number;
  expireAt: number | null;
  offset: number;
  size: number;
}

export interface RdbSummary {
  /** Numeric RDB version from the header (Valkey 9: 80). */
  version: number;
  flavor: 'redis' | 'valkey';
  keys: number;
  /** Keys per db number. */
  keysPerDb: Record<number, number>;
  bytes: number;
  /**
   * "ok" (verified), "disabled" (stored as zero), "absent" (RDB < 5), "skipped" (ignoreChecksum), "unchecked"
   * (left to the caller: RdbParserOptions.checksum false).
   */
  checksum: 'ok' | 'disabled' | 'absent' | 'skipped' | 'unchecked';
  aux: Record<string, string>;
  replId: string | null;
  replOffset: number | null;
  functions: number;
}
