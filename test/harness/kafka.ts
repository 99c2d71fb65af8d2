import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Admin, ITopicConfig, Kafka as KafkaClient, KafkaConfig, KafkaMessage } from 'kafkajs';
import kafkajs from 'kafkajs';

const { Kafka, logLevel } = kafkajs;

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

let cached: string[] | undefined;

/**
 * Brokers of the test Kafka: `KAFKA_BROKERS` (comma separated, as scripts/test.sh exports it) or, when unset, the
 * broker scripts/kafka.sh starts (a no-op when it already runs). Tests never mock the broker.
 */
export function kafkaBrokers(): string[] {
  if (cached) return cached;
  let spec = process.env.KAFKA_BROKERS;
  if (!spec) {
    const script = join(root, 'scripts', 'kafka.sh');
    execFileSync(script, ['start'], { stdio: ['ignore', 'ignore', 'inherit'] });
    spec = execFileSync(script, ['address'], { encoding: 'utf8' }).trim();
    process.env.KAFKA_BROKERS = spec;
  }
  cached = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return cached;
}

/**
 * The SASL_PLAINTEXT listener of the scripts/kafka.sh broker (users redtail/redtail-secret, a super user, and
 * limited/limited-secret, bound by ACLs), or `KAFKA_SASL_BROKERS`. Undefined when the tests run against some
 * other broker given by KAFKA_BROKERS: SASL tests then skip.
 */
export function kafkaSaslBrokers(): string[] | undefined {
  if (process.env.KAFKA_SASL_BROKERS) return process.env.KAFKA_SASL_BROKERS.split(',');
  const brokers = kafkaBrokers();
  const script = join(root, 'scripts', 'kafka.sh');
  try {
    const ours = execFileSync(script, ['address'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    if (brokers.length !== 1 || brokers[0] !== ours) return undefined;
    return [
      execFileSync(script, ['sasl-address'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim(),
    ];
  } catch {
    return undefined;
  }
}

/** The tail of the broker's log when it is the scripts/kafka.sh one, for failure messages. */
export function kafkaBrokerLog(lines = 60): string {
  const dir = process.env.REDTAIL_KAFKA_DIR ?? join(process.env.TMPDIR ?? tmpdir(), 'redtail-kafka');
  try {
    return readFileSync(join(dir, 'logs', 'server.log'), 'utf8')
      .split('\n')
      .slice(-lines)
      .join('\n');
  } catch {
    return '';
  }
}

/** A kafkajs client for tests; quiet unless KAFKA_LOG=debug|info. */
export function kafkaClient(extra: Partial<KafkaConfig> = {}): KafkaClient {
  const level =
    process.env.KAFKA_LOG === 'debug'
      ? logLevel.DEBUG
      : process.env.KAFKA_LOG === 'info'
        ? logLevel.INFO
        : logLevel.NOTHING;
  return new Kafka({
    clientId: 'redtail-test',
    brokers: kafkaBrokers(),
    logLevel: level,
    retry: { retries: 5, initialRetryTime: 100 },
    ...extra,
  });
}

/** A topic (or transactional id, group id) name no other test or run uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export async function withAdmin<T>(fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = kafkaClient().admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

export interface TopicOptions {
  partitions?: number;
  configs?: Record<string, string>;
}

/** Creates a topic (replication factor 1) and waits until its leaders are known. */
export async function createTopic(topic: string, options: TopicOptions = {}): Promise<void> {
  const spec: ITopicConfig = {
    topic,
    numPartitions: options.partitions ?? 1,
    replicationFactor: 1,
    configEntries: Object.entries(options.configs ?? {}).map(([name, value]) => ({ name, value })),
  };
  await withAdmin((admin) => admin.createTopics({ topics: [spec], waitForLeaders: true }));
}

/** Topic config values as the broker reports them. */
export async function topicConfig(topic: string): Promise<Record<string, string>> {
  return withAdmin(async (admin) => {
    const res = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic }],
    });
    const out: Record<string, string> = {};
    for (const e of res.resources[0]?.configEntries ?? []) out[e.configName] = e.configValue;
    return out;
  });
}

export interface ReadMessage {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, string>;
  timestamp: string;
}

export interface ReadOptions {
  /** `read_committed` (default) hides aborted and open transactions, as a downstream consumer would. */
  isolation?: 'read_committed' | 'read_uncommitted';
  /** Stop once no message arrived for this long after every partition reached its end (default 1500 ms). */
  idleMs?: number;
  /** Keep waiting (up to timeoutMs) until at least this many messages arrived. */
  minMessages?: number;
  timeoutMs?: number;
  /** Another broker than the shared test broker (e.g. a private one a test restarts). */
  brokers?: string[];
}

function headersOf(message: KafkaMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(message.headers ?? {})) {
    if (v === undefined) continue;
    out[k] = Array.isArray(v) ? v.map(String).join(',') : String(v);
  }
  return out;
}

/**
 * Reads a topic from the beginning with a fresh consumer group and returns every message it sees until idle, in
 * partition order (per partition: offset order). Enough for assertions on what a downstream consumer observes.
 */
export async function readTopic(topic: string, options: ReadOptions = {}): Promise<ReadMessage[]> {
  const idleMs = options.idleMs ?? 1500;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const min = options.minMessages ?? 0;
  const consumer = kafkaClient(options.brokers ? { brokers: options.brokers } : {}).consumer({
    groupId: uniqueName('redtail-test-reader'),
    readUncommitted: options.isolation === 'read_uncommitted',
    maxWaitTimeInMs: 200,
    sessionTimeout: 10_000,
    heartbeatInterval: 1000,
  });
  const out: ReadMessage[] = [];
  let last = Date.now();
  let assigned = false;
  consumer.on(consumer.events.GROUP_JOIN, () => {
    assigned = true;
    last = Date.now();
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic: t, partition, message }) => {
        last = Date.now();
        out.push({
          topic: t,
          partition,
          offset: message.offset,
          key: message.key,
          value: message.value,
          headers: headersOf(message),
          timestamp: message.timestamp,
        });
      },
    });
    const start = Date.now();
    for (;;) {
      await new Promise((r) => setTimeout(r, 100));
      const now = Date.now();
      // The deadline only ends a read that has stalled: a large topic may take longer than it to read while
      // messages keep arriving, and cutting that short would look like lost messages.
      if (now - start > timeoutMs && now - last >= idleMs) {
        if (out.length < min)
          throw new Error(
            `readTopic(${topic}): ${out.length} of at least ${min} messages within ${timeoutMs} ms`,
          );
        break;
      }
      if (assigned && out.length >= min && now - last >= idleMs) break;
    }
  } finally {
    await consumer.disconnect();
  }
  out.sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
  return out;
}

/**
 * A broker of its own for tests that stop or restart it (scripts/kafka.sh with a private state dir), so the
 * shared broker other test files use is never disturbed.
 */
export class PrivateKafka {
  private constructor(
    readonly dir: string,
    readonly brokers: string[],
  ) {}

  private static run(dir: string, args: string[]): string {
    return execFileSync(join(root, 'scripts', 'kafka.sh'), args, {
      encoding: 'utf8',
      env: { ...process.env, REDTAIL_KAFKA_DIR: dir },
      stdio: ['ignore', 'pipe', 'inherit'],
    }).trim();
  }

  static start(): PrivateKafka {
    const dir = join(process.env.TMPDIR ?? tmpdir(), `redtail-kafka-${uniqueName('private')}`);
    PrivateKafka.run(dir, ['start']);
    return new PrivateKafka(dir, [PrivateKafka.run(dir, ['address'])]);
  }

  /** Same ports and data; returns once the broker serves clients again. */
  restartAsync(): Promise<void> {
    return new Promise((resolve, reject) => {
      execFile(
        join(root, 'scripts', 'kafka.sh'),
        ['restart'],
        { env: { ...process.env, REDTAIL_KAFKA_DIR: this.dir } },
        (err) => (err ? reject(err) : resolve()),
      );
    });
  }

  /**
   * Stops the broker's JVM as an outage would, keeping its data and ports; `restartAsync` brings the same broker
   * back. Resolves once the process has exited.
   */
  down(timeoutMs = 60_000): Promise<void> {
    return stopBrokerProcess(this.dir, timeoutMs);
  }

  stop(): void {
    PrivateKafka.run(this.dir, ['stop']);
    rmSync(`${this.dir}.lock`, { force: true });
  }
}

/**
 * Stops the JVM of the scripts/kafka.sh broker in `dir` (SIGTERM, SIGKILL after `timeoutMs`), keeping its data and
 * ports (`kafka.sh restart` brings it back). Resolves once the process has exited.
 */
export async function stopBrokerProcess(dir: string, timeoutMs = 60_000): Promise<void> {
  const pid = Number(readFileSync(join(dir, 'pid'), 'utf8').trim());
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (alive()) process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (alive()) {
    if (Date.now() > deadline) process.kill(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Messages parsed as the sink's event JSON. */
export function jsonValues(messages: ReadMessage[]): Record<string, unknown>[] {
  return messages.filter((m) => m.value !== null).map((m) => JSON.parse(m.value!.toString('utf8')));
}

/**
 * The shared broker's log.dirs when it is the scripts/kafka.sh one (for Kafka's own DumpLogSegments), or undefined
 * when the tests run against another broker given by KAFKA_BROKERS.
 */
export function sharedBrokerDataDir(): string | undefined {
  const brokers = kafkaBrokers();
  const script = join(root, 'scripts', 'kafka.sh');
  try {
    const opts = {
      encoding: 'utf8' as const,
      stdio: ['ignore', 'pipe', 'ignore'] as ['ignore', 'pipe', 'ignore'],
    };
    const ours = execFileSync(script, ['address'], opts).trim();
    if (brokers.length !== 1 || brokers[0] !== ours) return undefined;
    return execFileSync(script, ['data-dir'], opts).trim();
  } catch {
    return undefined;
  }
}

/** The jars of the Kafka release scripts/kafka.sh runs, as a Java classpath entry. */
export function kafkaLibs(): string {
  const dir = execFileSync(join(root, 'scripts', 'kafka.sh'), ['libs'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  return join(dir, '*');
}

/**
 * Reads a whole topic (read_committed) with Kafka's Java client, compiled from test/kafka/CommittedReader.java on
 * first use: the reference implementation's view, to hold kafkajs's against.
 */
export function readTopicWithJava(topic: string, brokers = kafkaBrokers()): ReadMessage[] {
  const libs = kafkaLibs();
  const classes = join(tmpdir(), `redtail-java-reader-${process.pid}`);
  if (!existsSync(join(classes, 'CommittedReader.class'))) {
    mkdirSync(classes, { recursive: true });
    execFileSync('javac', ['-d', classes, '-cp', libs, join(root, 'test', 'kafka', 'CommittedReader.java')], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  }
  const out = execFileSync(
    'java',
    ['-cp', `${classes}:${libs}`, 'CommittedReader', brokers.join(','), topic],
    {
      encoding: 'utf8',
      maxBuffer: 512 << 20,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const messages = out
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [partition, offset, key, value] = line.split(' ') as [string, string, string, string];
      return {
        topic,
        partition: Number(partition),
        offset,
        key: key === '-' ? null : Buffer.from(key, 'base64'),
        value: value === '-' ? null : Buffer.from(value, 'base64'),
        headers: {},
        timestamp: '',
      };
    });
  // Same order as readTopic: per partition, by offset.
  return messages.sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
}

const CODEC_NAMES = ['none', 'gzip', 'snappy', 'lz4', 'zstd'];

/**
 * The compression codecs of the data batches the shared broker stored for `topic`, read from its log segments
 * (record batch v2: baseOffset int64, batchLength int32, partitionLeaderEpoch int32, magic int8, crc int32, then
 * attributes int16 whose low 3 bits are the codec and bit 5 marks transaction markers, which are never
 * compressed). Undefined when the broker is not the scripts/kafka.sh one.
 */
export function storedCodecs(topic: string): Set<string> | undefined {
  const data = sharedBrokerDataDir();
  if (!data) return undefined;
  const dirs = readdirSync(data).filter(
    (d) => d.startsWith(`${topic}-`) && /^\d+$/.test(d.slice(topic.length + 1)),
  );
  const codecs = new Set<string>();
  for (const d of dirs) {
    for (const f of readdirSync(join(data, d)).filter((f) => f.endsWith('.log'))) {
      const log = readFileSync(join(data, d, f));
      for (let at = 0; at + 23 <= log.length; at += 12 + log.readInt32BE(at + 8)) {
        if (log[at + 16] !== 2) throw new Error(`${d}/${f}: batch at ${at} has magic ${log[at + 16]}, not 2`);
        const attributes = log.readInt16BE(at + 21);
        if ((attributes & 0x20) === 0)
          codecs.add(CODEC_NAMES[attributes & 0x07] ?? `codec ${attributes & 0x07}`);
      }
    }
  }
  if (dirs.length === 0) throw new Error(`no partitions of ${topic} under ${data}`);
  return codecs;
}
