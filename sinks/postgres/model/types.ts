import type { EventOf, EventOp } from '../../../src/events/ChangeEvent.js';
import { type BlobRef, blobRefOf, isHuge, placeholder } from './blobRef.js';
/**
 * The in-memory form of a Redis value while a batch is applied. Byte strings inside collections are `latin1`
 * JavaScript strings: latin1 maps every byte to one UTF-16 code unit and back, so they are lossless, usable as Map
 * and Set keys, and compare (with `<`) in the same byte order Redis uses for zset ties and lex ranges.
 */
export type Bytes = string;

export interface StreamEntryModel {
  id: string;
  fields: Array<[Bytes, Bytes]>;
}

export interface StreamModel {
  /** Live entries by id, in id order (XADD only ever appends larger ids). */
  entries: Map<string, Array<[Bytes, Bytes]>>;
  lastId: string;
  maxDeletedEntryId: string;
  entriesAdded: number;
  /** Consumer groups in the mirror's JSON encoding; every group op is fetched from the master, never computed. */
  groups: unknown[];
}

export type RedisValue =
  /**
   * `blob`: a huge string (model/blobRef.ts) whose bytes are not in memory (`v` is empty); ops that need them fetch the
   * key from the master.
   */
  | { type: 'string'; v: Buffer; blob?: BlobRef }
  | { type: 'list'; v: Bytes[] }
  | { type: 'set'; v: Set<Bytes> }
  | { type: 'zset'; v: Map<Bytes, number> }
  | { type: 'hash'; v: Map<Bytes, Bytes>; ttl: Map<Bytes, number> }
  | { type: 'stream'; v: StreamModel };

export type RedisTypeName = RedisValue['type'];

/** The collection types a big value can be stored in member rows as (sinks/postgres/memberRows.ts). */
export type RowType = 'hash' | 'set' | 'zset' | 'list';

/** What the applier knows about a key stored one row per member (KeyEntry.rows). */
export interface RowState {
  type: RowType;
  /** Members when loaded (keys.member_rows). */
  size: number;
  /** The partial value handed to the model; the entry's value is still it when only named members changed. */
  partial: RedisValue | null;
  /** Blobs the loaded member rows referenced, by member (or list position): a changed row may drop its last reference. */
  blobs: Map<Bytes | number, string[]>;
}

/** One key of the working set of a batch. */
export interface KeyEntry {
  db: number;
  key: Buffer;
  value: RedisValue | null;
  /** Absolute ms since the epoch, or null. */
  expireAt: number | null;
  /** Offset at which a value fetched from the master replaces this one; null when the mirror is exact. */
  pendingOffset: number | null;
  dirty: boolean;
  /** The blobs the row in `keys` referenced when loaded (sinks/postgres/blobs.ts); they may become orphans. */
  blobs?: string[] | null;
  /** Set when the key's value is stored one row per member (sinks/postgres/memberRows.ts). */
  rows?: RowState | null;
  /** What the flush writes to `keys.member_rows`: the size of a row-stored value, else null. */
  memberRows?: number | null;
}

/** What an op handler may do besides changing entries. */
export interface ApplyContext {
  /** The entry of a key; every key an event names is loaded before it is applied. */
  entry(db: number, key: Buffer): KeyEntry;
  /**
   * The op's result cannot be computed from the mirror: the exact value is read from the master (DUMP at a known
   * offset) and replaces this key when the stream reaches that offset.
   */
  fetch(db: number, key: Buffer, reason: string): void;
  /** True when the key's current value is only provisional (a fetch is outstanding). */
  isPending(db: number, key: Buffer): boolean;
  /** Keeps the bytes of a huge byte string decoded by an op (RESTORE), not carried by the event, for the blob store. */
  keep(b: Buffer): void;
}

/** Thrown by an op handler that finds the mirror in a state the master could never have propagated from. */
export class Divergence extends Error {
  override readonly name = 'Divergence';
}

export function setValue(e: KeyEntry, value: RedisValue | null, expireAt: number | null | undefined): void {
  e.value = value;
  if (value === null) e.expireAt = null;
  else if (expireAt !== undefined) e.expireAt = expireAt;
  e.dirty = true;
}

export function touch(e: KeyEntry): void {
  e.dirty = true;
}

/** Deletes the key when its collection became empty, as Redis does after every removal. */
export function dropIfEmpty(e: KeyEntry): void {
  const v = e.value;
  if (!v) return;
  let empty = false;
  if (v.type === 'list') empty = v.v.length === 0;
  else if (v.type === 'set' || v.type === 'zset' || v.type === 'hash') empty = v.v.size === 0;
  if (empty) setValue(e, null, null);
  else e.dirty = true;
}

/** Returns the value when it has the expected type; null when the key is absent; throws on a type mismatch. */
export function typed<T extends RedisTypeName>(
  e: KeyEntry,
  type: T,
): Extract<RedisValue, { type: T }> | null {
  const v = e.value;
  if (v === null) return null;
  if (v.type !== type) throw new Divergence(`expected a ${type}, the mirror holds a ${v.type}`);
  return v as Extract<RedisValue, { type: T }>;
}

export function cloneValue(v: RedisValue): RedisValue {
  switch (v.type) {
    case 'string':
      return v.blob ? { type: 'string', v: v.v, blob: v.blob } : { type: 'string', v: Buffer.from(v.v) };
    case 'list':
      return { type: 'list', v: [...v.v] };
    case 'set':
      return { type: 'set', v: new Set(v.v) };
    case 'zset':
      return { type: 'zset', v: new Map(v.v) };
    case 'hash':
      return { type: 'hash', v: new Map(v.v), ttl: new Map(v.ttl) };
    case 'stream':
      return {
        type: 'stream',
        v: {
          entries: new Map(
            [...v.v.entries].map(([id, f]) => [id, f.map(([a, b]) => [a, b] as [Bytes, Bytes])]),
          ),
          lastId: v.v.lastId,
          maxDeletedEntryId: v.v.maxDeletedEntryId,
          entriesAdded: v.v.entriesAdded,
          groups: structuredClone(v.v.groups),
        },
      };
  }
}

/** A byte string of an event in the model's form: latin1, or a placeholder for a huge one (model/blobRef.ts). */
export function b(buf: Buffer): Bytes {
  return isHuge(buf) ? placeholder(blobRefOf(buf)) : buf.toString('latin1');
}

/**
 * A string value from bytes: a huge one keeps only its reference. Its bytes must reach the sink's blob store
 * (sinks/postgres/blobs.ts) by another way: an event's Buffers are kept by the applier, decoded ones by `keep`.
 */
export function stringValue(buf: Buffer): RedisValue {
  if (isHuge(buf)) return { type: 'string', v: EMPTY, blob: blobRefOf(buf) };
  return { type: 'string', v: Buffer.from(buf) };
}

const EMPTY = Buffer.alloc(0);

/** Throws when a string's bytes are not in memory; the caller fetches the key instead (see `typed`). */
export function bytesOf(v: Extract<RedisValue, { type: 'string' }>): Buffer {
  if (v.blob) throw new NeedsFetch('the string is stored as a blob');
  return v.v;
}

/** An op needs bytes the mirror keeps only as a blob reference: the key is read from the master instead. */
export class NeedsFetch extends Error {
  override readonly name = 'NeedsFetch';
}

export function buf(s: Bytes): Buffer {
  return Buffer.from(s, 'latin1');
}

/** Applies one op's events; the tables below map each op to its handler, so a handler sees its op's type. */
export type OpHandler<O extends EventOp> = (ev: EventOf<O>, ctx: ApplyContext) => void;
export type OpHandlers = { [O in EventOp]?: OpHandler<O> };
