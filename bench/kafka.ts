import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { Kafka as KafkaClient, Message, Producer } from 'kafkajs';
import { registerCodec, registerGzipLevel } from '../sinks/kafka/codecs.js';
import { kafkajs } from '../sinks/kafka/kafkajsSeam.js';
import { chunkMessages, type OutMessage } from '../sinks/kafka/messages.js';
import { createJavaCompatiblePartitioner } from '../sinks/kafka/partitioner.js';
import { freePort } from '../test/harness/ports.js';
import { appendResultsSection, redtailArgv } from './benchProcs.js';
import { runJava } from './kafkaClients.js';
import { mixedRdb } from './rdbFixture.js';

/**
 * `npm run bench:kafka`: a live redis-server master → `redtail run --sink kafka://...` (the real binary, a child
 * process) → a real broker, against a bare transactional producer loop of the same client (kafkajs 2.2.4 with
 * redtail's record encoder and partitioner under it, sinks/kafka/kafkajsSeam.ts) writing the same records to the
 * same broker in the same run (the reference ceiling: no Redis, no replication, no event building).
 *
 * 0. Issue 12's own load (BENCH_BURST_N, default 50,000; 0 skips it): a `redis-benchmark -P 32 -t
 *    set,hset,lpush,sadd,zadd,incr` burst with no bound on redtail's lag, timed until redtail's acknowledged
 *    (Kafka-committed) offset reaches the master's (`burstPhase`).
 * 1. Sustained throughput for BENCH_SECONDS: BENCH_WRITERS clients send pipelines of BENCH_PIPELINE SETs to the
 *    master as fast as they can while at most BENCH_MAX_LAG events are written but not yet visible to a
 *    read_committed consumer of redtail's topic (so the master's replica buffer stays bounded and the figure is
 *    redtail's steady rate, not a burst). Events/s = events / (last one visible - first write). The reference, in
 *    its own process like redtail, commits transactions of 2,000 records (redtail's default batch) for as long.
 * 2. Latency, open loop at BENCH_RATE events/s (default: half of redtail's throughput) for BENCH_LATENCY_SECONDS,
 *    both sides at the same rate: every value carries the time it was written (on the master, or generated in the
 *    reference loop); a read_committed consumer computes visible time minus write time for every event; p50/p99.
 *    The consumer is Kafka's own Java consumer in a process of its own (bench/LatencyConsumer.java;
 *    BENCH_LATENCY_CONSUMER=kafkajs: a kafkajs consumer in this process, as before). The reference queues records
 *    as they are generated and each transaction takes what is queued, like redtail's pipeline while the previous
 *    batch is in flight.
 *
 * Uses KAFKA_BROKERS, else the scripts/kafka.sh broker (started, and stopped at the end, when not running).
 * A complete run (not BENCH_ONLY, not profiled) appends its summary lines to bench/results.md.
 */

const { Kafka, logLevel, CompressionTypes } = kafkajs;
const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..', '..');
const kafkaScript = join(repoRoot, 'scripts', 'kafka.sh');

const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const LATENCY_SECONDS = Number(process.env.BENCH_LATENCY_SECONDS ?? 10);
const WRITERS = Number(process.env.BENCH_WRITERS ?? 8);
const PIPELINE = Number(process.env.BENCH_PIPELINE ?? 500);
const VALUE_BYTES = Number(process.env.BENCH_VALUE_BYTES ?? 100);
/** Compression of redtail's sink, the reference loop and Java's producer alike (gzip: the sink's default). */
const COMPRESSION = process.env.BENCH_COMPRESSION ?? 'gzip';
/** zlib level of redtail's sink and the bare loop with gzip (the Java rows keep the Java client's default, 6). */
const GZIP_LEVEL = Number(process.env.BENCH_GZIP_LEVEL ?? 6);
const MAX_LAG = Number(process.env.BENCH_MAX_LAG ?? 20_000);
const KEYS = 10_000;
/** Keys the master holds when redtail connects (its snapshot phase); 0 skips it. */
const SNAPSHOT_KEYS = Number(process.env.BENCH_SNAPSHOT_KEYS ?? 300_000);
/**
 * BENCH_SNAPSHOT_RDB=1: the snapshot is bench:rdb's RDB (2.25M keys of mixed types, rdbFixture.ts) loaded by the
 * master, the file issue 12's snapshot target names, instead of BENCH_SNAPSHOT_KEYS keys of DEBUG POPULATE.
 */
const SNAPSHOT_RDB = process.env.BENCH_SNAPSHOT_RDB === '1';
/** Snapshot records redtail wrote that the snapshot references replay (cycling; their keys spread the partitions). */
const SNAPSHOT_SAMPLES = 2_000;
/** The sink's defaults the snapshot reference copies: maxTransactionBytes, maxBatchBytes (sinks/kafka/config.ts). */
const SINK_TXN_BYTES = 16_000_000;
const SINK_BATCH_BYTES = 900_000;
/** redtail's `pipeline.maxInFlightBatches` (unset: its default). */
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 0);
/** redis-benchmark -n of the burst phase (issue 12's own load); 0 skips it. */
const BURST_N = Number(process.env.BENCH_BURST_N ?? 50_000);
const BURST_TESTS = 'set,hset,lpush,sadd,zadd,incr';
/** The reference loop's transactions: records for up to 100 ms (as ProducerPerformance's), sent in ≤ 900 KB requests. */
const TXN_MS = 100;
const CHUNK_BYTES = 900_000;
/** REDTAIL_BENCH_PROFILE=DIR: redtail runs under `node --cpu-prof` into DIR (bench/profileSummary.ts reads it). */
const PROFILE_DIR = process.env.REDTAIL_BENCH_PROFILE;

/** User + system CPU seconds of a process so far (/proc/PID/stat fields 14 and 15, in clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** Every summary line printed, appended to bench/results.md when the run completes. */
const printed: string[] = [];
function say(line: string): void {
  console.log(line);
  printed.push(line);
}

/** A bench/results.md section: when, the machine, versions, the BENCH_ settings and the lines printed. */
function appendResults(list: string[]): void {
  const redis = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();
  const env = Object.entries(process.env)
    .filter(([k]) => k.startsWith('BENCH_'))
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  appendResultsSection(
    `bench:kafka ${new Date().toISOString()}`,
    `Node ${process.version}, kafkajs 2.2.4 with redtail's encoder, Kafka 4.4.0 at ${list.join(',')}, ${redis}; settings: ${env || 'defaults'}`,
    printed,
  );
}

const now = () => performance.timeOrigin + performance.now();
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** A value of VALUE_BYTES whose first field is the write time (epoch ms, fractional). */
function stamped(): string {
  const t = now().toFixed(3);
  return `${t};${'x'.repeat(Math.max(0, VALUE_BYTES - t.length - 1))}`;
}

function brokers(): { brokers: string[]; started: boolean } {
  if (process.env.KAFKA_BROKERS) return { brokers: process.env.KAFKA_BROKERS.split(','), started: false };
  const running = spawnSync(kafkaScript, ['status'], { stdio: 'ignore' }).status === 0;
  if (!running) execFileSync(kafkaScript, ['start'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const address = execFileSync(kafkaScript, ['address'], { encoding: 'utf8' }).trim();
  return { brokers: [address], started: !running };
}

async function startMaster(rdb?: string): Promise<{ port: number; proc: ChildProcess; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'redtail-bench-kafka-'));
  // Redis loads dump.rdb from its dir at start (save '' only stops it writing one).
  if (rdb) copyFileSync(rdb, join(dir, 'dump.rdb'));
  const port = await freePort();
  const proc = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--repl-backlog-size',
      '256mb',
      '--client-output-buffer-limit',
      'replica 0 0 0',
      '--enable-debug-command',
      'yes',
      // Redis 7's diskless sync waits repl-diskless-sync-delay (5 s) for more replicas before it starts the
      // transfer: a master setting, not redtail's time (BENCH_DISKLESS_DELAY=5 keeps Redis' default).
      '--repl-diskless-sync-delay',
      process.env.BENCH_DISKLESS_DELAY ?? '0',
    ],
    { stdio: 'ignore' },
  );
  // Up to 5 s to start, 120 s when it loads an RDB (it answers LOADING until done).
  for (let i = 0; i < (rdb ? 4800 : 200); i++) {
    const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.ping();
      c.disconnect();
      return { port, proc, dir };
    } catch {
      c.disconnect();
      await sleep(25);
    }
  }
  throw new Error('redis-server did not start');
}

/** A read_committed consumer collecting write→visible delays of stamped values from `valueOf(json)`. */
async function latencyConsumer(
  kafka: KafkaClient,
  topics: string[],
  stampOf: (json: Record<string, unknown>) => unknown,
) {
  const samples: number[] = [];
  let from = Number.POSITIVE_INFINITY;
  const consumer = kafka.consumer({
    groupId: `bench-${randomBytes(4).toString('hex')}`,
    maxWaitTimeInMs: 20,
    sessionTimeout: 10_000,
    heartbeatInterval: 1000,
  });
  let joined = false;
  consumer.on(consumer.events.GROUP_JOIN, () => {
    joined = true;
  });
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: false });
  await consumer.run({
    eachBatchAutoResolve: true,
    eachBatch: async ({ batch }) => {
      const at = now();
      for (const m of batch.messages) {
        if (m.value === null) continue;
        const v = stampOf(JSON.parse(m.value.toString('utf8')) as Record<string, unknown>);
        if (typeof v !== 'string') continue;
        const t = Number(v.slice(0, v.indexOf(';')));
        if (t >= from) samples.push(at - t);
      }
    },
  });
  for (let i = 0; i < 600 && !joined; i++) await sleep(50);
  // A group joined with fromBeginning false starts at the end once its first fetch resolved the offsets.
  await sleep(1500);
  return {
    samples,
    begin() {
      from = now();
    },
    async stop() {
      await consumer.disconnect();
    },
  };
}

/** What a latency probe reports: the delays (ms) of every stamped record made visible after `begin`. */
interface LatencyProbe {
  begin(): void;
  stop(): Promise<{ samples: number; p50: number; p90: number; p99: number; p999: number; max: number }>;
}

/**
 * BENCH_LATENCY_CONSUMER: `java` (default) measures with Kafka's own Java consumer in a process of its own
 * (bench/LatencyConsumer.java, run from source against the broker's jars); `kafkajs` with a kafkajs consumer on this
 * process's event loop, as before. kafkajs decodes every record in JS here, beside the open-loop writer: at 27k
 * records/s its own queueing was part of the figure (NOTES K11).
 */
const LATENCY_CONSUMER = process.env.BENCH_LATENCY_CONSUMER ?? 'java';

async function latencyProbe(kafka: KafkaClient, list: string[], topics: string[]): Promise<LatencyProbe> {
  if (LATENCY_CONSUMER === 'kafkajs') {
    const c = await latencyConsumer(kafka, topics, (j) => j.value);
    return {
      begin: () => c.begin(),
      async stop() {
        await c.stop();
        const sorted = c.samples.sort((a, b) => a - b);
        const at = (p: number) => percentile(sorted, p);
        return {
          samples: sorted.length,
          p50: at(50),
          p90: at(90),
          p99: at(99),
          p999: at(99.9),
          max: sorted.at(-1) ?? Number.NaN,
        };
      },
    };
  }
  if (LATENCY_CONSUMER !== 'java')
    throw new Error(`BENCH_LATENCY_CONSUMER must be java or kafkajs, not ${LATENCY_CONSUMER}`);
  return javaLatencyConsumer(list, topics);
}

async function javaLatencyConsumer(list: string[], topics: string[]): Promise<LatencyProbe> {
  const libs = execFileSync(kafkaScript, ['libs'], { encoding: 'utf8' }).trim();
  const source = join(repoRoot, 'bench', 'LatencyConsumer.java');
  const proc = spawn('java', ['-cp', `${libs}/*`, '-Xmx256m', source, list.join(','), topics.join(',')], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => {
    out += d.toString('utf8');
  });
  proc.stderr.on('data', (d: Buffer) => {
    err = (err + d.toString('utf8')).slice(-4000);
  });
  const exited = new Promise<number | null>((r) => proc.on('exit', r));
  for (let i = 0; i < 1200 && !out.includes('ready\n'); i++) {
    if (proc.exitCode !== null) break;
    await sleep(50);
  }
  if (!out.includes('ready\n')) {
    proc.kill('SIGKILL');
    throw new Error(
      `bench/LatencyConsumer.java did not get ready: ${err.trim().split('\n').slice(-5).join(' | ')}`,
    );
  }
  return {
    begin: () => proc.stdin.write('begin\n'),
    async stop() {
      proc.stdin.end('stop\n');
      const code = await exited;
      const last = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0 || !last.startsWith('{'))
        throw new Error(`bench/LatencyConsumer.java exited ${code}: ${err.trim()}`);
      return JSON.parse(last.replaceAll('NaN', 'null')) as Awaited<ReturnType<LatencyProbe['stop']>>;
    },
  };
}

/** A record as the snapshot reference replays it (bytes of one redtail wrote). */
interface SampleRecord {
  key: string | null;
  value: string;
  headers: Record<string, string>;
}

/** Counts the records of a topic as a read_committed consumer sees them, with the time of the last one. */
async function countingConsumer(kafka: KafkaClient, topic: string, fromBeginning = false, keep = 0) {
  const consumer = kafka.consumer({
    groupId: `bench-count-${randomBytes(4).toString('hex')}`,
    maxWaitTimeInMs: 20,
    sessionTimeout: 10_000,
    heartbeatInterval: 1000,
  });
  const state = { count: 0, lastAt: 0, joined: false, samples: [] as SampleRecord[] };
  consumer.on(consumer.events.GROUP_JOIN, () => {
    state.joined = true;
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning });
  await consumer.run({
    eachBatchAutoResolve: true,
    eachBatch: async ({ batch }) => {
      state.count += batch.messages.length;
      state.lastAt = performance.now();
      for (const m of batch.messages) {
        if (state.samples.length >= keep || m.value === null) break;
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(m.headers ?? {}))
          if (Buffer.isBuffer(v)) headers[k] = v.toString('base64');
        state.samples.push({
          key: m.key === null ? null : m.key.toString('base64'),
          value: m.value.toString('base64'),
          headers,
        });
      }
    },
  });
  for (let i = 0; i < 600 && !state.joined; i++) await sleep(50);
  if (!fromBeginning) await sleep(1500);
  return { state, stop: () => consumer.disconnect() };
}

/** Committed records in a topic: the sum over partitions of high watermark minus low (control records count too,
 * one per transaction and partition, so this is used only for the single-partition offsets topic: 2 per txn). */
async function countRecords(kafka: KafkaClient, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    let n = 0;
    for (const o of offsets) n += Number(o.high) - Number(o.low);
    return n / 2;
  } finally {
    await admin.disconnect();
  }
}

/** Phase 0: issue 12's redis-benchmark burst, timed to the last acknowledged (committed) offset. */
interface BurstFigures {
  eventsPerSec: number;
  events: number;
  catchUpS: number;
  cpuPerM: number;
}

interface Figures {
  burst?: BurstFigures;
  /** Snapshot: the master's keys per second, from redtail's start to all of them committed (snapshotPhase). */
  snapshotKeysPerSec?: number;
  snapshotCpuPerM?: number;
  snapshotKeys?: number;
  /** Records of redtail's snapshot, for the references (not printed). */
  snapshotSamples?: SampleRecord[];
  cpuPerM?: number;
  /** Events per transaction: the checkpoint records of the offsets topic count the transactions. */
  eventsPerTxn?: number;
  eventsPerSec: number;
  events: number;
  seconds: number;
  p50: number;
  p99: number;
  samples: number;
  rate: number;
}

async function benchRedtail(
  kafka: KafkaClient,
  list: string[],
  id: string,
  rateFor: (tput: number) => number,
): Promise<Figures> {
  const master = await startMaster(SNAPSHOT_RDB ? await mixedRdb() : undefined);
  const dir = mkdtempSync(join(tmpdir(), 'redtail-bench-cfg-'));
  const config = join(dir, 'redtail.json');
  const topic = `bench-${id}.<db>`;
  const topic0 = topic.replace('<db>', '0');
  writeFileSync(
    config,
    JSON.stringify({
      sinkOptions: {
        kafka: {
          topic,
          offsetsTopic: `bench-${id}.offsets`,
          transactionalId: `bench-${id}`,
          name: 'bench',
          compression: COMPRESSION,
          gzipLevel: GZIP_LEVEL,
          // BENCH_SINK_OPTIONS='{"maxTransactionMs":0}': more sink options, for A/B runs of one setting.
          ...(JSON.parse(process.env.BENCH_SINK_OPTIONS ?? '{}') as Record<string, unknown>),
        },
      },
      ...(IN_FLIGHT ? { pipeline: { maxInFlightBatches: IN_FLIGHT } } : {}),
    }),
  );
  // The snapshot: SNAPSHOT_KEYS keys made by DEBUG POPULATE before redtail connects (or the loaded RDB's keys); the
  // event topic made here (as redtail would: 3 partitions) so a counting consumer can read it from its first record.
  let snapshotKeys = SNAPSHOT_KEYS;
  try {
    const pop = new Redis({ port: master.port, host: '127.0.0.1' });
    if (SNAPSHOT_RDB) snapshotKeys = await pop.dbsize();
    else if (SNAPSHOT_KEYS > 0) await pop.call('DEBUG', 'POPULATE', String(SNAPSHOT_KEYS), 'snap', '100');
    pop.disconnect();
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic: topic0, numPartitions: 3, replicationFactor: 1 }],
    });
    await admin.disconnect();
  } catch (err) {
    master.proc.kill('SIGKILL');
    throw err;
  }
  const spawnedAt = performance.now();
  const redtail = spawn(
    process.execPath,
    redtailArgv(
      [
        'run',
        '--master',
        `redis://127.0.0.1:${master.port}`,
        '--sink',
        `kafka://${list.join(',')}`,
        '--config',
        config,
        '--log-level',
        process.env.BENCH_LOG_LEVEL ?? 'warn',
      ],
      PROFILE_DIR,
    ),
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const clients: Redis[] = [];
  const client = () => {
    const c = new Redis({ port: master.port, host: '127.0.0.1' });
    clients.push(c);
    return c;
  };
  try {
    let snapshotKeysPerSec: number | undefined;
    let snapshotCpuPerM: number | undefined;
    let snapshotSamples: SampleRecord[] = [];
    if (snapshotKeys > 0) {
      const s = await snapshotPhase(master.port, redtail, spawnedAt, snapshotKeys);
      snapshotKeysPerSec = s.keysPerSec;
      snapshotCpuPerM = s.cpuPerM;
      // Afterwards, not beside it: a kafkajs consumer decoding every record competes for the two cores. It checks
      // that every key is there and keeps records for the references.
      const counter = await countingConsumer(kafka, topic0, true, SNAPSHOT_SAMPLES);
      for (let i = 0; i < 60_000 && counter.state.count < snapshotKeys; i++) await sleep(10);
      await counter.stop();
      if (counter.state.count < snapshotKeys)
        throw new Error(`snapshot: ${counter.state.count} of ${snapshotKeys} keys visible after 600 s`);
      snapshotSamples = counter.state.samples;
    }
    const ctl = client();
    // Ready when a write comes back acknowledged, i.e. committed in Kafka.
    for (let i = 0; ; i++) {
      await ctl.set('bench:ready', '1');
      if (Number(await ctl.call('WAIT', '1', '1000')) === 1) break;
      if (i > 120 || redtail.exitCode !== null) throw new Error('redtail did not become ready');
    }

    // 0. Issue 12's own load, unbounded: a redis-benchmark burst, then the catch-up.
    const burst = BURST_N > 0 ? await burstPhase(master.port, redtail.pid ?? 0) : undefined;

    // 1. Sustained throughput with a bounded lag.
    const counter = await countingConsumer(kafka, topic0);
    const txns0 = await countRecords(kafka, `bench-${id}.offsets`);
    let events = 0;
    const cpu0 = cpuSeconds(redtail.pid ?? 0);
    const started = performance.now();
    const deadline = started + SECONDS * 1000;
    const writer = async (w: number) => {
      const c = client();
      let n = w * 1_000_000;
      while (performance.now() < deadline) {
        if (events - counter.state.count > MAX_LAG) {
          await sleep(2);
          continue;
        }
        events += PIPELINE;
        const p = c.pipeline();
        for (let i = 0; i < PIPELINE; i++) p.set(`bench:k:${n++ % KEYS}`, stamped());
        await p.exec();
      }
    };
    await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
    for (let i = 0; i < 12_000 && counter.state.count < events; i++) await sleep(10);
    await counter.stop();
    // More is possible (the readiness writes' transaction may become visible after the consumer joined); fewer not.
    if (counter.state.count < events)
      throw new Error(`${counter.state.count} records visible in Kafka for ${events} writes`);
    const seconds = (counter.state.lastAt - started) / 1000;
    const eventsPerSec = events / seconds;
    const cpuPerM = ((cpuSeconds(redtail.pid ?? 0) - cpu0) / events) * 1e6;
    const eventsPerTxn = events / Math.max(1, (await countRecords(kafka, `bench-${id}.offsets`)) - txns0);
    say(
      `redtail stream: ${fmt(eventsPerSec)} events/s, ${cpuPerM.toFixed(2)} CPU s per million events, ` +
        `${fmt(eventsPerTxn)} events per transaction`,
    );
    const base = {
      burst,
      snapshotKeysPerSec,
      snapshotCpuPerM,
      snapshotKeys: snapshotKeys > 0 ? snapshotKeys : undefined,
      snapshotSamples,
      cpuPerM,
      eventsPerTxn,
      eventsPerSec,
      events,
      seconds,
    };
    if (LATENCY_SECONDS === 0) return { ...base, p50: Number.NaN, p99: Number.NaN, samples: 0, rate: 0 };

    // 2. Open-loop latency.
    const rate = rateFor(eventsPerSec);
    const consumer = await latencyProbe(kafka, list, [topic0]);
    consumer.begin();
    const lc = client();
    const tick = 10;
    const per = Math.max(1, Math.round((rate * tick) / 1000));
    const t0 = performance.now();
    let sent = 0;
    while (performance.now() - t0 < LATENCY_SECONDS * 1000) {
      const due = Math.floor(((performance.now() - t0) / tick) * per);
      if (due > sent) {
        const p = lc.pipeline();
        for (; sent < due; sent++) p.set(`bench:lat:${sent % KEYS}`, stamped());
        void p.exec();
      }
      await sleep(tick);
    }
    await lc.call('WAIT', '1', '0');
    await sleep(1000);
    const l = await consumer.stop();
    say(
      `redtail latency at ${fmt(rate)} events/s (${LATENCY_CONSUMER} consumer): ${fmt(l.samples)} samples, ` +
        `p50 ${l.p50.toFixed(1)} p90 ${l.p90.toFixed(1)} p99 ${l.p99.toFixed(1)} p99.9 ${l.p999.toFixed(1)} ` +
        `max ${l.max.toFixed(1)} ms (load average ${loadavg()[0]?.toFixed(2)})`,
    );
    return {
      ...base,
      p50: l.p50,
      p99: l.p99,
      samples: l.samples,
      rate,
    };
  } finally {
    for (const c of clients) c.disconnect();
    // An exited child emits no second 'exit': waiting for one would hang the bench after redtail failed.
    if (redtail.exitCode === null && redtail.signalCode === null) {
      redtail.kill('SIGTERM');
      await new Promise((r) => redtail.once('exit', r));
    }
    master.proc.kill('SIGKILL');
    rmSync(master.dir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The master's replication offset, from its INFO text. */
function masterOffset(info: string): number {
  return Number(/master_repl_offset:(\d+)/.exec(info)?.[1] ?? -1);
}

/** The highest offset a replica (redtail: what it has made durable) acknowledged, from the master's INFO text. */
function ackedOffset(info: string): number {
  return Math.max(-1, ...[...info.matchAll(/slave\d+:[^\r\n]*offset=(\d+)/g)].map((m) => Number(m[1])));
}

/**
 * Times redtail's snapshot into Kafka from its start to the moment the master sees it acknowledge a write made just
 * after the fork of its sync: with ack=durable it acknowledges an offset only once Kafka committed every event up to
 * it, and the snapshot's events come first. (The write must follow the fork, or it would be in the snapshot itself.)
 */
async function snapshotPhase(
  port: number,
  redtail: ChildProcess,
  spawnedAt: number,
  keys: number,
): Promise<{ keysPerSec: number; cpuPerM: number }> {
  // The fork shows in INFO persistence (or, once done, as an online replica); acknowledgements in INFO replication.
  const info = (...sections: string[]) =>
    execFileSync('redis-cli', ['-p', String(port), 'INFO', ...sections], { encoding: 'utf8' });
  const forked = (text: string) =>
    /rdb_bgsave_in_progress:1/.test(text) || /slave\d+:[^\r\n]*state=online/.test(text);
  for (let i = 0; !forked(info('persistence', 'replication')); i++) {
    if (redtail.exitCode !== null) throw new Error('redtail exited before its sync started');
    if (i > 12_000) throw new Error('snapshot: the master did not start a sync for redtail within 60 s');
    await sleep(5);
  }
  execFileSync('redis-cli', ['-p', String(port), 'SET', 'bench:snapshot-marker', '1'], { stdio: 'ignore' });
  const target = masterOffset(info('replication'));
  while (ackedOffset(info('replication')) < target) {
    if (redtail.exitCode !== null) throw new Error('redtail exited during the snapshot');
    if (performance.now() - spawnedAt > 600_000) throw new Error('snapshot: not committed within 600 s');
    await sleep(5);
  }
  const keysPerSec = keys / ((performance.now() - spawnedAt) / 1000);
  const cpuPerM = (cpuSeconds(redtail.pid ?? 0) / keys) * 1e6;
  say(
    `redtail snapshot${SNAPSHOT_RDB ? " (bench:rdb's RDB)" : ''}: ${fmt(keys)} keys, ${fmt(keysPerSec)} keys/s from ` +
      `its start to committed, ${cpuPerM.toFixed(2)} CPU s per million keys (incl. start-up)`,
  );
  return { keysPerSec, cpuPerM };
}

/**
 * Issue 12's load as a new user runs it: `redis-benchmark -P 32 -n BENCH_BURST_N -t set,hset,lpush,sadd,zadd,incr`
 * at full speed against the master (one event per command), with no bound on redtail's lag: what it has not taken
 * yet waits in the master's replica buffer and redtail's spool. Done when redtail's acknowledged offset (REPLCONF
 * ACK: with ack=durable, what Kafka has committed; sent as the durable position moves) reaches the master's offset
 * at the burst's end. Prints events/s from the burst's start, the catch-up after its end and CPU per million.
 */
async function burstPhase(port: number, pid: number): Promise<BurstFigures> {
  const info = () =>
    execFileSync('redis-cli', ['-p', String(port), 'INFO', 'replication'], { encoding: 'utf8' });
  const tests = BURST_TESTS.split(',').length;
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  const r = spawnSync(
    'redis-benchmark',
    ['-p', String(port), '-P', '32', '-q', '-n', String(BURST_N), '-t', BURST_TESTS],
    {
      stdio: 'ignore',
    },
  );
  if (r.status !== 0) throw new Error(`redis-benchmark exited with ${r.status}`);
  const t1 = performance.now();
  const target = masterOffset(info());
  while (ackedOffset(info()) < target) {
    if (performance.now() - t1 > 600_000) throw new Error('burst: redtail did not catch up within 600 s');
    await sleep(5);
  }
  const t2 = performance.now();
  const events = BURST_N * tests;
  const figures = {
    eventsPerSec: events / ((t2 - t0) / 1000),
    events,
    catchUpS: (t2 - t1) / 1000,
    cpuPerM: ((cpuSeconds(pid) - cpu0) / events) * 1e6,
  };
  say(
    `redtail burst (redis-benchmark -P 32 -n ${fmt(BURST_N)} -t ${BURST_TESTS}): ${fmt(events)} events, ` +
      `master ${fmt(events / ((t1 - t0) / 1000))} commands/s; redtail ${fmt(figures.eventsPerSec)} events/s ` +
      `into Kafka, caught up ${figures.catchUpS.toFixed(2)} s after the burst, ` +
      `${figures.cpuPerM.toFixed(2)} CPU s per million events`,
  );
  return figures;
}

/** The same records redtail writes for `SET bench:k:<n> <value>`: event JSON, key, headers, checkpoint record. */
function record(offset: number, key: string, value: string, replid: string): Message {
  const ts = Date.now();
  return {
    key,
    value: JSON.stringify({
      v: 1,
      op: 'set',
      db: 0,
      key,
      type: 'string',
      value,
      source: { replid, offset, seq: 0, snapshot: false },
      ts,
    }),
    headers: { op: 'set', db: '0', replid, offset: String(offset), seq: '0' },
    timestamp: String(ts),
  };
}

const CODECS: Record<string, number> = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  lz4: CompressionTypes.LZ4,
  snappy: CompressionTypes.Snappy,
};

/** kafkajs ships gzip only: the bench's consumers and the bare loop need the codecs redtail registers. */
async function registerCodecs(): Promise<void> {
  if (COMPRESSION === 'lz4' || COMPRESSION === 'snappy') await registerCodec(COMPRESSION);
  registerGzipLevel(GZIP_LEVEL);
}

function sizeOf(m: Message): number {
  return 64 + String(m.value ?? '').length + String(m.key ?? '').length + 80;
}

interface ChildArgs {
  brokers: string[];
  id: string;
  topic: string;
  offsetsTopic: string;
  mode: 'throughput' | 'latency' | 'snapshot';
  seconds: number;
  rate: number;
  /** mode snapshot: a JSON file of SampleRecord[] to replay SNAPSHOT_KEYS times in all. */
  samplesFile?: string;
}

/** Estimated record bytes as the sink's messages.ts counts them (RECORD_OVERHEAD 64, 4 per header). */
function sinkSizeOf(m: Message): number {
  let n = 64 + ((m.key as Buffer | null)?.length ?? 0) + ((m.value as Buffer | null)?.length ?? 0);
  for (const [k, v] of Object.entries(m.headers ?? {})) n += k.length + ((v as Buffer).length ?? 0) + 4;
  return n;
}

/**
 * The snapshot reference: SNAPSHOT_KEYS records, bytes of redtail's own snapshot records replayed in turn, sent as
 * the sink sends a snapshot: transactions of up to the sink's maxTransactionBytes, split into requests by the sink's
 * chunkMessages (≤ maxBatchBytes per partition batch), the checkpoint record with the last request, back to back.
 */
async function snapshotReference(producer: Producer, args: ChildArgs, compression: number) {
  const samples = (JSON.parse(readFileSync(args.samplesFile ?? '', 'utf8')) as SampleRecord[]).map((r) => {
    const headers: Record<string, Buffer> = {};
    for (const [k, v] of Object.entries(r.headers)) headers[k] = Buffer.from(v, 'base64');
    const message: Message = {
      key: r.key === null ? null : Buffer.from(r.key, 'base64'),
      value: Buffer.from(r.value, 'base64'),
      headers,
    };
    return { topic: args.topic, message, size: sinkSizeOf(message) } satisfies OutMessage;
  });
  if (samples.length === 0) throw new Error('snapshot reference: no sample records');
  let sent = 0;
  let txns = 0;
  while (sent < SNAPSHOT_KEYS) {
    const records: OutMessage[] = [];
    for (let bytes = 0; sent < SNAPSHOT_KEYS && bytes < SINK_TXN_BYTES; sent++) {
      const s = samples[sent % samples.length] as OutMessage;
      // A fresh Message per record, as the sink makes one per event (kafkajs stamps timestamps into it).
      records.push({ ...s, message: { ...s.message, timestamp: String(Date.now()) } });
      bytes += s.size;
    }
    records.push({
      topic: args.offsetsTopic,
      message: { key: 'ref', value: JSON.stringify({ sent, batch: randomBytes(8).toString('hex') }) },
      size: 256,
    });
    const txn = await producer.transaction();
    for (const topicMessages of chunkMessages(records, SINK_BATCH_BYTES, () => 3))
      await txn.sendBatch({ topicMessages, acks: -1, compression });
    await txn.commit();
    txns++;
  }
  return { events: sent, txns };
}

/** The reference loop, in a child process of its own as redtail is: prints its figures as JSON. */
async function referenceChild(args: ChildArgs): Promise<void> {
  await registerCodecs();
  const kafka = new Kafka({
    clientId: 'redtail-bench-ref',
    brokers: args.brokers,
    logLevel: logLevel.NOTHING,
  });
  const producer = kafka.producer({
    transactionalId: `bench-${args.id}-ref`,
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: createJavaCompatiblePartitioner,
  });
  await producer.connect();
  const replid = randomBytes(20).toString('hex');
  let offset = 0;
  let txns = 0;
  let txnMs = 0;
  const compression = CODECS[COMPRESSION] ?? CompressionTypes.GZIP;
  // As the sink does: the records in requests of at most CHUNK_BYTES, the checkpoint record with the last one.
  const commit = async (messages: Message[]) => {
    const t = performance.now();
    txns++;
    const txn = await producer.transaction();
    let from = 0;
    while (from < messages.length) {
      let bytes = 0;
      let to = from;
      while (to < messages.length && bytes < CHUNK_BYTES) bytes += sizeOf(messages[to++] as Message);
      const topicMessages = [{ topic: args.topic, messages: messages.slice(from, to) }];
      if (to === messages.length)
        topicMessages.push({
          topic: args.offsetsTopic,
          messages: [
            { key: 'ref', value: JSON.stringify({ replid, offset, batch: randomBytes(8).toString('hex') }) },
          ],
        });
      await txn.sendBatch({ topicMessages, acks: -1, compression });
      from = to;
    }
    await txn.commit();
    txnMs += performance.now() - t;
  };
  let events = 0;
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  if (args.mode === 'snapshot') {
    ({ events, txns } = await snapshotReference(producer, args, compression));
  } else if (args.mode === 'throughput') {
    // Transactions of what can be made in TXN_MS (ProducerPerformance's --transaction-duration-ms 100), built while
    // the previous one commits, as the sink encodes the next batches while a transaction is in flight.
    let next: Promise<void> = Promise.resolve();
    while (performance.now() - started < args.seconds * 1000) {
      const messages: Message[] = [];
      const until = performance.now() + TXN_MS;
      while (performance.now() < until) {
        for (let i = 0; i < 100; i++) {
          offset += 50;
          messages.push(record(offset, `bench:k:${events++ % KEYS}`, stamped(), replid));
        }
        await new Promise((r) => setImmediate(r));
      }
      await next;
      next = commit(messages);
    }
    await next;
  } else {
    const queue: Message[] = [];
    const tick = 10;
    const per = Math.max(1, Math.round((args.rate * tick) / 1000));
    let generating = true;
    const generator = (async () => {
      while (performance.now() - started < args.seconds * 1000) {
        const due = Math.floor(((performance.now() - started) / tick) * per);
        for (; events < due; events++) {
          offset += 50;
          queue.push(record(offset, `bench:lat:${events % KEYS}`, stamped(), replid));
        }
        await sleep(tick);
      }
      generating = false;
    })();
    while (generating || queue.length > 0) {
      if (queue.length === 0) {
        await sleep(1);
        continue;
      }
      await commit(queue.splice(0));
    }
    await generator;
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await producer.disconnect();
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  process.stdout.write(`${JSON.stringify({ events, seconds, txns, txnMs: txnMs / txns, cpuSeconds })}\n`);
}

interface ChildResult {
  cpuSeconds: number;
  events: number;
  seconds: number;
  txns: number;
  txnMs: number;
}

function runReferenceChild(args: ChildArgs): Promise<ChildResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(
      process.execPath,
      [fileURLToPath(import.meta.url), '--reference', JSON.stringify(args)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`reference loop exited with ${code}`));
      resolvePromise(JSON.parse(out.trim().split('\n').at(-1)!) as ChildResult);
    });
  });
}

/** The topics a reference loop writes: its data topics (3 partitions each) and its compacted offsets topic. */
async function createReferenceTopics(
  kafka: KafkaClient,
  topics: string[],
  offsetsTopic: string,
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        ...topics.map((topic) => ({ topic, numPartitions: 3, replicationFactor: 1 })),
        {
          topic: offsetsTopic,
          numPartitions: 1,
          replicationFactor: 1,
          configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
        },
      ],
    });
  } finally {
    await admin.disconnect();
  }
}

async function benchReference(
  kafka: KafkaClient,
  brokersList: string[],
  id: string,
  rate: number,
): Promise<Figures> {
  const topic = `bench-${id}-ref`;
  const offsetsTopic = `bench-${id}-ref.offsets`;
  await createReferenceTopics(kafka, [topic], offsetsTopic);
  const base = { brokers: brokersList, id, topic, offsetsTopic, rate };
  const tput = await runReferenceChild({ ...base, mode: 'throughput', seconds: SECONDS });
  const throughput = {
    eventsPerSec: tput.events / tput.seconds,
    cpuPerM: (tput.cpuSeconds / tput.events) * 1e6,
    eventsPerTxn: tput.events / tput.txns,
    events: tput.events,
    seconds: tput.seconds,
  };
  if (LATENCY_SECONDS === 0) return { ...throughput, p50: Number.NaN, p99: Number.NaN, samples: 0, rate };
  const consumer = await latencyProbe(kafka, brokersList, [topic]);
  consumer.begin();
  const lat = await runReferenceChild({ ...base, mode: 'latency', seconds: LATENCY_SECONDS });
  say(
    `reference loop: throughput phase ${fmt(tput.events / tput.txns)} records per transaction, ` +
      `${tput.txnMs.toFixed(1)} ms each; latency phase ${fmt(lat.events / lat.txns)} records, ${lat.txnMs.toFixed(1)} ms each`,
  );
  await sleep(1000);
  const l = await consumer.stop();
  return { ...throughput, p50: l.p50, p99: l.p99, samples: l.samples, rate };
}

interface SnapshotRefs {
  bare: { keysPerSec: number; cpuPerM: number; txns: number };
  java: { keysPerSec: number; cpuPerM: number };
}

/**
 * The snapshot's references in the same run: the bare client loop and Kafka's ProducerPerformance (transactional,
 * 100 ms transactions) each sending SNAPSHOT_KEYS records with the values of redtail's own snapshot records (Java:
 * values only, from a payload file; the bare loop: keys, values and headers, in the sink's transaction shape).
 */
async function benchSnapshotRefs(
  kafka: KafkaClient,
  list: string[],
  id: string,
  samples: SampleRecord[],
): Promise<SnapshotRefs> {
  const topic = `bench-${id}-snapref`;
  const javaTopic = `bench-${id}-snapjava`;
  const offsetsTopic = `bench-${id}-snapref.offsets`;
  await createReferenceTopics(kafka, [topic, javaTopic], offsetsTopic);
  const dir = mkdtempSync(join(tmpdir(), 'redtail-bench-snapref-'));
  try {
    const samplesFile = join(dir, 'samples.json');
    const payloadFile = join(dir, 'payloads.txt');
    writeFileSync(samplesFile, JSON.stringify(samples));
    writeFileSync(
      payloadFile,
      Buffer.concat(samples.flatMap((r) => [Buffer.from(r.value, 'base64'), Buffer.from('\n')])),
    );
    const bare = await runReferenceChild({
      brokers: list,
      id: `${id}-snap`,
      topic,
      offsetsTopic,
      mode: 'snapshot',
      seconds: 0,
      rate: 0,
      samplesFile,
    });
    const java = runJava(list, javaTopic, true, 0, 0, {
      compression: COMPRESSION,
      payloadFile,
      records: SNAPSHOT_KEYS,
    });
    const refs = {
      bare: {
        keysPerSec: bare.events / bare.seconds,
        cpuPerM: (bare.cpuSeconds / bare.events) * 1e6,
        txns: bare.txns,
      },
      java: { keysPerSec: java.records / java.seconds, cpuPerM: (java.cpuSeconds / java.records) * 1e6 },
    };
    say(
      `snapshot references, ${fmt(SNAPSHOT_KEYS)} records of redtail's snapshot values: bare client loop ` +
        `${fmt(refs.bare.keysPerSec)}/s (${bare.txns} transactions, ${refs.bare.cpuPerM.toFixed(2)} CPU s/M), ` +
        `Java ProducerPerformance txn 100 ms ${fmt(refs.java.keysPerSec)}/s (${refs.java.cpuPerM.toFixed(2)} CPU s/M)`,
    );
    return refs;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  await registerCodecs();
  const { brokers: list, started } = brokers();
  const kafka = new Kafka({ clientId: 'redtail-bench', brokers: list, logLevel: logLevel.NOTHING });
  const id = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const ms = (n: number) => n.toFixed(1);
  const load0 = loadavg();
  try {
    say(
      `bench:kafka  brokers ${list.join(',')}  ${WRITERS} writers x ${PIPELINE}-SET pipelines, ${VALUE_BYTES}-byte values, ` +
        `${SECONDS} s throughput + ${LATENCY_SECONDS} s latency per side, snapshot ${SNAPSHOT_RDB ? "bench:rdb's RDB" : `${fmt(SNAPSHOT_KEYS)} keys`}, ` +
        `compression ${COMPRESSION}${COMPRESSION === 'gzip' ? ` (level ${GZIP_LEVEL})` : ''}; load average ${load0.map((l) => l.toFixed(2)).join(' ')}`,
    );
    let latencyRate = Number(process.env.BENCH_RATE ?? 0);
    const rt = await benchRedtail(kafka, list, id, (tput) => {
      if (!latencyRate) latencyRate = Math.max(100, Math.round(tput / 2 / 100) * 100);
      return latencyRate;
    });
    const samples = rt.snapshotSamples ?? [];
    rt.snapshotSamples = undefined;
    let snapRefs: SnapshotRefs | undefined;
    if (!PROFILE_DIR && process.env.BENCH_ONLY !== 'redtail' && samples.length > 0 && rt.snapshotKeysPerSec) {
      snapRefs = await benchSnapshotRefs(kafka, list, id, samples);
      say(
        `ratios of the snapshot: redtail / bare client loop ${(rt.snapshotKeysPerSec / snapRefs.bare.keysPerSec).toFixed(2)}, ` +
          `/ Java txn ${(rt.snapshotKeysPerSec / snapRefs.java.keysPerSec).toFixed(2)} (load average ${loadavg()[0]?.toFixed(2)})`,
      );
    }
    if (PROFILE_DIR || process.env.BENCH_ONLY === 'redtail' || process.env.BENCH_ONLY === 'snapshot') {
      // A profiled redtail is slower than a plain one: its figures are not compared with anything. BENCH_ONLY=redtail
      // is for A/B runs of two builds back to back.
      say(PROFILE_DIR ? `profile written to ${PROFILE_DIR}; references skipped` : 'references skipped');
      return;
    }
    const ref = await benchReference(kafka, list, id, latencyRate);
    const javaTopics = [`bench-${id}-java-txn`, `bench-${id}-java`];
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      waitForLeaders: true,
      topics: javaTopics.map((topic) => ({ topic, numPartitions: 3, replicationFactor: 1 })),
    });
    await admin.disconnect();
    const javaArgs = { compression: COMPRESSION, recordBytes: 200 };
    const javaTxn = runJava(list, javaTopics[0] as string, true, SECONDS, 100_000, javaArgs);
    const javaPlain = runJava(list, javaTopics[1] as string, false, SECONDS, 100_000, javaArgs);
    const javaTxnRate = javaTxn.records / javaTxn.seconds;
    const javaPlainRate = javaPlain.records / javaPlain.seconds;
    const cpu = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? 'n/a' : n.toFixed(2));
    const javaRow = (label: string, r: ReturnType<typeof runJava>, rate: number) => [
      label,
      fmt(rate),
      fmt(r.records),
      cpu((r.cpuSeconds / r.records) * 1e6),
      '',
      ms(r.p99 ?? Number.NaN),
      '(send latency)',
    ];
    const rows = [
      ['', 'events/s', 'events', 'CPU s/M', 'p50 ms', 'p99 ms', 'latency samples'],
      [
        'redtail run → Kafka, stream',
        fmt(rt.eventsPerSec),
        fmt(rt.events),
        cpu(rt.cpuPerM),
        ms(rt.p50),
        ms(rt.p99),
        `${fmt(rt.samples)} at ${fmt(rt.rate)}/s`,
      ],
      ...(rt.burst
        ? [
            [
              `redtail run → Kafka, redis-benchmark burst (caught up ${rt.burst.catchUpS.toFixed(2)} s after)`,
              fmt(rt.burst.eventsPerSec),
              fmt(rt.burst.events),
              cpu(rt.burst.cpuPerM),
              '',
              '',
              '',
            ],
          ]
        : []),
      [
        `redtail run → Kafka, snapshot${SNAPSHOT_RDB ? ' (RDB)' : ''}`,
        rt.snapshotKeysPerSec === undefined ? '-' : fmt(rt.snapshotKeysPerSec),
        rt.snapshotKeys === undefined ? '-' : fmt(rt.snapshotKeys),
        cpu(rt.snapshotCpuPerM),
        '',
        '',
        '',
      ],
      [
        'kafkajs + redtail encoder txn loop (bare)',
        fmt(ref.eventsPerSec),
        fmt(ref.events),
        cpu(ref.cpuPerM),
        ms(ref.p50),
        ms(ref.p99),
        `${fmt(ref.samples)} at ${fmt(ref.rate)}/s`,
      ],
      javaRow('Java ProducerPerformance txn 100 ms', javaTxn, javaTxnRate),
      javaRow('Java ProducerPerformance acks=all', javaPlain, javaPlainRate),
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows)
      say(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
    const ratios = {
      vsBareLoop: rt.eventsPerSec / ref.eventsPerSec,
      vsJavaTxn: rt.eventsPerSec / javaTxnRate,
      vsJavaPlain: rt.eventsPerSec / javaPlainRate,
      bareLoopVsJavaTxn: ref.eventsPerSec / javaTxnRate,
      burstVsBareLoop: rt.burst ? rt.burst.eventsPerSec / ref.eventsPerSec : Number.NaN,
      burstVsJavaTxn: rt.burst ? rt.burst.eventsPerSec / javaTxnRate : Number.NaN,
    };
    say(
      `ratios: redtail stream / bare client loop ${ratios.vsBareLoop.toFixed(2)}, / Java txn ${ratios.vsJavaTxn.toFixed(2)}, ` +
        `/ Java acks=all ${ratios.vsJavaPlain.toFixed(2)}; bare loop / Java txn ${ratios.bareLoopVsJavaTxn.toFixed(2)}; ` +
        `p99 latency redtail / bare loop ${(rt.p99 / ref.p99).toFixed(2)}x; events per transaction ${fmt(rt.eventsPerTxn ?? 0)}`,
    );
    if (rt.burst)
      say(
        `ratios of the burst (issue 12's load): redtail / bare client loop ${ratios.burstVsBareLoop.toFixed(2)}, ` +
          `/ Java txn ${ratios.burstVsJavaTxn.toFixed(2)}`,
      );
    const load1 = loadavg();
    say(`load average at the end ${load1.map((l) => l.toFixed(2)).join(' ')}`);
    console.log(
      JSON.stringify({ redtail: rt, reference: ref, javaTxn, javaPlain, snapRefs, ratios, load0, load1 }),
    );
    appendResults(list);
  } finally {
    const admin = kafka.admin();
    await admin.connect();
    const mine = (await admin.listTopics()).filter((t) => t.startsWith(`bench-${id}`));
    await admin.deleteTopics({ topics: mine }).catch(() => {});
    await admin.disconnect();
    if (started) execFileSync(kafkaScript, ['stop'], { stdio: 'ignore' });
  }
}

const run =
  process.argv[2] === '--reference' ? referenceChild(JSON.parse(process.argv[3]!) as ChildArgs) : main();
run.catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
