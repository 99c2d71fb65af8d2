import { describe, expect, it } from 'vitest';
import { chunkMessages, MAX_REQUEST_BYTES, type OutMessage } from '../../../sinks/kafka/messages.js';
import { createJavaCompatiblePartitioner } from '../../../sinks/kafka/partitioner.js';

/** Produce requests of one transaction: bounded per partition batch when partition counts are known. */
const PARTITIONS = 3;
const meta = Array.from({ length: PARTITIONS }, (_, partitionId) => ({ partitionId, leader: 1 }));
const partitioner = createJavaCompatiblePartitioner();

function records(n: number, size: number): OutMessage[] {
  const out: OutMessage[] = Array.from({ length: n }, (_, i) => ({
    topic: 'redtail.0',
    message: { key: Buffer.from(`user:${i}`), value: Buffer.alloc(10) },
    size,
  }));
  out.push({ topic: 'redtail.offsets', message: { key: 'sink', value: '{}' }, size: 256 });
  return out;
}

/** Bytes per (topic, partition) of a chunk, with the producer's own partitioner. */
function batchBytes(chunk: ReturnType<typeof chunkMessages>[number], counts: Record<string, number>) {
  const bytes = new Map<string, number>();
  for (const { topic, messages } of chunk)
    for (const message of messages) {
      const partitionMetadata = meta.slice(0, counts[topic]);
      const p = partitioner({ topic, partitionMetadata, message });
      const k = `${topic}/${p}`;
      bytes.set(k, (bytes.get(k) ?? 0) + (topic === 'redtail.offsets' ? 256 : 300));
    }
  return bytes;
}

describe('chunkMessages', () => {
  const counts: Record<string, number> = { 'redtail.0': PARTITIONS, 'redtail.offsets': 1 };
  const all = records(3000, 300);

  it('keeps every partition batch within maxBytes and needs fewer requests than a per-request bound', () => {
    const perRequest = chunkMessages(all, 90_000);
    const perPartition = chunkMessages(all, 90_000, (t) => counts[t]);
    for (const chunk of perPartition)
      for (const [batch, bytes] of batchBytes(chunk, counts))
        expect(bytes, batch).toBeLessThanOrEqual(90_000);
    // 900 KB of records over 3 partitions: about a third of the requests.
    expect(perRequest.length).toBe(10);
    expect(perPartition.length).toBeLessThanOrEqual(4);
  });

  it('keeps record order per topic and loses nothing', () => {
    const perPartition = chunkMessages(all, 90_000, (t) => counts[t]);
    const flat = (topic: string) =>
      perPartition.flatMap((c) => c.filter((t) => t.topic === topic).flatMap((t) => t.messages));
    expect(flat('redtail.0')).toEqual(all.filter((m) => m.topic === 'redtail.0').map((m) => m.message));
    expect(flat('redtail.offsets')).toHaveLength(1);
  });

  it('bounds the request too, and a topic of unknown partition count as one batch', () => {
    const many = records(200, 1_000_000);
    const chunks = chunkMessages(many, 2_000_000, (t) => (t === 'redtail.0' ? 64 : undefined));
    for (const c of chunks) {
      const bytes = c.reduce(
        (n, t) => n + t.messages.length * (t.topic === 'redtail.0' ? 1_000_000 : 256),
        0,
      );
      expect(bytes).toBeLessThanOrEqual(MAX_REQUEST_BYTES);
    }
    expect(chunkMessages(all, 90_000, () => undefined)).toEqual(chunkMessages(all, 90_000));
  });
});
