import { decodeBlob, isViewOf } from './blob.js';
import type { Cursor } from './Cursor.js';
import { decodeIntset } from './intset.js';
import { decodeListpack } from './listpack.js';
import { type PackedValue, packedToBuffer, parseScore } from './packedValue.js';
import type { ModuleInfo, RdbKeyRecord, Score } from './records.js';
import { readStream } from './stream.js';
import type { Layout } from './types.js';
import { decodeZiplist } from './ziplist.js';
import { decodeZipmap } from './zipmap.js';

/** Layouts whose value is a counted sequence of small units, parsed resumably one unit at a time. */
export function isCollectionLayout(layout: Layout): boolean {
  switch (layout) {
    case 'list':
    case 'set':
    case 'zset':
    case 'zset2':
    case 'hash':
    case 'hash-metadata':
    case 'hash-metadata-pre-ga':
    case 'valkey-hash2':
    case 'quicklist':
    case 'quicklist2':
      return true;
    default:
      return false;
  }
}

/** Redis caps field TTLs at EB_EXPIRE_TIME_MAX (2^48 - 1 ms); larger values mean a corrupt file. */
const EB_EXPIRE_TIME_MAX = 2 ** 48 - 1;

export function toScore(n: number): Score {
  if (n === Number.POSITIVE_INFINITY) return 'inf';
  if (n === Number.NEGATIVE_INFINITY) return '-inf';
  if (Number.isNaN(n)) return 'nan';
  return n;
}

function scoreValue(s: Score): number {
  return s === 'inf'
    ? Number.POSITIVE_INFINITY
    : s === '-inf'
      ? Number.NEGATIVE_INFINITY
      : s === 'nan'
        ? Number.NaN
        : s;
}

function compareZ(a: [Buffer, Score], b: [Buffer, Score]): number {
  const x = scoreValue(a[1]);
  const y = scoreValue(b[1]);
  if (x < y) return -1;
  if (x > y) return 1;
  return Buffer.compare(a[0], b[0]);
}

/**
 * Puts skiplist-encoded zset members in ZRANGE order. Redis ≥ 5 writes them from the highest score down (so
 * loading inserts at the head in O(1)), older versions in dict order; listpack encodings are already sorted.
 */
export function sortZset(pairs: Array<[Buffer, Score]>): Array<[Buffer, Score]> {
  let descending = true;
  for (let i = 1; i < pairs.length; i++) {
    if (compareZ(pairs[i - 1]!, pairs[i]!) < 0) {
      descending = false;
      break;
    }
  }
  if (descending) return pairs.reverse();
  return pairs.sort(compareZ);
}

/**
 * State of a collection value being read unit by unit. The parser keeps one of these across chunks; `step`
 * reads as many whole units as are buffered and leaves `lastPos` at the end of the last complete one.
 */
export class CollectionReader {
  items: Buffer[] = [];
  pairs: Array<[Buffer, Buffer]> = [];
  zpairs: Array<[Buffer, Score]> = [];
  fieldExpireAt: Array<[Buffer, number]> = [];
  /** Quicklist node blobs with their container kind (1 plain, 2 packed) and absolute offsets. */
  nodes: Buffer[] = [];
  nodeKinds: number[] = [];
  nodeOffsets: number[] = [];
  lastPos = 0;

  constructor(
    readonly layout: Layout,
    public remaining: number,
    readonly build: boolean,
    readonly minExpire: number,
  ) {}

  /** Reads units until the value is complete (returns true) or `stopAt` (a buffer index) is passed (false). */
  step(c: Cursor, stopAt: number): boolean {
    this.lastPos = c.pos;
    while (this.remaining > 0) {
      this.readUnit(c);
      this.remaining--;
      this.lastPos = c.pos;
      if (c.pos >= stopAt) return this.remaining === 0;
    }
    return true;
  }

  /**
   * Reads one unit of the layout (a member, a field and its value, a scored member, a quicklist node). One switch
   * per unit rather than one loop per layout: the branch is cheap next to reading a string, and `step` stays one loop.
   */
  private readUnit(c: Cursor): void {
    switch (this.layout) {
      case 'list':
      case 'set':
        if (this.build) this.items.push(c.readString());
        else c.skipString();
        return;
      case 'hash':
        this.readPair(c);
        return;
      case 'zset':
      case 'zset2':
        this.readScored(c, this.layout === 'zset2');
        return;
      case 'hash-metadata':
      case 'hash-metadata-pre-ga':
        this.readMetadataField(c);
        return;
      case 'valkey-hash2':
        this.readValkeyField(c);
        return;
      case 'quicklist':
      case 'quicklist2':
        this.readNode(c, this.layout === 'quicklist2');
        return;
      default:
        throw c.fail(`internal: ${this.layout} is not a collection layout`);
    }
  }

  /** A field and its value; returns the field when building (for the callers that attach a TTL to it). */
  private readPair(c: Cursor): Buffer | undefined {
    if (!this.build) {
      c.skipString();
      c.skipString();
      return undefined;
    }
    const f = c.readString();
    this.pairs.push([f, c.readString()]);
    return f;
  }

  /** A member and its score: a text double (RDB_TYPE_ZSET) or a binary one (RDB_TYPE_ZSET_2). */
  private readScored(c: Cursor, binary: boolean): void {
    if (this.build) {
      const m = c.readString();
      this.zpairs.push([m, toScore(binary ? c.binaryDouble() : c.textDouble())]);
    } else {
      c.skipString();
      if (binary) c.binaryDouble();
      else c.textDouble();
    }
  }

  /** Redis 7.4+'s hash with field TTLs: the TTL comes first, then the field and its value. */
  private readMetadataField(c: Cursor): void {
    const at = c.pos;
    const ttl = c.readLenBig();
    let expireAt = 0;
    if (ttl !== 0) {
      // RDB_TYPE_HASH_METADATA stores TTLs relative to the minimum (+1, as 0 means "none"); the 7.4 RC
      // variant stored absolute times.
      expireAt = this.layout === 'hash-metadata' ? Number(ttl) + this.minExpire - 1 : Number(ttl);
      if (expireAt > EB_EXPIRE_TIME_MAX) throw c.fail(`invalid hash field expiry ${expireAt}`, at);
    }
    const f = this.readPair(c);
    if (f !== undefined && expireAt !== 0) this.fieldExpireAt.push([f, expireAt]);
  }

  /** Valkey's hash with field TTLs: field, value, then an absolute expiry in ms. */
  private readValkeyField(c: Cursor): void {
    const f = this.readPair(c);
    const expireAt = c.int64LE();
    // Valkey writes -1 for fields without expiry.
    if (f !== undefined && expireAt > 0) this.fieldExpireAt.push([f, expireAt]);
  }

  /** A quicklist node: its container kind (quicklist 2 only: 1 plain, 2 packed) and its blob. */
  private readNode(c: Cursor, v2: boolean): void {
    let kind = 2;
    if (v2) {
      const at = c.pos;
      kind = c.readLen();
      if (kind !== 1 && kind !== 2) throw c.fail(`invalid quicklist node container ${kind}`, at);
    }
    const at = c.offset;
    if (!this.build) {
      c.skipString();
      return;
    }
    const blob = c.readString();
    this.nodes.push(blob);
    this.nodeKinds.push(kind);
    // Offset of the blob's bytes, or -1 - (string start) when LZF-compressed (see decodeBlob).
    const view = isViewOf(blob, c.buf);
    this.nodeOffsets.push(view ? c.base + (blob.byteOffset - c.buf.byteOffset) : -1 - at);
  }

  /** Moves the decoded units read so far into the record (as a whole value, or one part). */
  flushInto(rec: RdbKeyRecord, whole: boolean): void {
    if (!this.build) return;
    switch (this.layout) {
      case 'list':
      case 'set':
        rec.value = this.items;
        this.items = [];
        return;
      case 'zset':
      case 'zset2':
        rec.value = whole ? sortZset(this.zpairs) : this.zpairs;
        this.zpairs = [];
        return;
      case 'quicklist':
      case 'quicklist2': {
        const out: Buffer[] = [];
        for (let i = 0; i < this.nodes.length; i++) {
          const blob = this.nodes[i]!;
          const off = this.nodeOffsets[i]!;
          if (this.nodeKinds[i] === 1) {
            out.push(blob);
            continue;
          }
          const decode = this.layout === 'quicklist' ? decodeZiplist : decodeListpack;
          if (off >= 0) pushBuffers(out, decode(blob, 0, blob.length, off));
          else
            pushBuffers(
              out,
              decodeBlob(blob, blob, 0, -1 - off, (b) => decode(blob, 0, blob.length, b)),
            );
        }
        this.nodes = [];
        this.nodeKinds = [];
        this.nodeOffsets = [];
        rec.value = out;
        return;
      }
      default:
        rec.value = this.pairs;
        this.pairs = [];
        if (this.fieldExpireAt.length > 0 || this.layout !== 'hash') rec.fieldExpireAt = this.fieldExpireAt;
        this.fieldExpireAt = [];
    }
  }
}

function pushBuffers(out: Buffer[], vals: PackedValue[]): void {
  for (let i = 0; i < vals.length; i++) out.push(packedToBuffer(vals[i]!));
}

function pairsOf(vals: PackedValue[], what: string, c: Cursor, at: number): Array<[Buffer, Buffer]> {
  if (vals.length % 2 !== 0) throw c.fail(`${what} has an odd number of elements (${vals.length})`, at);
  const out: Array<[Buffer, Buffer]> = new Array(vals.length / 2);
  for (let i = 0, j = 0; i < vals.length; i += 2, j++)
    out[j] = [packedToBuffer(vals[i]!), packedToBuffer(vals[i + 1]!)];
  return out;
}

function zpairsOf(vals: PackedValue[], what: string, c: Cursor, at: number): Array<[Buffer, Score]> {
  if (vals.length % 2 !== 0) throw c.fail(`${what} has an odd number of elements (${vals.length})`, at);
  const out: Array<[Buffer, Score]> = new Array(vals.length / 2);
  for (let i = 0, j = 0; i < vals.length; i += 2, j++)
    out[j] = [packedToBuffer(vals[i]!), toScore(parseScore(vals[i + 1]!))];
  return out;
}

const MODULE_CHARSET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Splits a 64-bit module type id into its 9-character name (6 bits each, high first) and 10-bit version. */
export function moduleInfo(id: number | bigint): ModuleInfo {
  const big = BigInt(id);
  let name = '';
  for (let i = 0; i < 9; i++) name += MODULE_CHARSET[Number((big >> BigInt(64 - 6 * (i + 1))) & 63n)];
  return { name, encodingVersion: Number(big & 1023n), id: big.toString() };
}

/**
 * Walks a module value serialized with the module2 opcode framing (RDB_MODULE_OPCODE_* before every datum, up to
 * RDB_MODULE_OPCODE_EOF), as redis-check-rdb does for modules it has not loaded.
 */
export function skipModuleValue(c: Cursor): void {
  for (;;) {
    const at = c.pos;
    const op = c.readLen();
    switch (op) {
      case 0:
        return;
      case 1:
      case 2:
        c.readLenBig();
        break;
      case 3:
        c.binaryFloat();
        break;
      case 4:
        c.binaryDouble();
        break;
      case 5:
        c.skipString();
        break;
      default:
        throw c.fail(`unknown module value opcode ${op}`, at);
    }
  }
}

/** Reads a non-collection value (everything except isCollectionLayout) into `rec`. */
export function readAtomicValue(
  c: Cursor,
  layout: Layout,
  build: boolean,
  rec: RdbKeyRecord,
  streamVersion = 0,
): void {
  switch (layout) {
    case 'string':
      if (build) rec.value = c.readString();
      else c.skipString();
      return;
    case 'module-pre-ga':
      throw c.fail('internal: type-6 module values are located by the parser', c.pos);
    case 'module2': {
      const id = c.readLenBig();
      rec.module = moduleInfo(id);
      const start = c.pos;
      skipModuleValue(c);
      if (build) rec.value = c.buf.subarray(start, c.pos);
      return;
    }
    case 'stream':
      readStream(c, streamVersion, build, rec);
      return;
    case 'hash-listpack-ex':
      // The minimum field expiry comes first (for a future stream-to-flash path); the listpack has absolute TTLs.
      c.int64LE();
      break;
    default:
      break;
  }
  const at = c.offset;
  if (!build) {
    c.skipString();
    return;
  }
  const blob = c.readString();
  rec.value = decodeBlob(blob, c.buf, c.base, at, (base) => decodePacked(c, layout, blob, base, rec));
}

function decodePacked(
  c: Cursor,
  layout: Layout,
  blob: Buffer,
  at: number,
  rec: RdbKeyRecord,
): RdbKeyRecord['value'] {
  const n = blob.length;
  switch (layout) {
    case 'zipmap':
      return decodeZipmap(blob, 0, n, at);
    case 'list-ziplist': {
      const out: Buffer[] = [];
      pushBuffers(out, decodeZiplist(blob, 0, n, at));
      return out;
    }
    case 'intset': {
      const ints = decodeIntset(blob, 0, n, at);
      const out: Buffer[] = new Array(ints.length);
      for (let i = 0; i < ints.length; i++) out[i] = Buffer.from(String(ints[i]), 'latin1');
      return out;
    }
    case 'set-listpack': {
      const out: Buffer[] = [];
      pushBuffers(out, decodeListpack(blob, 0, n, at));
      return out;
    }
    case 'zset-ziplist':
      return zpairsOf(decodeZiplist(blob, 0, n, at), 'zset ziplist', c, at - c.base);
    case 'zset-listpack':
      return zpairsOf(decodeListpack(blob, 0, n, at), 'zset listpack', c, at - c.base);
    case 'hash-ziplist':
      return pairsOf(decodeZiplist(blob, 0, n, at), 'hash ziplist', c, at - c.base);
    case 'hash-listpack':
      return pairsOf(decodeListpack(blob, 0, n, at), 'hash listpack', c, at - c.base);
    case 'hash-listpack-ex':
    case 'hash-listpack-ex-pre-ga': {
      const vals = decodeListpack(blob, 0, n, at);
      if (vals.length % 3 !== 0)
        throw c.fail(`hash listpack-ex has ${vals.length} elements, not triplets`, at - c.base);
      const pairs: Array<[Buffer, Buffer]> = [];
      const fe: Array<[Buffer, number]> = [];
      for (let i = 0; i < vals.length; i += 3) {
        const f = packedToBuffer(vals[i]!);
        pairs.push([f, packedToBuffer(vals[i + 1]!)]);
        const ttl = vals[i + 2]!;
        const t = typeof ttl === 'object' ? Number(ttl.toString('latin1')) : Number(ttl);
        // HASH_LP_NO_TTL is 0.
        if (t !== 0) fe.push([f, t]);
      }
      rec.fieldExpireAt = fe;
      return pairs;
    }
    default:
      throw c.fail(`internal: no decoder for layout ${layout}`);
  }
}
