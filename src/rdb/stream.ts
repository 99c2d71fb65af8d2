import { decodeBlob } from './blob.js';
import { type Cursor, u64BE } from './Cursor.js';
import { decodeListpack } from './listpack.js';
import { type PackedValue, packedToBuffer } from './packedValue.js';
import type { RdbKeyRecord, StreamEntry, StreamGroup, StreamPendingEntry, StreamValue } from './records.js';

/** Stream entry flags inside a node listpack (src/t_stream.c). */
const FLAG_DELETED = 1;
const FLAG_SAMEFIELDS = 2;

const U64_MAX = (1n << 64n) - 1n;

function idPart(v: number | bigint): string {
  return typeof v === 'bigint' ? v.toString() : String(v);
}

function add(a: number | bigint, b: PackedValue): number | bigint {
  if (typeof b === 'object') throw new TypeError('stream ID delta is not an integer');
  if (typeof a === 'number' && typeof b === 'number') {
    const s = a + b;
    if (Number.isSafeInteger(s)) return s;
  }
  return BigInt.asUintN(64, BigInt(a) + BigInt(b));
}

function num(v: PackedValue | undefined, c: Cursor, at: number, what: string): number {
  if (typeof v !== 'number') throw c.fail(`corrupt stream listpack: ${what} is not a small integer`, at);
  return v;
}

/**
 * Decodes one stream node: the 16-byte master ID (ms and seq, uint64 big-endian) and its listpack, whose first
 * entry is the master entry (count, deleted, master fields, 0) followed by entries of
 * flags, ms-delta, seq-delta, [field count, fields and values | values of the master fields], lp-count.
 */
function decodeNode(
  c: Cursor,
  nodeKey: Buffer,
  lp: Buffer,
  at: number,
  entries: StreamEntry[],
  deleted: string[],
): void {
  const rel = at - c.base;
  if (nodeKey.length !== 16)
    throw c.fail(`stream node key is ${nodeKey.length} bytes, not a 16-byte stream ID`, rel);
  const hi = nodeKey.readUInt32BE(0);
  const msBase: number | bigint =
    hi < 0x200000 ? hi * 0x100000000 + nodeKey.readUInt32BE(4) : BigInt(u64BE(nodeKey, 0));
  const hi2 = nodeKey.readUInt32BE(8);
  const seqBase: number | bigint =
    hi2 < 0x200000 ? hi2 * 0x100000000 + nodeKey.readUInt32BE(12) : BigInt(u64BE(nodeKey, 8));
  const vals = decodeListpack(lp, 0, lp.length, at);
  let i = 0;
  const count = num(vals[i++], c, rel, 'entry count');
  const dels = num(vals[i++], c, rel, 'deleted count');
  const nMaster = num(vals[i++], c, rel, 'master field count');
  if (i + nMaster > vals.length) throw c.fail('corrupt stream listpack: master fields run past the end', rel);
  const master: Buffer[] = new Array(nMaster);
  for (let k = 0; k < nMaster; k++) master[k] = packedToBuffer(vals[i++]!);
  if (vals[i++] !== 0) throw c.fail('corrupt stream listpack: master entry not terminated by 0', rel);
  const total = count + dels;
  try {
    for (let e = 0; e < total; e++) {
      const flags = num(vals[i++], c, rel, 'entry flags');
      const id = `${idPart(add(msBase, vals[i++]!))}-${idPart(add(seqBase, vals[i++]!))}`;
      let fields: Array<[Buffer, Buffer]>;
      if (flags & FLAG_SAMEFIELDS) {
        if (i + nMaster > vals.length) throw c.fail('corrupt stream listpack: entry runs past the end', rel);
        fields = new Array(nMaster);
        for (let k = 0; k < nMaster; k++) fields[k] = [master[k]!, packedToBuffer(vals[i++]!)];
      } else {
        const nf = num(vals[i++], c, rel, 'field count');
        if (i + 2 * nf > vals.length) throw c.fail('corrupt stream listpack: entry runs past the end', rel);
        fields = new Array(nf);
        for (let k = 0; k < nf; k++) {
          const f = packedToBuffer(vals[i++]!);
          fields[k] = [f, packedToBuffer(vals[i++]!)];
        }
      }
      i++; // lp-count, used by Redis to walk entries backwards
      if (flags & FLAG_DELETED) deleted.push(id);
      else entries.push({ id, fields });
    }
  } catch (err) {
    if (err instanceof TypeError) throw c.fail('corrupt stream listpack: malformed entry', rel);
    throw err;
  }
  if (i !== vals.length)
    throw c.fail(`corrupt stream listpack: ${vals.length - i} elements after the last entry`, rel);
}

function bigOrNum(v: number | bigint): number | string {
  return typeof v === 'bigint' ? v.toString() : v;
}

function streamId(c: Cursor): string {
  const ms = c.readLenBig();
  const seq = c.readLenBig();
  return `${idPart(ms)}-${idPart(seq)}`;
}

/**
 * Reads a stream value (RDB_TYPE_STREAM_LISTPACKS 1..5) as rdbLoadObject does: the node listpacks, length, last
 * ID, [v2+: first ID, max deleted ID, entries added], consumer groups (name, last ID, [v2+: entries read], global
 * PEL with delivery time/count, consumers with seen time, [v3+: active time] and their PEL IDs, [v5: NACK zone]),
 * then [v4+: idempotent-producer state].
 */
export function readStream(c: Cursor, version: number, build: boolean, rec: RdbKeyRecord): void {
  const entries: StreamEntry[] = [];
  const deleted: string[] = [];
  readNodes(c, build, entries, deleted);
  const length = c.readLenBig();
  const lastId = streamId(c);
  const value: StreamValue = { entries, deleted, length: Number(length), lastId, groups: [] };
  if (version >= 2) {
    value.firstId = streamId(c);
    value.maxDeletedEntryId = streamId(c);
    value.entriesAdded = bigOrNum(c.readLenBig());
  }
  const groups = c.readLen();
  for (let g = 0; g < groups; g++) {
    const group = readGroup(c, version, build);
    if (group) value.groups.push(group);
  }
  if (version >= 4) value.idmp = readIdempotence(c);
  if (build) rec.value = value;
}

/** The radix tree's nodes: a master-ID key and a listpack of entries each. */
function readNodes(c: Cursor, build: boolean, entries: StreamEntry[], deleted: string[]): void {
  const nodes = c.readLen();
  for (let n = 0; n < nodes; n++) {
    if (!build) {
      c.skipString();
      c.skipString();
      continue;
    }
    const nodeKey = c.readString();
    const at = c.offset;
    const lp = c.readString();
    decodeBlob(lp, c.buf, c.base, at, (base) => decodeNode(c, nodeKey, lp, base, entries, deleted));
  }
}

/** One consumer group; null when only walking (`build` false). */
function readGroup(c: Cursor, version: number, build: boolean): StreamGroup | null {
  const name = c.readString();
  const lastId = streamId(c);
  let entriesRead: number | string | null = null;
  if (version >= 2) {
    const er = c.readLenBig();
    // SCG_INVALID_ENTRIES_READ (-1) is saved through rdbSaveLen as 2^64 - 1.
    entriesRead = typeof er === 'bigint' && er === U64_MAX ? null : bigOrNum(er);
  }
  const pending = readGroupPel(c, build);
  const byId = new Map<string, StreamPendingEntry>();
  for (const pe of pending) byId.set(pe.id, pe);
  const consumers = readConsumers(c, version, build, byId);
  if (version >= 5) readNackZone(c, build, byId);
  return build ? { name, lastId, entriesRead, pending, consumers } : null;
}

/** The group's pending entries list: ID, delivery time and count; the consumer is filled in by its own PEL. */
function readGroupPel(c: Cursor, build: boolean): StreamPendingEntry[] {
  const pelSize = c.readLen();
  const pending: StreamPendingEntry[] = [];
  for (let p = 0; p < pelSize; p++) {
    const id = c.rawStreamId();
    const deliveryTime = c.int64LE();
    const deliveryCount = Number(c.readLenBig());
    if (build) pending.push({ id, deliveryTime, deliveryCount, consumer: null });
  }
  return pending;
}

/** Consumers with their seen (and, v3+, active) times; each PEL ID must be in the group's PEL, as Redis checks. */
function readConsumers(
  c: Cursor,
  version: number,
  build: boolean,
  byId: Map<string, StreamPendingEntry>,
): StreamGroup['consumers'] {
  const nConsumers = c.readLen();
  const consumers: StreamGroup['consumers'] = [];
  for (let k = 0; k < nConsumers; k++) {
    const cname = c.readString();
    const seenTime = c.int64LE();
    const activeTime = version >= 3 ? c.int64LE() : null;
    const cpel = c.readLen();
    const ids: string[] = [];
    for (let p = 0; p < cpel; p++) {
      const at = c.pos;
      const id = c.rawStreamId();
      if (!build) continue;
      const pe = byId.get(id);
      if (!pe) throw c.fail(`consumer PEL entry ${id} is not in the group PEL`, at);
      pe.consumer = cname;
      ids.push(id);
    }
    if (build) consumers.push({ name: cname, seenTime, activeTime, pending: ids });
  }
  return consumers;
}

/** v5: the IDs of the group's NACK zone, each one of its pending entries. */
function readNackZone(c: Cursor, build: boolean, byId: Map<string, StreamPendingEntry>): void {
  const nacked = c.readLen();
  for (let p = 0; p < nacked; p++) {
    const at = c.pos;
    const id = c.rawStreamId();
    if (!build) continue;
    const pe = byId.get(id);
    if (!pe) throw c.fail(`NACK-zone entry ${id} is not in the group PEL`, at);
    pe.nacked = true;
  }
}

/** v4+: the idempotent-producer state (duration, limit, producers with their recent IIDs, counters). */
function readIdempotence(c: Cursor): NonNullable<StreamValue['idmp']> {
  const duration = bigOrNum(c.readLenBig());
  const maxEntries = bigOrNum(c.readLenBig());
  const nProducers = c.readLen();
  const producers: NonNullable<StreamValue['idmp']>['producers'] = [];
  for (let p = 0; p < nProducers; p++) {
    const pid = c.readString();
    const n = c.readLen();
    const list: Array<{ iid: Buffer; id: string }> = [];
    for (let k = 0; k < n; k++) {
      const iid = c.readString();
      list.push({ iid, id: streamId(c) });
    }
    producers.push({ pid, entries: list });
  }
  const iidsAdded = bigOrNum(c.readLenBig());
  const iidsDuplicates = bigOrNum(c.readLenBig());
  return { duration, maxEntries, producers, iidsAdded, iidsDuplicates };
}
