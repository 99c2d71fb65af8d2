import type {
  EventSource,
  SnapshotBeginEvent,
  SnapshotEndEvent,
  SnapshotEvent,
  SnapshotStreamValue,
} from '../events/ChangeEvent.js';
import type { RdbKeyRecord, RdbSummary, RdbValue, StreamValue } from './records.js';

/** Where the snapshot sits in the replication stream: the replid and offset of +FULLRESYNC. */
export interface SnapshotSource {
  replid: string;
  offset: number;
  /** Position of this event within the snapshot (0 for snapshot-begin). */
  seq: number;
}

function source(s: SnapshotSource): EventSource {
  return { replid: s.replid, offset: s.offset, seq: s.seq, snapshot: true };
}

function streamPayload(s: StreamValue): SnapshotStreamValue {
  const out: { [field: string]: SnapshotStreamValue[string] } = {
    entries: s.entries,
    length: s.length,
    lastId: s.lastId,
    groups: s.groups.map((g) => ({
      name: g.name,
      lastId: g.lastId,
      entriesRead: g.entriesRead,
      pending: g.pending.map((p) => {
        const e: { [field: string]: SnapshotStreamValue[string] } = {
          id: p.id,
          consumer: p.consumer,
          deliveryTime: p.deliveryTime,
          deliveryCount: p.deliveryCount,
        };
        if (p.nacked) e.nacked = true;
        return e;
      }),
      consumers: g.consumers,
    })),
  };
  if (s.deleted.length > 0) out.deleted = s.deleted;
  if (s.firstId !== undefined) out.firstId = s.firstId;
  if (s.maxDeletedEntryId !== undefined) out.maxDeletedEntryId = s.maxDeletedEntryId;
  if (s.entriesAdded !== undefined) out.entriesAdded = s.entriesAdded;
  if (s.idmp) out.idmp = s.idmp;
  return out;
}

/**
 * One key of the RDB snapshot as a change event (docs/rdb.md, "Snapshot events"):
 * `{op: "snapshot", db, key, type, encoding, value, expireAt, source}`; hashes with per-field expiry add
 * `fieldExpireAt: [[field, ms], ...]`, module values add `module: {name, encodingVersion, id}`, and parts of a
 * streamed huge value add `part` and `last`. Byte strings stay Buffers for the sink's encoder.
 */
export function snapshotEvent(
  rec: RdbKeyRecord,
  src: SnapshotSource,
  ts: number = Date.now(),
): SnapshotEvent {
  const ev: SnapshotEvent = {
    v: 1,
    op: 'snapshot',
    db: rec.db,
    key: rec.key,
    type: rec.type,
    encoding: rec.encoding,
    value:
      rec.type === 'stream' && rec.value
        ? streamPayload(rec.value as StreamValue)
        : (rec.value as Exclude<RdbValue, StreamValue> | undefined),
    expireAt: rec.expireAt,
    source: source(src),
    ts,
  };
  if (rec.fieldExpireAt && rec.fieldExpireAt.length > 0) ev.fieldExpireAt = rec.fieldExpireAt;
  if (rec.module) ev.module = rec.module;
  if (rec.part !== undefined) {
    ev.part = rec.part;
    ev.last = rec.last;
  }
  return ev;
}

/** Marks the start of a snapshot; consumers can drop what they derived from an earlier one. */
export function snapshotBeginEvent(
  src: SnapshotSource,
  info: { rdbVersion?: number; expectedKeys?: number | null } = {},
  ts: number = Date.now(),
): SnapshotBeginEvent {
  return {
    v: 1,
    op: 'snapshot-begin',
    db: 0,
    rdbVersion: info.rdbVersion ?? null,
    expectedKeys: info.expectedKeys ?? null,
    source: source(src),
    ts,
  };
}

/** Marks the end of a snapshot with its key counts, so a consumer knows the initial load is complete. */
export function snapshotEndEvent(
  summary: RdbSummary,
  src: SnapshotSource,
  ts: number = Date.now(),
): SnapshotEndEvent {
  const perDb: Record<string, number> = {};
  for (const [db, n] of Object.entries(summary.keysPerDb)) perDb[db] = n;
  return {
    v: 1,
    op: 'snapshot-end',
    db: 0,
    keys: summary.keys,
    keysPerDb: perDb,
    rdbVersion: summary.version,
    bytes: summary.bytes,
    checksum: summary.checksum,
    functions: summary.functions,
    source: source(src),
    ts,
  };
}
