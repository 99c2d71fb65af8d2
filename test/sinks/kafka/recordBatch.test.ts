import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { registerCodec, registerGzipLevel } from '../../../sinks/kafka/codecs.js';
import { resolveKafkaSinkConfig } from '../../../sinks/kafka/config.js';
import { crc32c, crc32cImplementation, crc32cJs } from '../../../sinks/kafka/crc32c.js';
import {
  groupMessagesPerPartition,
  type PartitionEntry,
  type ProduceArgs,
  produceRequestV3,
} from '../../../sinks/kafka/kafkajsSeam.js';
import { createJavaCompatiblePartitioner, murmur2 } from '../../../sinks/kafka/partitioner.js';
import type { WireRecord } from '../../../sinks/kafka/recordBatch.js';

/**
 * Our Produce request encoder (sinks/kafka/recordBatch.ts, installed under kafkajs by kafkajsSeam.ts) against
 * kafkajs 2.2.4's own, loaded from its files on disk: for the same records, producer state and compression, the
 * request bytes must be identical, CRC included. The broker-side proof (kill -9, fencing, restart, the Java client
 * reading every codec) is in the other tests of this folder, which all produce through our encoder.
 */
const require = createRequire(import.meta.url);
const root = dirname(require.resolve('kafkajs/package.json'));

/** A kafkajs module as its file defines it, bypassing the replacement the seam put in the module cache. */
function original<T>(rel: string): T {
  const f = join(root, rel);
  const ours = require.cache[f];
  delete require.cache[f];
  try {
    return require(f) as T;
  } finally {
    if (ours !== undefined) require.cache[f] = ours;
    else delete require.cache[f];
  }
}

type Request = { apiVersion: number; encode(): Promise<{ buffer: Buffer }> };
const theirs = original<(args: ProduceArgs) => Request>('src/protocol/requests/produce/v3/request.js');
const theirGrouping = original<typeof groupMessagesPerPartition>('src/producer/groupMessagesPerPartition.js');
const theirCrc = require(join(root, 'src/protocol/recordBatch/crc32C/index.js')) as (b: Buffer) => number;
const Long = require(join(root, 'src/utils/long.js')) as { fromValue(v: string | number): unknown };
const decodeBatch = require(join(root, 'src/protocol/recordBatch/v0/decoder.js')) as (d: unknown) => Promise<{
  records: Array<{
    key: Buffer | null;
    value: Buffer | null;
    timestamp: string;
    headers: Record<string, unknown>;
  }>;
  inTransaction: boolean;
  producerId: string;
  firstSequence: number;
}>;
const Decoder = require(join(root, 'src/protocol/decoder.js')) as new (b: Buffer) => unknown;

const T0 = 1_795_616_496_077;
const b = (s: string) => Buffer.from(s, 'utf8');

function eventRecord(i: number, value: Buffer): WireRecord {
  return {
    key: b(`user:${i}`),
    value,
    headers: {
      op: b('set'),
      db: b('0'),
      replid: b('a7fc3bed'.repeat(5)),
      offset: b(String(382 + i)),
      seq: b('0'),
    },
    timestamp: String(T0 + i),
  };
}

/** Record shapes: each exercises a different field encoding. */
const SHAPES: Record<string, () => WireRecord[]> = {
  'redtail events (five Buffer headers)': () =>
    Array.from({ length: 300 }, (_, i) =>
      eventRecord(i, b(`{"v":1,"op":"set","key":"user:${i}","value":"${'x'.repeat(i)}"}`)),
    ),
  'no headers': () =>
    Array.from({ length: 50 }, (_, i) => ({ key: b(`k${i}`), value: b(`v${i}`), timestamp: T0 })),
  'null key, empty value, null value (tombstone)': () => [
    { key: null, value: b('flushdb'), timestamp: T0 },
    { key: b('k'), value: Buffer.alloc(0), timestamp: T0 + 1 },
    { key: b('gone'), value: null, timestamp: T0 + 2 },
  ],
  'string keys, values and headers; multi-valued headers': () => [
    {
      key: 'ключ',
      value: 'значение ✓',
      headers: { 'x-ü': 'ä', multi: ['a', b('b')] },
      timestamp: T0,
    },
    { key: 'k2', value: 'v2', headers: {}, timestamp: T0 + 5 },
  ],
  'big value (1 MiB) and long keys': () => [
    { key: randomBytes(20_000), value: randomBytes(1 << 20), timestamp: T0 },
    eventRecord(1, randomBytes(200_000)),
  ],
  'timestamps out of order and 40 days apart (a varlong past 2^32)': () => [
    eventRecord(0, b('a')),
    { ...eventRecord(1, b('b')), timestamp: T0 + 40 * 86_400_000 },
    { ...eventRecord(2, b('c')), timestamp: T0 - 1000 },
  ],
};

function topicData(records: WireRecord[]): ProduceArgs['topicData'] {
  // Two topics, several partitions each, as sendMessages hands them over (firstSequence from the eos manager).
  const part = (partition: number, messages: WireRecord[], firstSequence: number): PartitionEntry => ({
    partition,
    messages,
    firstSequence,
  });
  const half = Math.ceil(records.length / 2);
  return [
    {
      topic: 'redtail.0',
      partitions: [part(0, records.slice(0, half), 17), part(2, records.slice(half), 0)],
    },
    { topic: 'redtail.offsets', partitions: [part(1, records.slice(0, 1), 2_147_483_000)] },
  ];
}

async function both(args: ProduceArgs): Promise<[Buffer, Buffer]> {
  const [ours, reference] = await Promise.all([produceRequestV3(args).encode(), theirs(args).encode()]);
  return [(ours as unknown as { buffer: Buffer }).buffer, reference.buffer];
}

const CODECS = { none: 0, gzip: 1, snappy: 2, lz4: 3 } as const;

describe('Produce request encoding: our bytes equal kafkajs 2.2.4 own', () => {
  afterEach(() => vi.useRealTimers());

  for (const [codecName, compression] of Object.entries(CODECS)) {
    for (const [shape, make] of Object.entries(SHAPES)) {
      for (const transactional of [true, false]) {
        it(`${shape}, compression=${codecName}, ${transactional ? 'transactional' : 'idempotent'}`, async () => {
          if (codecName === 'lz4' || codecName === 'snappy') await registerCodec(codecName);
          const args: ProduceArgs = {
            acks: -1,
            timeout: 30_000,
            transactionalId: transactional ? 'redtail-txn' : null,
            producerId: Long.fromValue('9007199254740993'),
            producerEpoch: 7,
            compression,
            topicData: topicData(make()),
          };
          const [ours, reference] = await both(args);
          expect(ours.length).toBe(reference.length);
          expect(ours.equals(reference)).toBe(true);
        });
      }
    }
  }

  it('records without a timestamp get the request time, as kafkajs stamps them', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(T0 + 12_345);
    const records: WireRecord[] = [
      { key: b('a'), value: b('1') },
      { key: b('b'), value: b('2'), timestamp: T0 },
      { key: b('c'), value: b('3') },
    ];
    const args: ProduceArgs = { acks: -1, timeout: 1000, compression: 0, topicData: topicData(records) };
    const [ours, reference] = await both(args);
    expect(ours.equals(reference)).toBe(true);
  });

  it('kafkajs decodes our batch back into the same records, producer state and transactional flag', async () => {
    const records = SHAPES['redtail events (five Buffer headers)']!();
    const args: ProduceArgs = {
      acks: -1,
      timeout: 1000,
      transactionalId: 't',
      producerId: Long.fromValue(42),
      producerEpoch: 1,
      compression: 1,
      topicData: [{ topic: 't', partitions: [{ partition: 0, messages: records, firstSequence: 99 }] }],
    };
    const body = ((await produceRequestV3(args).encode()) as unknown as { buffer: Buffer }).buffer;
    // Body: txn id (2 + 1), acks 2, timeout 4, topics 4, topic name (2 + 1), partitions 4, partition 4, size 4.
    const batch = body.subarray(2 + 1 + 2 + 4 + 4 + 2 + 1 + 4 + 4 + 4);
    const decoded = await decodeBatch(new Decoder(batch));
    expect(decoded.inTransaction).toBe(true);
    expect(decoded.producerId).toBe('42');
    expect(decoded.firstSequence).toBe(99);
    expect(decoded.records).toHaveLength(records.length);
    decoded.records.forEach((r, i) => {
      const want = records[i]!;
      expect(r.key).toEqual(want.key);
      expect(r.value).toEqual(want.value);
      expect(r.timestamp).toBe(String(want.timestamp));
      expect(r.headers).toEqual(want.headers);
    });
    // The CRC kafkajs' decoder skips: Kafka's own check (DefaultRecordBatch.ensureValid) is over attributes..end.
    expect(batch.readUInt32BE(17)).toBe(crc32c(batch, 21, batch.length));
  });
});

describe('CRC-32C', () => {
  const vectors: Array<[string, Buffer, number]> = [
    // RFC 3720 (iSCSI), appendix B.4, and the classic check value of "123456789".
    ['32 zero bytes', Buffer.alloc(32, 0), 0x8a9136aa],
    ['32 0xff bytes', Buffer.alloc(32, 0xff), 0x62a8ab43],
    ['32 incrementing bytes', Buffer.from(Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e],
    ['32 decrementing bytes', Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c],
    ['"123456789"', b('123456789'), 0xe3069283],
    ['nothing', Buffer.alloc(0), 0],
  ];

  it.each(vectors)('of %s is the RFC 3720 / check value (JS loop)', (_name, data, want) => {
    expect(crc32cJs(data)).toBe(want);
  });

  it(`equals kafkajs' byte-at-a-time CRC-32C on every length and alignment (implementation for long inputs: ${crc32cImplementation})`, () => {
    const data = randomBytes(70_000);
    for (let start = 0; start < 9; start++)
      for (const len of [...Array.from({ length: 300 }, (_, i) => i), 1000, 4097, 65_536]) {
        const want = theirCrc(data.subarray(start, start + len));
        expect(crc32cJs(data, start, start + len)).toBe(want);
        expect(crc32c(data, start, start + len)).toBe(want);
      }
  });
});

describe('grouping by partition', () => {
  it('gives what kafkajs own grouping gives (partition -> messages in order)', () => {
    const messages: WireRecord[] = Array.from({ length: 2000 }, (_, i) => ({
      key: b(`k${i % 37}`),
      value: b(`${i}`),
    }));
    const partitioner = ({ message }: { message: WireRecord }) => (message.key as Buffer).readUInt8(1) % 5;
    const args = { topic: 't', partitionMetadata: [{}, {}, {}, {}, {}], messages, partitioner };
    expect(groupMessagesPerPartition(args)).toEqual(theirGrouping(args));
    expect(groupMessagesPerPartition({ ...args, partitionMetadata: [] })).toEqual({});
  });
});

describe('partitioner', () => {
  const theirMurmur2 = require(join(root, 'src/producer/partitioners/default/murmur2.js')) as (
    k: unknown,
  ) => number;
  const { DefaultPartitioner } = require(join(root, 'src/producer/partitioners/index.js')) as {
    DefaultPartitioner: () => (a: unknown) => number;
  };

  it('hashes every key as kafkajs (and so Java) does: all lengths 0..80, random bytes and UTF-8 strings', () => {
    for (let len = 0; len <= 80; len++)
      for (let r = 0; r < 20; r++) {
        const key = randomBytes(len);
        expect(murmur2(key)).toBe(theirMurmur2(key));
      }
    // Java's Utils.murmur2 check values (kafka clients' UtilsTest.testMurmur2).
    expect(murmur2(b('21'))).toBe(-973932308);
    expect(murmur2(b('foobar'))).toBe(-790332482);
    expect(murmur2(b('a-little-bit-long-string'))).toBe(-985981536);
  });

  it('picks the partition kafkajs DefaultPartitioner picks for keyed, string-keyed and explicit-partition messages', () => {
    const partitionMetadata = Array.from({ length: 7 }, (_, i) => ({
      partitionId: i,
      leader: i === 3 ? -1 : 1,
    }));
    const ours = createJavaCompatiblePartitioner();
    const theirs = DefaultPartitioner();
    for (let i = 0; i < 2000; i++) {
      const message =
        i % 3 === 0
          ? { key: randomBytes(i % 40) }
          : i % 3 === 1
            ? { key: `user:${i}` }
            : { key: b('x'), partition: i % 7 };
      const args = { topic: 't', partitionMetadata, message };
      expect(ours(args)).toBe(theirs(args));
    }
    // Keyless: round-robin over partitions with a leader only.
    const seen = new Set(
      Array.from({ length: 60 }, () => ours({ topic: 't', partitionMetadata, message: {} })),
    );
    expect([...seen].sort()).toEqual([0, 1, 2, 4, 5, 6]);
  });
});

describe('gzipLevel', () => {
  afterEach(() => registerGzipLevel(6));

  it('compresses at the configured zlib level; kafkajs decodes the batch back to the same records', async () => {
    const records = SHAPES['redtail events (five Buffer headers)']!();
    const sizes = new Map<number, number>();
    for (const level of [1, 9]) {
      registerGzipLevel(level);
      const args: ProduceArgs = {
        acks: -1,
        timeout: 1000,
        compression: 1,
        topicData: [{ topic: 't', partitions: [{ partition: 0, messages: records, firstSequence: 0 }] }],
      };
      const body = ((await produceRequestV3(args).encode()) as unknown as { buffer: Buffer }).buffer;
      const batch = body.subarray(2 + 2 + 4 + 4 + 2 + 1 + 4 + 4 + 4);
      sizes.set(level, batch.length);
      const decoded = await decodeBatch(new Decoder(batch));
      expect(decoded.records.map((r) => r.value)).toEqual(records.map((r) => r.value));
    }
    expect(sizes.get(1)!).toBeGreaterThan(sizes.get(9)!);
  });

  it('is 6 by default and must be 1..9', () => {
    expect(resolveKafkaSinkConfig('kafka://127.0.0.1:9092').gzipLevel).toBe(6);
    expect(resolveKafkaSinkConfig('kafka://127.0.0.1:9092?gzipLevel=1').gzipLevel).toBe(1);
    expect(resolveKafkaSinkConfig('kafka://127.0.0.1:9092', { gzipLevel: 9 }).gzipLevel).toBe(9);
    expect(() => resolveKafkaSinkConfig('kafka://127.0.0.1:9092?gzipLevel=0')).toThrow(/gzipLevel=0 must be/);
    expect(() => resolveKafkaSinkConfig('kafka://127.0.0.1:9092', { gzipLevel: 10 })).toThrow(
      /from 1 .* to 9/,
    );
  });
});

describe('maxTransactionMs', () => {
  it('is 100 by default, 0 turns the time bound off, and must be a whole number of milliseconds', () => {
    expect(resolveKafkaSinkConfig('kafka://127.0.0.1:9092').maxTransactionMs).toBe(100);
    expect(resolveKafkaSinkConfig('kafka://127.0.0.1:9092?maxTransactionMs=0').maxTransactionMs).toBe(0);
    expect(resolveKafkaSinkConfig('kafka://127.0.0.1:9092', { maxTransactionMs: 250 }).maxTransactionMs).toBe(
      250,
    );
    expect(() => resolveKafkaSinkConfig('kafka://127.0.0.1:9092?maxTransactionMs=-1')).toThrow(
      /maxTransactionMs=-1 must be/,
    );
    expect(() => resolveKafkaSinkConfig('kafka://127.0.0.1:9092', { maxTransactionMs: 1.5 })).toThrow(
      /maxTransactionMs=1.5 must be an integer >= 0/,
    );
  });
});
