import { randomBytes } from 'node:crypto';

/**
 * The Java client's key → partition mapping (`Utils.murmur2`, `toPositive(murmur2(key)) % numPartitions`, as in
 * Kafka's BuiltInPartitioner.partitionForKey), so other Kafka clients put a key where redtail does. kafkajs'
 * DefaultPartitioner computes the same numbers through its BigInt-backed `Long` (a multiply is an allocation) and
 * filters the partition list for every message: 9 % of the sink's busy time in the profile after the record encoder
 * (bench/NOTES.md, K5). Here it is 32-bit integer arithmetic, which is what the Java code does.
 */
const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** Java's `Utils.murmur2(byte[])`: a signed 32-bit hash. */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = SEED ^ length;
  const words = length >>> 2;
  for (let i = 0; i < words; i++) {
    const i4 = i * 4;
    let k =
      (data[i4] as number) |
      ((data[i4 + 1] as number) << 8) |
      ((data[i4 + 2] as number) << 16) |
      ((data[i4 + 3] as number) << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const tail = length & ~3;
  // Java's switch falls through: three tail bytes take all three steps, one byte only the last.
  const rest = length & 3;
  if (rest >= 3) h ^= (data[tail + 2] as number) << 16;
  if (rest >= 2) h ^= (data[tail + 1] as number) << 8;
  if (rest >= 1) {
    h ^= data[tail] as number;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

interface PartitionMetadata {
  partitionId: number;
  leader: number;
}
interface PartitionArgs {
  topic: string;
  partitionMetadata: PartitionMetadata[];
  message: { key?: Buffer | string | null; partition?: number | null };
}

/**
 * A kafkajs `createPartitioner` with kafkajs' DefaultPartitioner's rules: an explicit partition wins; a key is
 * hashed over all partitions (murmur2, as Java); no key goes round-robin over the partitions that have a leader.
 */
export function createJavaCompatiblePartitioner() {
  const counters = new Map<string, number>();
  return ({ topic, partitionMetadata, message }: PartitionArgs): number => {
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    const key = message.key;
    if (key !== null && key !== undefined) {
      const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
      return (murmur2(bytes) & 0x7fffffff) % partitionMetadata.length;
    }
    const next = (counters.get(topic) ?? randomBytes(4).readUInt32BE(0)) + 1;
    counters.set(topic, next);
    const available = partitionMetadata.filter((p) => p.leader >= 0);
    if (available.length > 0)
      return (available[(next & 0x7fffffff) % available.length] as PartitionMetadata).partitionId;
    return (next & 0x7fffffff) % partitionMetadata.length;
  };
}
