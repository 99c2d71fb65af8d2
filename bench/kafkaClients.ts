import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Message } from 'kafkajs';
import kafkajs from 'kafkajs';

/**
 * `node dist/bench/kafkaClients.js`: the client ceiling, measured on one broker in one run. Each candidate runs in a
 * child process of its own (as redtail does) and sends the same records — redtail-shaped `set` events, ~200-byte
 * values, key and the five headers redtail writes — for BENCH_SECONDS:
 *
 * - kafkajs as published, kafkajs with redtail's record encoder under it (sinks/kafka/kafkajsSeam.ts, what the sink
 *   runs) and @platformatic/kafka (when installed), transactional loops: each
 *   transaction sends records for up to BENCH_TXN_MS (default 100 ms, as ProducerPerformance's
 *   --transaction-duration-ms) in produce requests of BENCH_CHUNK records, plus one checkpoint record to a second,
 *   compacted topic, then commits; the next transaction's records are built while... nothing else runs (a bare loop);
 * - Kafka's own Java producer, `org.apache.kafka.tools.ProducerPerformance` from the broker's jars (kafka-tools is in
 *   test/kafka/pom.xml), transactional (100 ms transactions) and not (acks=all, idempotent), 200-byte records.
 *
 * Prints records/s, CPU seconds per million records (the child's user+sys) and the ratios to Java's transactional
 * figure. Uses KAFKA_BROKERS, else the scripts/kafka.sh broker (started, and stopped at the end, when not running).
 * BENCH_COMPRESSION (none|gzip|lz4|snappy|zstd; default none) applies to every candidate.
 */

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..');
const kafkaScript = join(repoRoot, 'scripts', 'kafka.sh');

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const TXN_MS = Number(process.env.BENCH_TXN_MS ?? 100);
const CHUNK = Number(process.env.BENCH_CHUNK ?? 4000);
const VALUE_BYTES = Number(process.env.BENCH_VALUE_BYTES ?? 100);
const COMPRESSION = process.env.BENCH_COMPRESSION ?? 'none';
const KEYS = 10_000;
/**
 * Not a dependency: `npm install --no-save @platformatic/kafka@2.12.1` before running to include it (a variable, so
 * tsc does not resolve it).
 */
const PLATFORMATIC = '@platformatic/kafka';
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

export interface ClientResult {
  client: string;
  records: number;
  seconds: number;
  cpuSeconds: number;
  txns: number;
  /** ProducerPerformance's send latency p99 (ms), when known. */
  p99?: number;
}

/** The event JSON redtail writes for `SET bench:k:<n> <value>` (~200 bytes with a 100-byte value). */
export function eventJson(offset: number, key: string, replid: string): string {
  const value = 'x'.repeat(VALUE_BYTES);
  return `{"v":1,"op":"set","db":0,"key":"${key}","type":"string","value":"${value}","source":{"replid":"${replid}","offset":${offset},"seq":0,"snapshot":false},"ts":${Date.now()}}`;
}

export function startedBroker(): { brokers: string[]; started: boolean } {
  if (process.env.KAFKA_BROKERS) return { brokers: process.env.KAFKA_BROKERS.split(','), started: false };
  const running = spawnSync(kafkaScript, ['status'], { stdio: 'ignore' }).status === 0;
  if (!running) execFileSync(kafkaScript, ['start'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const address = execFileSync(kafkaScript, ['address'], { encoding: 'utf8' }).trim();
  return { brokers: [address], started: !running };
}

interface ChildArgs {
  /** `kafkajs-redtail`: kafkajs with redtail's record encoder under it (sinks/kafka/kafkajsSeam.ts). */
  client: 'kafkajs' | 'kafkajs-redtail' | 'platformatic';
  brokers: string[];
  topic: string;
  offsetsTopic: string;
  transactionalId: string;
  seconds: number;
}

/** Runs `loop` for `seconds`: each round is one transaction of up to TXN_MS worth of CHUNK-record sends. */
async function timedLoop(
  seconds: number,
  txn: (build: () => Array<{ key: string; value: string; offset: number }> | null) => Promise<number>,
): Promise<ClientResult & { client: string }> {
  const replid = randomBytes(20).toString('hex');
  let offset = 0;
  let n = 0;
  let records = 0;
  let txns = 0;
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const end = started + seconds * 1000;
  while (performance.now() < end) {
    const txnEnd = Math.min(end, performance.now() + TXN_MS);
    records += await txn(() => {
      if (performance.now() >= txnEnd) return null;
      const out: Array<{ key: string; value: string; offset: number }> = [];
      for (let i = 0; i < CHUNK; i++) {
        offset += 50;
        const key = `bench:k:${n++ % KEYS}`;
        out.push({ key, value: eventJson(offset, key, replid), offset });
      }
      return out;
    });
    txns++;
  }
  const seconds_ = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { client: '', records, seconds: seconds_, cpuSeconds: (cpu.user + cpu.system) / 1e6, txns };
}

const headersOf = (offset: number) => ({
  op: 'set',
  db: '0',
  replid: 'r'.repeat(40),
  offset: String(offset),
  seq: '0',
});

async function kafkajsChild(args: ChildArgs): Promise<ClientResult> {
  const ours = args.client === 'kafkajs-redtail';
  const client = ours ? (await import('../sinks/kafka/kafkajsSeam.js')).kafkajs : kafkajs;
  const { Kafka, logLevel, CompressionTypes, Partitioners } = client;
  const codecs: Record<string, number> = {
    none: CompressionTypes.None,
    gzip: CompressionTypes.GZIP,
    lz4: CompressionTypes.LZ4,
    snappy: CompressionTypes.Snappy,
  };
  if (COMPRESSION === 'lz4' || COMPRESSION === 'snappy') {
    const { registerCodec } = await import('../sinks/kafka/codecs.js');
    await registerCodec(COMPRESSION);
  }
  const compression = codecs[COMPRESSION];
  if (compression === undefined) throw new Error(`kafkajs has no ${COMPRESSION} codec`);
  const kafka = new Kafka({ clientId: 'bench-clients', brokers: args.brokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer({
    transactionalId: args.transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  const result = await timedLoop(args.seconds, async (build) => {
    const txn = await producer.transaction();
    let sent = 0;
    let last = 0;
    for (let recs = build(); recs !== null; recs = build()) {
      const messages: Message[] = recs.map((r) => ({
        key: r.key,
        value: r.value,
        headers: headersOf(r.offset),
        timestamp: String(Date.now()),
      }));
      await txn.sendBatch({ topicMessages: [{ topic: args.topic, messages }], acks: -1, compression });
      sent += recs.length;
      last = recs.at(-1)?.offset ?? last;
    }
    await txn.sendBatch({
      topicMessages: [
        { topic: args.offsetsTopic, messages: [{ key: 'bench', value: JSON.stringify({ offset: last }) }] },
      ],
      acks: -1,
    });
    await txn.commit();
    return sent;
  });
  await producer.disconnect();
  return { ...result, client: ours ? 'kafkajs 2.2.4 + redtail encoder txn loop' : 'kafkajs 2.2.4 txn loop' };
}

/** The part of @platformatic/kafka's API the loop uses (typed here: the package is not a dependency of redtail). */
interface PlatformaticTxn {
  send(o: { messages: object[] }): Promise<unknown>;
  commit(): Promise<void>;
}
interface PlatformaticModule {
  Producer: new (
    o: Record<string, unknown>,
  ) => { beginTransaction(): Promise<PlatformaticTxn>; close(): Promise<void> };
  stringSerializers: unknown;
}

async function platformaticChild(args: ChildArgs): Promise<ClientResult> {
  const mod = (await import(PLATFORMATIC)) as PlatformaticModule;
  const producer = new mod.Producer({
    clientId: 'bench-clients',
    bootstrapBrokers: args.brokers,
    transactionalId: args.transactionalId,
    idempotent: true,
    acks: -1,
    compression: COMPRESSION,
    serializers: mod.stringSerializers,
  });
  const result = await timedLoop(args.seconds, async (build) => {
    const txn = await producer.beginTransaction();
    let sent = 0;
    let last = 0;
    for (let recs = build(); recs !== null; recs = build()) {
      const messages = recs.map((r) => ({
        topic: args.topic,
        key: r.key,
        value: r.value,
        headers: headersOf(r.offset),
        timestamp: BigInt(Date.now()),
      }));
      await txn.send({ messages });
      sent += recs.length;
      last = recs.at(-1)?.offset ?? last;
    }
    await txn.send({
      messages: [{ topic: args.offsetsTopic, key: 'bench', value: JSON.stringify({ offset: last }) }],
    });
    await txn.commit();
    return sent;
  });
  await producer.close();
  return { ...result, client: '@platformatic/kafka txn loop' };
}

function runChild(args: ChildArgs): Promise<ClientResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(args)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`${args.client} loop exited with ${code}`));
      resolvePromise(JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as ClientResult);
    });
  });
}

/** Java's ProducerPerformance: throughput -1 (as fast as it goes) for about `seconds`, 200-byte records. */
export function runJava(
  brokers: string[],
  topic: string,
  transactional: boolean,
  seconds: number,
  expectedRate: number,
  opts: { compression?: string; recordBytes?: number; payloadFile?: string; records?: number } = {},
): ClientResult {
  const libs = execFileSync(kafkaScript, ['libs'], { encoding: 'utf8' }).trim();
  if (!readdirSync(libs).some((f) => f.startsWith('kafka-tools-')))
    throw new Error(
      `no kafka-tools jar in ${libs}: run scripts/kafka.sh libs after updating test/kafka/pom.xml`,
    );
  const num = opts.records ?? Math.max(100_000, Math.round(expectedRate * seconds));
  const props = [
    `bootstrap.servers=${brokers.join(',')}`,
    'acks=all',
    `compression.type=${opts.compression ?? COMPRESSION}`,
    'linger.ms=5',
  ];
  const args = [
    '-cp',
    `${libs}/*`,
    '-Xmx512m',
    'org.apache.kafka.tools.ProducerPerformance',
    '--topic',
    topic,
    '--num-records',
    String(num),
    // Values from a file (one per line, picked at random), or random letters of --record-size bytes.
    ...(opts.payloadFile
      ? ['--payload-file', opts.payloadFile]
      : ['--record-size', String(opts.recordBytes ?? 200)]),
    '--throughput',
    '-1',
    '--producer-props',
    ...props,
  ];
  if (transactional)
    args.push(
      '--transactional-id',
      `bench-java-${randomBytes(3).toString('hex')}`,
      '--transaction-duration-ms',
      '100',
    );
  // `times` after the JVM prints the shell's children's user and system CPU: the JVM's CPU, as the JS loops report
  // their own with process.cpuUsage.
  const r = spawnSync('bash', ['-c', 'java "$@"; s=$?; times >&2; exit $s', 'java', ...args], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`ProducerPerformance failed: ${r.stderr}`);
  // Last line: "N records sent, R records/sec (X MB/sec), A ms avg latency, M ms max latency, p50, p95, p99, p99.9."
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  const m = /^(\d+) records sent, ([\d.]+) records\/sec/.exec(last);
  if (!m) throw new Error(`cannot read ProducerPerformance's summary: ${last}`);
  const records = Number(m[1]);
  const rate = Number(m[2]);
  const p99 = /([\d.]+) ms 99th/.exec(last);
  const times = r.stderr.trim().split('\n').at(-1) ?? '';
  const secs = [...times.matchAll(/(\d+)m([\d.]+)s/g)].map((t) => Number(t[1]) * 60 + Number(t[2]));
  return {
    client: `Java ProducerPerformance${transactional ? ' txn 100 ms' : ' acks=all'}`,
    records,
    seconds: records / rate,
    cpuSeconds: secs.length === 2 ? (secs[0] ?? 0) + (secs[1] ?? 0) : Number.NaN,
    txns: 0,
    ...(p99 ? { p99: Number(p99[1]) } : {}),
  };
}

async function createTopics(brokers: string[], topics: string[], compact: string[]): Promise<void> {
  const kafka = new kafkajs.Kafka({ clientId: 'bench', brokers, logLevel: kafkajs.logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: topics.map((topic) => ({
      topic,
      numPartitions: compact.includes(topic) ? 1 : 3,
      replicationFactor: 1,
      configEntries: compact.includes(topic) ? [{ name: 'cleanup.policy', value: 'compact' }] : [],
    })),
  });
  await admin.disconnect();
}

export async function deleteTopics(brokers: string[], prefix: string): Promise<void> {
  const kafka = new kafkajs.Kafka({ clientId: 'bench', brokers, logLevel: kafkajs.logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const mine = (await admin.listTopics()).filter((t) => t.startsWith(prefix));
  await admin.deleteTopics({ topics: mine }).catch(() => {});
  await admin.disconnect();
}

export async function platformaticInstalled(): Promise<boolean> {
  try {
    await import(PLATFORMATIC);
    return true;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const { brokers, started } = startedBroker();
  const id = `bench-clients-${Date.now().toString(36)}`;
  const results: ClientResult[] = [];
  try {
    const clients = ['kafkajs', 'kafkajs-redtail', 'platformatic'] as const;
    const topics = [...clients, 'java', 'java-txn'].map((t) => `${id}-${t}`);
    const offsets = clients.map((c) => `${id}-${c}.offsets`);
    await createTopics(brokers, [...topics, ...offsets], offsets);
    console.log(
      `bench:kafka-clients  brokers ${brokers.join(',')}  ${SECONDS} s each, ${TXN_MS} ms transactions, ` +
        `${CHUNK}-record sends, ${VALUE_BYTES}-byte values, compression ${COMPRESSION}`,
    );
    const only = (process.env.BENCH_CLIENTS ?? 'kafkajs,kafkajs-redtail,platformatic,java').split(',');
    for (const client of clients) {
      if (!only.includes(client)) continue;
      if (client === 'platformatic' && !(await platformaticInstalled())) {
        console.log('@platformatic/kafka is not installed: skipped');
        continue;
      }
      results.push(
        await runChild({
          client,
          brokers,
          topic: `${id}-${client}`,
          offsetsTopic: `${id}-${client}.offsets`,
          transactionalId: `${id}-${client}`,
          seconds: SECONDS,
        }),
      );
    }
    if (only.includes('java')) {
      results.push(runJava(brokers, `${id}-java-txn`, true, SECONDS, 200_000));
      results.push(runJava(brokers, `${id}-java`, false, SECONDS, 200_000));
    }
    const javaTxn = results.find((r) => r.client.includes('txn 100'));
    const javaRate = javaTxn ? javaTxn.records / javaTxn.seconds : Number.NaN;
    for (const r of results) {
      const rate = r.records / r.seconds;
      const cpu = Number.isNaN(r.cpuSeconds) ? 'n/a' : ((r.cpuSeconds / r.records) * 1e6).toFixed(2);
      console.log(
        `${r.client.padEnd(36)} ${fmt(rate).padStart(9)} records/s  ${cpu.padStart(6)} CPU s/M  ` +
          `${r.txns ? `${fmt(r.records / r.txns)} records/txn  ` : ''}${(rate / javaRate).toFixed(2)}× Java txn`,
      );
    }
    console.log(JSON.stringify(results));
  } finally {
    await deleteTopics(brokers, id).catch(() => {});
    if (started) execFileSync(kafkaScript, ['stop'], { stdio: 'ignore' });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const run =
    process.argv[2] === '--child'
      ? (async () => {
          const args = JSON.parse(process.argv[3] ?? '{}') as ChildArgs;
          const r = args.client === 'platformatic' ? await platformaticChild(args) : await kafkajsChild(args);
          process.stdout.write(`${JSON.stringify(r)}\n`);
        })()
      : main();
  run.catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
