import { isUtf8 } from 'node:buffer';
import {
  type BlobRef,
  blobFromJson,
  blobJson,
  blobRefOf,
  isHuge,
  isPlaceholder,
  mirrorBufferOrder,
  noteBlob,
  placeholder,
  refOfPlaceholder,
} from './blobRef.js';
import { type Bytes, buf, b as bytes, type RedisValue, type StreamModel, stringValue } from './types.js';

/**
 * The mirror's JSON encoding (docs/postgres.md): the one of docs/events.md (`toJsonValue`: valid UTF-8 as a string,
 * anything else as `{"base64": ...}`), except that UTF-8 containing NUL is base64 too, because jsonb rejects
 * `\u0000` in strings.
 */
export function encodeBytes(b: Buffer): string | { base64: string } | { blob: BlobRef } {
  if (isHuge(b)) {
    // A huge byte string is a reference to its blob (model/blobRef.ts), never one JS string.
    const r = blobRefOf(b);
    noteBlob(r);
    return blobJson(r);
  }
  return isUtf8(b) && !b.includes(0) ? b.toString('utf8') : { base64: b.toString('base64') };
}

/** Printable-or-control ASCII without NUL: the same text in latin1 and UTF-8, stored as itself (see encodeBytes). */
const PLAIN_ASCII = /^[\x01-\x7f]*$/;

export function encodeLatin1(s: Bytes): string | { base64: string } | { blob: BlobRef } {
  // The fast path gives what encodeBytes gives for such a string (valid UTF-8, no NUL), without a Buffer.
  if (PLAIN_ASCII.test(s)) return s;
  if (isPlaceholder(s)) {
    const r = refOfPlaceholder(s);
    noteBlob(r);
    return blobJson(r);
  }
  return encodeBytes(buf(s));
}

export function decodeToBuffer(v: unknown): Buffer {
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (blobFromJson(v))
    throw new Error('internal: the bytes of a blob are not in the value (model/blobRef.ts)');
  if (v && typeof v === 'object' && typeof (v as { base64?: unknown }).base64 === 'string')
    return Buffer.from((v as { base64: string }).base64, 'base64');
  if (typeof v === 'number') return Buffer.from(String(v), 'latin1');
  throw new Error(`not an encoded byte string: ${JSON.stringify(v)}`);
}

export function decodeToLatin1(v: unknown): Bytes {
  if (typeof v === 'string' && PLAIN_ASCII.test(v)) return v;
  const r = blobFromJson(v);
  if (r) return placeholder(r);
  return decodeToBuffer(v).toString('latin1');
}

/** Buffers anywhere inside a payload, encoded for jsonb (see encodeBytes). */
export function toJsonb(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return encodeBytes(value);
  if (Array.isArray(value)) return value.map(toJsonb);
  if (typeof value === 'number' && !Number.isFinite(value))
    return Number.isNaN(value) ? 'nan' : value > 0 ? 'inf' : '-inf';
  if (typeof value === 'bigint') return value.toString();
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value)) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = toJsonb(v);
    }
    return out;
  }
  return value;
}

export function scoreToJson(n: number): number | string {
  if (Number.isFinite(n)) return Object.is(n, -0) ? 0 : n;
  return n > 0 ? 'inf' : '-inf';
}

export function scoreFromJson(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v === 'inf' || v === '+inf') return Number.POSITIVE_INFINITY;
  if (v === '-inf') return Number.NEGATIVE_INFINITY;
  if (typeof v === 'string') return Number(v);
  throw new Error(`not a score: ${JSON.stringify(v)}`);
}

const byBytes = (a: Bytes, b: Bytes): number => (a < b ? -1 : a > b ? 1 : 0);

/** Zset members in Redis order: score ascending, ties by member bytes. */
export function sortedZset(z: Map<Bytes, number>): Array<[Bytes, number]> {
  return [...z.entries()].sort((x, y) => (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : byBytes(x[0], y[0])));
}

export function compareStreamIds(a: string, b: string): number {
  const [am, as] = splitId(a);
  const [bm, bs] = splitId(b);
  if (am !== bm) return am < bm ? -1 : 1;
  if (as !== bs) return as < bs ? -1 : 1;
  return 0;
}

export function splitId(id: string): [bigint, bigint] {
  const i = id.indexOf('-');
  return i < 0 ? [BigInt(id), 0n] : [BigInt(id.slice(0, i)), BigInt(id.slice(i + 1))];
}

/**
 * The stored JSON of a value. Sets and hashes have no order in Redis (a hashtable iterates in an order that depends
 * on its history), so the mirror sorts them by bytes: two equal datasets always have equal rows.
 */
export function valueToJson(v: RedisValue): unknown {
  switch (v.type) {
    case 'string':
      if (v.blob) {
        noteBlob(v.blob);
        return blobJson(v.blob);
      }
      return encodeBytes(v.v);
    case 'list':
      return v.v.map(encodeLatin1);
    case 'set':
      return [...v.v].sort(byBytes).map(encodeLatin1);
    case 'zset':
      return sortedZset(v.v).map(([m, s]) => [encodeLatin1(m), scoreToJson(s)]);
    case 'hash':
      return [...v.v.entries()]
        .sort((x, y) => byBytes(x[0], y[0]))
        .map(([f, x]) => [encodeLatin1(f), encodeLatin1(x)]);
    case 'stream':
      return streamToJson(v.v);
  }
}

function streamToJson(s: StreamModel): unknown {
  const entries = [...s.entries.entries()].map(([id, fields]) => ({
    id,
    fields: fields.map(([f, x]) => [encodeLatin1(f), encodeLatin1(x)]),
  }));
  return {
    entries,
    length: entries.length,
    lastId: s.lastId,
    firstId: entries.length > 0 ? entries[0]!.id : '0-0',
    maxDeletedEntryId: s.maxDeletedEntryId,
    entriesAdded: s.entriesAdded,
    groups: s.groups,
  };
}

/** Field TTLs of a hash as stored in `field_expire_at`: [[field, ms], ...] sorted by field, or null. */
export function fieldTtlToJson(v: RedisValue | null): unknown {
  if (v?.type !== 'hash' || v.ttl.size === 0) return null;
  return [...v.ttl.entries()].sort((x, y) => byBytes(x[0], y[0])).map(([f, ms]) => [encodeLatin1(f), ms]);
}

export function valueFromJson(type: string, json: unknown, fieldTtl: unknown): RedisValue {
  switch (type) {
    case 'string': {
      const r = blobFromJson(json);
      return r ? { type, v: Buffer.alloc(0), blob: r } : { type, v: decodeToBuffer(json) };
    }
    case 'list':
      return { type, v: (json as unknown[]).map(decodeToLatin1) };
    case 'set':
      return { type, v: new Set((json as unknown[]).map(decodeToLatin1)) };
    case 'zset':
      return {
        type,
        v: new Map(
          (json as Array<[unknown, unknown]>).map(([m, s]) => [decodeToLatin1(m), scoreFromJson(s)]),
        ),
      };
    case 'hash': {
      const ttl = new Map<Bytes, number>();
      if (Array.isArray(fieldTtl))
        for (const [f, ms] of fieldTtl as Array<[unknown, number]>) ttl.set(decodeToLatin1(f), Number(ms));
      return {
        type,
        v: new Map(
          (json as Array<[unknown, unknown]>).map(([f, x]) => [decodeToLatin1(f), decodeToLatin1(x)]),
        ),
        ttl,
      };
    }
    case 'stream': {
      const j = json as {
        entries: Array<{ id: string; fields: Array<[unknown, unknown]> }>;
        lastId: string;
        maxDeletedEntryId?: string;
        entriesAdded?: number | string;
        groups?: unknown[];
      };
      return {
        type,
        v: {
          entries: new Map(
            j.entries.map((e) => [
              e.id,
              e.fields.map(([f, x]) => [decodeToLatin1(f), decodeToLatin1(x)] as [Bytes, Bytes]),
            ]),
          ),
          lastId: j.lastId,
          maxDeletedEntryId: j.maxDeletedEntryId ?? '0-0',
          entriesAdded: Number(j.entriesAdded ?? j.entries.length),
          groups: j.groups ?? [],
        },
      };
    }
    default:
      throw new Error(`unknown type ${type} in the mirror`);
  }
}

interface RdbStreamLike {
  entries: Array<{ id: string; fields: Array<[Buffer, Buffer]> }>;
  lastId: string;
  maxDeletedEntryId?: string;
  entriesAdded?: number | string;
  groups?: Array<Record<string, unknown>>;
}

/** Consumer groups as the mirror stores them: names and consumers encoded, pending entries in id order. */
function groupsToJson(groups: Array<Record<string, unknown>>): unknown[] {
  return groups.map((g) => {
    const pending = ((g.pending as Array<Record<string, unknown>>) ?? []).map((p) => ({
      id: p.id,
      consumer: p.consumer ?? null,
      deliveryCount: p.deliveryCount,
      deliveryTime: p.deliveryTime,
    }));
    const consumers = ((g.consumers as Array<Record<string, unknown>>) ?? []).map((c) => ({
      name: c.name,
      seenTime: c.seenTime,
      activeTime: c.activeTime ?? null,
      pending: c.pending,
    }));
    return toJsonb({
      name: g.name,
      lastId: g.lastId,
      entriesRead: g.entriesRead ?? null,
      pending,
      consumers,
    });
  });
}

/**
 * A value as the RDB parser decodes it (snapshot events and DUMP payloads): string Buffer, list/set Buffer[],
 * zset [member, score] pairs, hash [field, value] pairs (+ field TTLs), stream {entries, groups, ...}.
 */
export function valueFromRdb(
  type: string,
  value: unknown,
  fieldExpireAt?: Array<[Buffer, number]>,
  keep?: (b: Buffer) => void,
): RedisValue {
  // Huge byte strings become references (model/blobRef.ts); `keep` gets their bytes when they must reach the blob
  // store and no event holds them (a DUMP decoded for a fetch or a RESTORE).
  const b = (x: Buffer): Bytes => {
    if (keep && isHuge(x)) keep(x);
    return bytes(x);
  };
  switch (type) {
    case 'string':
      if (keep && isHuge(value as Buffer)) keep(value as Buffer);
      return stringValue(value as Buffer);
    case 'list':
      return { type, v: (value as Buffer[]).map(b) };
    case 'set':
      return { type, v: new Set((value as Buffer[]).map(b)) };
    case 'zset':
      return {
        type,
        v: new Map((value as Array<[Buffer, unknown]>).map(([m, s]) => [b(m), scoreFromJson(s)])),
      };
    case 'hash': {
      const ttl = new Map<Bytes, number>();
      for (const [f, ms] of fieldExpireAt ?? []) ttl.set(b(f), ms);
      return {
        type,
        v: new Map((value as Array<[Buffer, Buffer]>).map(([f, x]) => [b(f), b(x)])),
        ttl,
      };
    }
    case 'stream': {
      const s = value as RdbStreamLike;
      return {
        type,
        v: {
          entries: new Map(
            s.entries.map((e) => [e.id, e.fields.map(([f, x]) => [b(f), b(x)] as [Bytes, Bytes])]),
          ),
          lastId: s.lastId,
          maxDeletedEntryId: s.maxDeletedEntryId ?? '0-0',
          entriesAdded: Number(s.entriesAdded ?? s.entries.length),
          groups: groupsToJson(s.groups ?? []),
        },
      };
    }
    default:
      throw new Error(`values of type ${type} cannot be mirrored`);
  }
}

/** The stored JSON texts of a snapshot value: `value` and, for hashes, `field_expire_at`. */
export interface SnapshotJson {
  type: string;
  json: string;
  /** JSON text of the field TTLs (`null` text when a hash has none), or SQL NULL for other types. */
  fieldTtl: string | null;
}

/** Byte order, huge byte strings last (model/blobRef.ts): the order valueToJson gives the model's latin1 strings. */
const byBuffer = mirrorBufferOrder;

/**
 * What `JSON.stringify(valueToJson(valueFromRdb(...)))` (and `fieldTtlToJson`) give for a snapshot value, built from
 * the parser's Buffers directly: the initial load encodes every value of the dataset once, and the model's maps and
 * latin1 strings are only needed to apply changes. Same texts (test/sinks/postgres/snapshotJson.test.ts); streams
 * and anything unusual take the model's path.
 */
export function snapshotJson(
  type: string,
  value: unknown,
  fieldExpireAt?: Array<[Buffer, number]>,
): SnapshotJson {
  switch (type) {
    case 'string':
      return { type, json: JSON.stringify(encodeBytes(value as Buffer)), fieldTtl: null };
    case 'list':
      return { type, json: JSON.stringify((value as Buffer[]).map(encodeBytes)), fieldTtl: null };
    case 'set':
      return {
        type,
        json: JSON.stringify([...(value as Buffer[])].sort(byBuffer).map(encodeBytes)),
        fieldTtl: null,
      };
    case 'hash': {
      const fields = [...(value as Array<[Buffer, Buffer]>)].sort((x, y) => byBuffer(x[0], y[0]));
      const ttls = fieldExpireAt?.length
        ? [...fieldExpireAt].sort((x, y) => byBuffer(x[0], y[0])).map(([f, ms]) => [encodeBytes(f), ms])
        : null;
      return {
        type,
        json: JSON.stringify(fields.map(([f, x]) => [encodeBytes(f), encodeBytes(x)])),
        fieldTtl: JSON.stringify(ttls),
      };
    }
    case 'zset': {
      const members = (value as Array<[Buffer, unknown]>).map(
        ([m, s]) => [m, scoreFromJson(s)] as [Buffer, number],
      );
      members.sort((x, y) => (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : byBuffer(x[0], y[0])));
      return {
        type,
        json: JSON.stringify(members.map(([m, s]) => [encodeBytes(m), scoreToJson(s)])),
        fieldTtl: null,
      };
    }
    default: {
      const v = valueFromRdb(type, value, fieldExpireAt);
      return {
        type: v.type,
        json: JSON.stringify(valueToJson(v)),
        fieldTtl: v.type === 'hash' ? JSON.stringify(fieldTtlToJson(v)) : null,
      };
    }
  }
}
