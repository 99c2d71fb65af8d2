import { randomBytes } from 'node:crypto';
import type { Admin, Kafka, Message } from 'kafkajs';
import type { ReplicationPosition } from '../../src/events/ChangeEvent.js';
import { KafkaSinkError } from './errors.js';

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
 * Reads the offsets topic to its end as a read_committed consumer and returns the sink's latest record.
 * "The end" is the last stable offset (kafkajs' ListOffsets asks for READ_COMMITTED), so an open transaction of
 * another sink cannot make this wait past what is readable; records of aborted transactions are never seen.
 * kafkajs has no manual partition assignment, hence a throwaway consumer group (Read ACL on `groupIdPrefix`).
 */
export async function readLastCheckpoint(
  kafka: Kafka,
  admin: Admin,
  topic: string,
  sink: string,
  options: ReadOptions,
): Promise<CheckpointRecord | null> {
  const ends = await admin.fetchTopicOffsets(topic);
  const target = new Map<number, bigint>();
  for (const p of ends) if (BigInt(p.high) > BigInt(p.low)) target.set(p.partition, BigInt(p.high));
  if (target.size === 0) return null;

  const groupId = `${options.groupIdPrefix}${sink}.${randomBytes(4).toString('hex')}`;
  const consumer = kafka.consumer({
    groupId,
    maxWaitTimeInMs: 100,
    sessionTimeout: 10_000,
    heartbeatInterval: 1000,
  });
  const position = new Map<number, bigint>();
  // Per partition, the sink's newest record (null for a tombstone: the checkpoint was reset by an operator).
  const latest = new Map<number, CheckpointRecord | null>();
  const advance = (partition: number, next: bigint) => {
    if (next > (position.get(partition) ?? -1n)) position.set(partition, next);
  };
  const done = () => [...target].every(([p, end]) => (position.get(p) ?? -1n) >= end);
  const keyBuf = Buffer.from(sink, 'utf8');
  let failure: unknown;
  consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
    advance(e.payload.partition, BigInt(e.payload.lastOffset) + 1n);
  });
  consumer.on(consumer.events.CRASH, (e) => {
    failure = e.payload.error;
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        const offset = BigInt(message.offset);
        if (message.key?.equals(keyBuf)) latest.set(partition, parseRecord(message.value));
        advance(partition, offset + 1n);
      },
    });
    const deadline = Date.now() + options.timeoutMs;
    while (!done()) {
      if (failure !== undefined) throw failure;
      if (Date.now() > deadline)
        throw new KafkaSinkError(
          `could not read offsets topic ${topic} to its end within ${options.timeoutMs} ms ` +
            `(at ${JSON.stringify(Object.fromEntries([...position].map(([p, o]) => [p, String(o)])))}, ` +
            `end ${JSON.stringify(Object.fromEntries([...target].map(([p, o]) => [p, String(o)])))})`,
        );
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await consumer.disconnect().catch(() => {});
    await admin.deleteGroups([groupId]).catch(() => {});
  }
  // The offsets topic the sink creates has one partition; a pre-created multi-partition one may hold the key on
  // several partitions (after a partition change), and the newest record by its own timestamp wins.
  let best: CheckpointRecord | null = null;
  for (const r of latest.values()) if (r !== null && (best === null || r.ts >= best.ts)) best = r;
  return best;
}
