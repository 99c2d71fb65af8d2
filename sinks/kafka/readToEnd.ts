import type { Admin, Kafka, KafkaMessage } from 'kafkajs';
import { KafkaSinkError } from './errors.js';

export interface ReadToEndOptions {
  /** Consumer group of this read; deleted afterwards. */
  groupId: string;
  /** Fail when the read makes no progress for this long. */
  timeoutMs: number;
}

/**
 * Reads topics from the beginning to their end as a read_committed consumer, handing every record to `onMessage`
 * in offset order per partition. "The end" is each partition's last stable offset (kafkajs' ListOffsets asks for
 * READ_COMMITTED), so an open transaction elsewhere cannot make this wait past what is readable, and records of
 * aborted transactions are never seen. kafkajs has no manual partition assignment, hence a throwaway consumer group
 * (Read ACL on the group prefix). Returns without connecting a consumer when every partition is empty.
 */
export async function readToEnd(
  kafka: Kafka,
  admin: Admin,
  topics: string[],
  onMessage: (topic: string, partition: number, message: KafkaMessage) => void,
  options: ReadToEndOptions,
): Promise<void> {
  const target = new Map<string, bigint>();
  const id = (topic: string, partition: number) => `${topic}\u0000${partition}`;
  for (const topic of topics) {
    for (const p of await admin.fetchTopicOffsets(topic))
      if (BigInt(p.high) > BigInt(p.low)) target.set(id(topic, p.partition), BigInt(p.high));
  }
  if (target.size === 0) return;

  const consumer = kafka.consumer({
    groupId: options.groupId,
    maxWaitTimeInMs: 100,
    sessionTimeout: 10_000,
    heartbeatInterval: 1000,
  });
  const position = new Map<string, bigint>();
  let progressAt = Date.now();
  const advance = (key: string, next: bigint) => {
    if (next > (position.get(key) ?? -1n)) {
      position.set(key, next);
      progressAt = Date.now();
    }
  };
  const done = () => [...target].every(([k, end]) => (position.get(k) ?? -1n) >= end);
  let failure: unknown;
  // Control records (commit markers) are not handed to eachMessage; the batch's last offset covers them.
  consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
    advance(id(e.payload.topic, e.payload.partition), BigInt(e.payload.lastOffset) + 1n);
  });
  consumer.on(consumer.events.CRASH, (e) => {
    failure = e.payload.error;
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        onMessage(topic, partition, message);
        advance(id(topic, partition), BigInt(message.offset) + 1n);
      },
    });
    while (!done()) {
      if (failure !== undefined) throw failure;
      if (Date.now() - progressAt > options.timeoutMs)
        throw new KafkaSinkError(
          `could not read ${topics.join(', ')} to the end: no progress for ${options.timeoutMs} ms ` +
            `(at ${JSON.stringify(Object.fromEntries([...position].map(([k, o]) => [k.replace('\u0000', ':'), String(o)])))}, ` +
            `end ${JSON.stringify(Object.fromEntries([...target].map(([k, o]) => [k.replace('\u0000', ':'), String(o)])))})`,
        );
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await consumer.disconnect().catch(() => {});
    await admin.deleteGroups([options.groupId]).catch(() => {});
  }
}
