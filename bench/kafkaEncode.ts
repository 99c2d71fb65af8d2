import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { registerCodec } from '../sinks/kafka/codecs.js';
import { groupMessagesPerPartition, type ProduceArgs, produceRequestV3 } from '../sinks/kafka/kafkajsSeam.js';
import { createJavaCompatiblePartitioner } from '../sinks/kafka/partitioner.js';
import type { WireRecord } from '../sinks/kafka/recordBatch.js';

/**
 * `npm run bench:kafka-encode`: CPU per record of turning one transaction's records into Produce request bytes
 * (partitioning, grouping by partition, encoding, compression), redtail's path (partitioner.ts, kafkajsSeam.ts,
 * recordBatch.ts) against kafkajs 2.2.4's own (DefaultPartitioner, groupMessagesPerPartition and its produce v3
 * request module, loaded from its files), alternating in one process, no broker. Records are shaped as
 * the sink writes them: ~200-byte event JSON values (views into one buffer), key, five cached Buffer headers.
 * BENCH_RECORDS per request (default 4000, over 3 partitions), BENCH_SECONDS per round (default 2), 3 rounds each.
 */
const RECORDS = Number(process.env.BENCH_RECORDS ?? 4000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = 3;

const require = createRequire(import.meta.url);
const root = dirname(require.resolve('kafkajs/package.json'));
function original<T>(rel: string): T {
  const f = join(root, rel);
  const ours = require.cache[f];
  delete require.cache[f];
  try {
    return require(f) as T;
  } finally {
    if (ours !== undefined) require.cache[f] = ours;
  }
}
type Request = (args: ProduceArgs) => { encode(): Promise<{ buffer: Buffer }> };
const kafkajsRequest = original<Request>('src/protocol/requests/produce/v3/request.js');
const kafkajsGrouping = original<typeof groupMessagesPerPartition>(
  'src/producer/groupMessagesPerPartition.js',
);
const Long = require(join(root, 'src/utils/long.js')) as { fromValue(v: number): unknown };
type Partitioner = (a: { topic: string; partitionMetadata: unknown[]; message: WireRecord }) => number;
const { DefaultPartitioner } = require(join(root, 'src/producer/partitioners/index.js')) as {
  DefaultPartitioner: () => Partitioner;
};
const PARTITIONS = [0, 1, 2].map((partitionId) => ({ partitionId, leader: 1 }));
/** Each side with its own partitioner: kafkajs' DefaultPartitioner, or the sink's (partitioner.ts). */
const PARTITIONERS = {
  kafkajs: DefaultPartitioner(),
  ours: createJavaCompatiblePartitioner() as Partitioner,
};

function records(): WireRecord[] {
  const replid = Buffer.from(randomBytes(20).toString('hex'));
  const constant = new Map<string, Buffer>();
  const c = (s: string) => constant.get(s) ?? constant.set(s, Buffer.from(s)).get(s)!;
  const json = Buffer.from(
    Array.from(
      { length: RECORDS },
      (_, i) =>
        `{"v":1,"op":"set","db":0,"key":"bench:k:${i}","type":"string","value":"${'x'.repeat(100)}","source":{"replid":"${replid}","offset":${i * 50},"seq":0,"snapshot":false},"ts":${Date.now()}}`,
    ).join('\n'),
  );
  const out: WireRecord[] = [];
  let start = 0;
  for (let i = 0; i < RECORDS; i++) {
    const end = json.indexOf(10, start);
    const value = json.subarray(start, end < 0 ? json.length : end);
    start = end + 1;
    out.push({
      key: Buffer.from(`bench:k:${i}`),
      value,
      headers: {
        op: c('set'),
        db: c('0'),
        replid,
        offset: Buffer.from(String(i * 50), 'latin1'),
        seq: c('0'),
      },
      timestamp: String(Date.now()),
    });
  }
  return out;
}

async function once(which: 'ours' | 'kafkajs', recs: WireRecord[], compression: number): Promise<number> {
  const group = which === 'ours' ? groupMessagesPerPartition : kafkajsGrouping;
  const partitioner = PARTITIONERS[which];
  const byPartition = group({ topic: 't', partitionMetadata: PARTITIONS, messages: recs, partitioner });
  const partitions = Object.entries(byPartition).map(([p, messages], i) => ({
    partition: Number(p),
    messages,
    firstSequence: i * 1000,
  }));
  const args: ProduceArgs = {
    acks: -1,
    timeout: 30_000,
    transactionalId: 'bench',
    producerId: Long.fromValue(1234),
    producerEpoch: 0,
    compression,
    topicData: [{ topic: 'redtail.0', partitions }],
  };
  const request = which === 'ours' ? produceRequestV3(args) : kafkajsRequest(args);
  const encoded = (await request.encode()) as { buffer: Buffer };
  return encoded.buffer.length;
}

/** CPU µs per record (user+sys of this process, all threads: zlib's pool included) over SECONDS of requests. */
async function round(which: 'ours' | 'kafkajs', recs: WireRecord[], compression: number): Promise<number> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < SECONDS * 1000) {
    await once(which, recs, compression);
    n += recs.length;
  }
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / n;
}

async function main(): Promise<void> {
  for (const codec of ['lz4', 'snappy', 'zstd'] as const) await registerCodec(codec);
  const recs = records();
  const load = (await import('node:os')).loadavg().map((l) => l.toFixed(2));
  process.stdout.write(
    `bench:kafka-encode  ${RECORDS} records/request over 3 partitions, ${SECONDS} s x ${ROUNDS} rounds each; load average ${load.join(' ')}\n`,
  );
  for (const [name, compression] of [
    ['none', 0],
    ['gzip', 1],
    ['snappy', 2],
    ['lz4', 3],
    ['zstd', 4],
  ] as const) {
    const ours: number[] = [];
    const theirs: number[] = [];
    await once('ours', recs, compression);
    await once('kafkajs', recs, compression);
    for (let r = 0; r < ROUNDS; r++) {
      theirs.push(await round('kafkajs', recs, compression));
      ours.push(await round('ours', recs, compression));
    }
    const best = (xs: number[]) => Math.min(...xs);
    process.stdout.write(
      `compression=${name.padEnd(5)} kafkajs ${best(theirs).toFixed(2)} CPU µs/record, redtail ${best(ours).toFixed(2)} ` +
        `CPU µs/record (best of ${ROUNDS}; all: kafkajs ${theirs.map((x) => x.toFixed(2)).join(' ')}, redtail ` +
        `${ours.map((x) => x.toFixed(2)).join(' ')}): ratio kafkajs/redtail ${(best(theirs) / best(ours)).toFixed(1)}x\n`,
    );
  }
}

await main();
