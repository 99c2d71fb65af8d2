import kafkajs from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTopic,
  kafkaBrokerLog,
  kafkaBrokers,
  kafkaClient,
  readTopic,
  topicConfig,
  uniqueName,
  withAdmin,
} from '../../harness/kafka.js';

const { CompressionTypes, ConfigResourceTypes } = kafkajs;

// kafkajs 2.2.4 was only ever tested against brokers up to 2.x/3.x; these tests are what prove the features the
// sink relies on against the Kafka 4.x broker scripts/kafka.sh runs (see docs/kafka.md).
describe('kafkajs 2.2.4 against Kafka 4.x', () => {
  const cleanup: Array<() => Promise<void>> = [];
  beforeAll(() => {
    kafkaBrokers();
  });
  afterAll(async () => {
    for (const fn of cleanup.reverse()) await fn().catch(() => {});
  });

  async function producer(config: Parameters<ReturnType<typeof kafkaClient>['producer']>[0] = {}) {
    const p = kafkaClient().producer(config);
    await p.connect();
    cleanup.push(() => p.disconnect());
    return p;
  }

  it('produces and consumes plain messages with keys and headers', async () => {
    const topic = uniqueName('t-plain');
    await createTopic(topic, { partitions: 2 });
    const p = await producer();
    await p.send({
      topic,
      acks: -1,
      messages: [
        { key: 'a', value: 'one', headers: { op: 'set' } },
        { key: 'b', value: 'two', headers: { op: 'del' } },
        { key: 'a', value: 'three', headers: { op: 'set' } },
      ],
    });
    const got = await readTopic(topic, { minMessages: 3 });
    expect(got.map((m) => `${m.key}=${m.value}`).sort()).toEqual(['a=one', 'a=three', 'b=two']);
    const a = got.filter((m) => m.key?.toString() === 'a');
    expect(a.map((m) => m.value?.toString())).toEqual(['one', 'three']);
    expect(a[0]!.headers.op).toBe('set');
  });

  it('runs an idempotent producer (InitProducerId, sequence numbers)', async () => {
    const topic = uniqueName('t-idem');
    await createTopic(topic);
    const p = await producer({ idempotent: true, maxInFlightRequests: 1 });
    for (let i = 0; i < 5; i++) {
      const res = await p.send({ topic, acks: -1, messages: [{ key: 'k', value: String(i) }] });
      expect(res[0]!.errorCode).toBe(0);
    }
    const got = await readTopic(topic, { minMessages: 5 });
    expect(got.map((m) => m.value?.toString())).toEqual(['0', '1', '2', '3', '4']);
  });

  it('commits and aborts transactions; read_committed sees only committed records', async () => {
    const topic = uniqueName('t-txn');
    const other = uniqueName('t-txn-other');
    await createTopic(topic, { partitions: 2 });
    await createTopic(other);
    const p = await producer({
      transactionalId: uniqueName('txn'),
      idempotent: true,
      maxInFlightRequests: 1,
    });

    const t1 = await p.transaction();
    await t1.send({ topic, acks: -1, messages: [{ key: 'x', value: 'committed-1' }] });
    await t1.send({ topic: other, acks: -1, messages: [{ key: 'x', value: 'committed-other' }] });
    await t1.commit();

    const t2 = await p.transaction();
    await t2.send({ topic, acks: -1, messages: [{ key: 'x', value: 'aborted' }] });
    await t2.abort();

    const t3 = await p.transaction();
    await t3.send({ topic, acks: -1, messages: [{ key: 'y', value: 'committed-2' }] });
    await t3.commit();

    const committed = await readTopic(topic, { minMessages: 2 });
    expect(committed.map((m) => m.value?.toString()).sort()).toEqual(['committed-1', 'committed-2']);
    const uncommitted = await readTopic(topic, { isolation: 'read_uncommitted', minMessages: 3 });
    expect(uncommitted.map((m) => m.value?.toString()).sort()).toEqual([
      'aborted',
      'committed-1',
      'committed-2',
    ]);
    expect((await readTopic(other, { minMessages: 1 })).map((m) => m.value?.toString())).toEqual([
      'committed-other',
    ]);
  });

  it('hides an open transaction from read_committed consumers until it commits', async () => {
    const topic = uniqueName('t-open');
    await createTopic(topic);
    const p = await producer({
      transactionalId: uniqueName('txn-open'),
      idempotent: true,
      maxInFlightRequests: 1,
    });
    const t = await p.transaction();
    await t.send({ topic, acks: -1, messages: [{ key: 'k', value: 'pending' }] });
    expect(await readTopic(topic, { idleMs: 1000 })).toEqual([]);
    await t.commit();
    expect((await readTopic(topic, { minMessages: 1 })).map((m) => m.value?.toString())).toEqual(['pending']);
  });

  it("fences a zombie: a second producer with the same transactionalId aborts the first one's open transaction", async () => {
    const topic = uniqueName('t-fence');
    await createTopic(topic);
    const txnId = uniqueName('txn-fence');
    const zombie = await producer({ transactionalId: txnId, idempotent: true, maxInFlightRequests: 1 });
    const zt = await zombie.transaction();
    await zt.send({ topic, acks: -1, messages: [{ key: 'k', value: 'zombie' }] });
    const fresh = await producer({ transactionalId: txnId, idempotent: true, maxInFlightRequests: 1 });
    const ft = await fresh.transaction();
    await ft.send({ topic, acks: -1, messages: [{ key: 'k', value: 'fresh' }] });
    await ft.commit();
    await expect(zt.commit()).rejects.toThrow();
    expect((await readTopic(topic, { minMessages: 1 })).map((m) => m.value?.toString())).toEqual(['fresh']);
  });

  it('produces gzip-compressed batches, also inside a transaction', async () => {
    const topic = uniqueName('t-gzip');
    await createTopic(topic);
    const big = 'x'.repeat(50_000);
    const plain = await producer();
    await plain.send({
      topic,
      acks: -1,
      compression: CompressionTypes.GZIP,
      messages: [{ key: 'g1', value: big }],
    });
    const tp = await producer({
      transactionalId: uniqueName('txn-gzip'),
      idempotent: true,
      maxInFlightRequests: 1,
    });
    const t = await tp.transaction();
    await t.send({
      topic,
      acks: -1,
      compression: CompressionTypes.GZIP,
      messages: Array.from({ length: 100 }, (_, i) => ({
        key: `g${i}`,
        value: `${i}:${big.slice(0, 1000)}`,
      })),
    });
    await t.commit();
    const got = await readTopic(topic, { minMessages: 101 });
    expect(got).toHaveLength(101);
    expect(got[0]!.value?.toString()).toBe(big);
  });

  it('creates a compacted topic and reads its config back with describeConfigs', async () => {
    const topic = uniqueName('t-compact');
    await createTopic(topic, {
      partitions: 3,
      configs: { 'cleanup.policy': 'compact', 'min.compaction.lag.ms': '0' },
    });
    const cfg = await topicConfig(topic);
    expect(cfg['cleanup.policy']).toBe('compact');
    expect(cfg['min.compaction.lag.ms']).toBe('0');
    const meta = await withAdmin((a) => a.fetchTopicMetadata({ topics: [topic] }));
    expect(meta.topics[0]!.partitions).toHaveLength(3);
    const broker = await withAdmin((a) =>
      a.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.BROKER, name: '1', configNames: ['message.max.bytes'] }],
      }),
    );
    expect(Number(broker.resources[0]!.configEntries[0]!.configValue)).toBeGreaterThan(0);
  });

  it('reports end offsets with admin.fetchTopicOffsets', async () => {
    const topic = uniqueName('t-offsets');
    await createTopic(topic);
    const p = await producer();
    await p.send({ topic, acks: -1, messages: [{ value: 'a' }, { value: 'b' }] });
    const offsets = await withAdmin((a) => a.fetchTopicOffsets(topic));
    expect(offsets[0]!.high).toBe('2');
  });

  it('creates topics that already exist without failing (createTopics returns false)', async () => {
    const topic = uniqueName('t-exists');
    await createTopic(topic);
    const created = await withAdmin((a) => a.createTopics({ topics: [{ topic, numPartitions: 1 }] }));
    expect(created).toBe(false);
  });

  it('leaves a readable broker log', () => {
    expect(kafkaBrokerLog().length).toBeGreaterThanOrEqual(0);
  });
});
