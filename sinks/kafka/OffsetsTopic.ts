import { randomBytes } from 'node:crypto';
import type { Admin, Kafka, Message } from 'kafkajs';
import type { ReplicationPosition } from '../../src/events/ChangeEvent.js';
import { readToEnd } from './readToEnd.js';

/**
 * The value of a checkpoint record, keyed by the sink name in the compacted offsets topic. It is written in every
 * transaction, also while a snapshot loads (then `replid`/`offset`/`db` carry the previous resumable position, or
 * null): `batch` identifies the transaction, so after an ambiguous commit the sink can tell whether it landed.
 */
export interface CheckpointRecord {
  v: 1;
  sink: string;
  replid: string | null;
  offset: number | null;
  db: number | null;
  batch: string;
  ts: number;
}

export function checkpointMessage(
  sink: string,
  position: ReplicationPosition | null,
  batch: string,
): Message {
  const record: CheckpointRecord = {
    v: 1,
    sink,
    replid: position?.replid ?? null,
    offset: position?.offset ?? null,
    db: position?.db ?? null,
    batch,
    ts: Date.now(),
  };
  return { key: sink, value: JSON.stringify(record), headers: { sink } };
}

export function positionOf(record: CheckpointRecord | null): ReplicationPosition | null {
  if (record === null || record.replid === null || record.offset === null || record.db === null) return null;
  return { replid: record.replid, offset: record.offset, db: record.db };
}

function parseRecord(value: Buffer | null): CheckpointRecord | null {
  if (value === null) return null;
  try {
    const r = JSON.parse(value.toString('utf8')) as CheckpointRecord;
    return typeof r === 'object' && r !== null && typeof r.batch === 'string' ? r : null;
  } catch {
    return null;
  }
}

export interface ReadOptions {
  groupIdPrefix: string;
  timeoutMs: number;
}

/**
 * Reads the offsets topic to its end as a read_committed consumer (see `readToEnd`) and returns the sink's latest
 * record.
 */
export async function readLastCheckpoint(
  kafka: Kafka,
  admin: Admin,
  topic: string,
  sink: string,
  options: ReadOptions,
): Promise<CheckpointRecord | null> {
  // Per partition, the sink's newest record (null for a tombstone: the checkpoint was reset by an operator).
  const latest = new Map<number, CheckpointRecord | null>();
  const keyBuf = Buffer.from(sink, 'utf8');
  await readToEnd(
    kafka,
    admin,
    [topic],
    (_topic, partition, message) => {
      if (message.key?.equals(keyBuf)) latest.set(partition, parseRecord(message.value));
    },
    {
      groupId: `${options.groupIdPrefix}${sink}.${randomBytes(4).toString('hex')}`,
      timeoutMs: options.timeoutMs,
    },
  );
  // The offsets topic the sink creates has one partition; a pre-created multi-partition one may hold the key on
  // several partitions (after a partition change), and the newest record by its own timestamp wins.
  let best: CheckpointRecord | null = null;
  for (const r of latest.values()) if (r !== null && (best === null || r.ts >= best.ts)) best = r;
  return best;
}
