import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import kafkajs from 'kafkajs';
import { stopBrokerProcess } from '../test/harness/kafka.js';
import { freePort } from '../test/harness/ports.js';
import { fmt, mb, Redtail, repoRoot } from './benchProcs.js';
import { waitReady } from './rdbFixture.js';

/**
 * `npm run bench:kafka-outage`: issue 10's Kafka item as a soak. A private broker (scripts/kafka.sh with its own
 * state dir) is stopped for OUTAGE_S (default 300) while the master takes RATE (default 20,000) SETs a second,
 * then started again; the writes go on for POST_S (default 30) more. Each SET writes `k:<n mod KEYS>` = `<n>;...`
 * with n counting up, so a read_committed consumer can check every write exactly once and per key in order
 * without recording the stream. Reported: full syncs, the spool's peak bytes, redtail's RSS every second (before,
 * during and after the outage: it must not grow with the outage), how long the catch-up took, and the consumer's
 * missing, duplicated and out-of-order writes. Env: BENCH_OUTAGE_S, BENCH_RATE, BENCH_POST_S. Results are appended
 * to bench/results.md.
 */

const { Kafka, logLevel } = kafkajs;
const OUTAGE_S = Number(process.env.BENCH_OUTAGE_S ?? 300);
const RATE = Number(process.env.BENCH_RATE ?? 20_000);
const POST_S = Number(process.env.BENCH_POST_S ?? 30);
const WARMUP_S = 20;
const KEYS = 10_000;
const TICK_MS = 50;
const FILLER = 'x'.repeat(64);
const kafkaScript = join(repoRoot, 'scripts', 'kafka.sh');

function kafkaSh(dir: string, args: string[]): string {
  return execFileSync(kafkaScript, args, {
    encoding: 'utf8',
    env: { ...process.env, REDTAIL_KAFKA_DIR: dir },
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
}

/** SETs at RATE a second in pipelines every TICK_MS; `achieved` is what the master actually took. */
class Writer {
  n = 0;
  private running = true;
  readonly done: Promise<void>;
  readonly started = Date.now();
  stoppedAt = 0;

  constructor(private readonly client: Redis) {
    this.done = this.run();
  }

  private async run(): Promise<void> {
    const perTick = Math.round((RATE * TICK_MS) / 1000);
    for (let tick = 0; this.running; tick++) {
      const pipe = this.client.pipeline();
      for (let i = 0; i < perTick; i++, this.n++) pipe.set(`k:${this.n % KEYS}`, `${this.n};${FILLER}`);
      await pipe.exec();
      const wait = this.started + (tick + 1) * TICK_MS - Date.now();
      if (wait > 0) await sleep(wait);
    }
    this.stoppedAt = Date.now();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }

  get achieved(): number {
    return this.n / (((this.stoppedAt || Date.now()) - this.started) / 1000);
  }
}

/** Reads the topics read_committed and checks every n once and per key in order. */
async function check(brokers: string[], topics: string[], total: number) {
  const kafka = new Kafka({ clientId: 'bench-outage', brokers, logLevel: logLevel.NOTHING });
  const seen = new Uint8Array(total);
  const last = new Map<string, number>();
  let duplicates = 0;
  let disorders = 0;
  let messages = 0;
  let lastAt = Date.now();
  const consumer = kafka.consumer({
    groupId: `bench-outage-${randomBytes(4).toString('hex')}`,
    maxWaitTimeInMs: 200,
    sessionTimeout: 30_000,
    maxBytes: 64 << 20,
  });
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  let complete = 0;
  await consumer.run({
    eachBatchAutoResolve: true,
    eachBatch: async ({ batch }) => {
      lastAt = Date.now();
      for (const m of batch.messages) {
        messages++;
        if (m.value === null) continue;
        const e = JSON.parse(m.value.toString('utf8')) as { op: string; key?: string; value?: string };
        if (e.op !== 'set' || typeof e.value !== 'string') continue;
        const n = Number(e.value.slice(0, e.value.indexOf(';')));
        if (seen[n]! > 0) duplicates++;
        else complete++;
        seen[n] = 1;
        const key = String(e.key);
        const prev = last.get(key);
        if (prev !== undefined && n <= prev) disorders++;
        last.set(key, n);
      }
    },
  });
  while (complete < total && Date.now() - lastAt < 60_000) await sleep(500);
  await consumer.disconnect();
  return { messages, missing: total - complete, duplicates, disorders };
}

async function main(): Promise<void> {
  const load0 = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  const work = mkdtempSync(join(tmpdir(), 'redtail-bench-outage-'));
  const kdir = join(work, 'kafka');
  let master: ChildProcess | null = null;
  let redtail: Redtail | null = null;
  try {
    kafkaSh(kdir, ['start']);
    const brokers = [kafkaSh(kdir, ['address'])];
    const port = await freePort();
    master = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', work],
      {
        stdio: 'ignore',
      },
    );
    await waitReady(port);
    const base = `outage-${randomBytes(3).toString('hex')}`;
    const config = join(work, 'redtail.json');
    writeFileSync(
      config,
      JSON.stringify({
        statsIntervalMs: 1000,
        sinkOptions: {
          kafka: {
            topic: `${base}.<db>`,
            offsetsTopic: `${base}.offsets`,
            transactionalId: `txn-${base}`,
            retryMaxMs: 2000,
          },
        },
      }),
    );
    redtail = new Redtail([
      '--master',
      `redis://127.0.0.1:${port}`,
      '--sink',
      `kafka://${brokers.join(',')}`,
      '--checkpoint',
      join(work, 'cp.json'),
      '--config',
      config,
    ]);
    const rt = redtail;
    while (rt.fullSyncs() === 0) {
      if (rt.exited) throw new Error(`redtail exited: ${JSON.stringify(rt.lines.slice(-3))}`);
      await sleep(200);
    }
    const client = new Redis({ port, host: '127.0.0.1' });
    const writer = new Writer(client);
    const offset = async () =>
      Number(/master_repl_offset:(\d+)/.exec((await client.info('replication')) as string)?.[1]);
    await sleep(WARMUP_S * 1000);
    const rssBefore = rt.rss.slice(-10);
    process.stdout.write(`broker down at ${writer.n} writes; redtail RSS ${mb(Math.max(...rssBefore))}\n`);
    const t0 = Date.now();
    await stopBrokerProcess(kdir);
    const rssDuring: number[] = [];
    let lagPeak = 0;
    while (Date.now() - t0 < OUTAGE_S * 1000) {
      await sleep(1000);
      rssDuring.push(rt.rss.at(-1) ?? 0);
      const s = rt.stats().at(-1) as { lagBytes?: number | null } | undefined;
      lagPeak = Math.max(lagPeak, s?.lagBytes ?? 0);
      if (rssDuring.length % 60 === 0)
        process.stdout.write(
          `  ${rssDuring.length} s down: spool ${mb(rt.peakSpoolBytes())}, lag ${mb(s?.lagBytes ?? 0)}, RSS ${mb(rssDuring.at(-1)!)}\n`,
        );
    }
    process.stdout.write(`broker restarting after ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
    kafkaSh(kdir, ['restart']);
    const backAt = Date.now();
    const downS = (backAt - t0) / 1000;
    await sleep(POST_S * 1000);
    await writer.stop();
    const end = await offset();
    // Lag back to 0: redtail (ack durable) acknowledges what Kafka committed.
    let caughtUpS: number | null = null;
    for (const deadline = Date.now() + 1_800_000; Date.now() < deadline; ) {
      const info = (await client.info('replication')) as string;
      const acked = Number(/slave0:.*?offset=(\d+)/.exec(info)?.[1] ?? 0);
      if (acked >= end) {
        caughtUpS = (Date.now() - backAt) / 1000;
        break;
      }
      if (rt.exited) break;
      await sleep(1000);
    }
    const rssAfter = rt.rss.slice(-10);
    const lastStats = rt.stats().at(-1) as { lagBytes?: number | null } | undefined;
    process.stdout.write(
      `writes ${fmt(writer.n)} at ${fmt(writer.achieved)}/s; caught up ${caughtUpS} s after the broker was back\n`,
    );
    const consumed = await check(brokers, [`${base}.0`], writer.n);
    client.disconnect();
    const fullSyncs = rt.fullSyncs();
    const peakSpool = rt.peakSpoolBytes();
    await rt.stop();
    const load1 = loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
    const q = (xs: number[], p: number) =>
      [...xs].sort((a, b) => a - b)[Math.floor(p * (xs.length - 1))] ?? 0;
    const section = [
      `## bench:kafka-outage ${new Date().toISOString()}`,
      '',
      `- machine: load average at start ${load0}, at end ${load1} (2 shared cores: figures under load are noisy)`,
      `- Node ${process.version}; broker stopped ${downS.toFixed(0)} s (incl. its restart) while the master took SETs at ${fmt(RATE)}/s (achieved ${fmt(writer.achieved)}/s over the run); default master limits`,
      '',
      '| writes | full syncs | peak spool | peak lag | RSS before outage | RSS during outage (p50 / max) | RSS in its last minute (max) | RSS after catch-up | caught up after broker back | consumer missing / duplicated / out of order | lag at end |',
      `|${' --- |'.repeat(11)}`,
      `| ${fmt(writer.n)} | ${fullSyncs} | ${mb(peakSpool)} | ${mb(lagPeak)} | ${mb(Math.max(...rssBefore))} | ${mb(q(rssDuring, 0.5))} / ${mb(Math.max(...rssDuring))} | ${mb(Math.max(...rssDuring.slice(-60)))} | ${mb(Math.max(...rssAfter))} | ${caughtUpS === null ? 'no' : `${caughtUpS.toFixed(0)} s`} | ${consumed.missing} / ${consumed.duplicates} / ${consumed.disorders} | ${lastStats?.lagBytes ?? '?'} B |`,
      '',
    ].join('\n');
    process.stdout.write(`\n${section}\n`);
    appendFileSync(join(repoRoot, 'bench', 'results.md'), `\n${section}`);
  } finally {
    await redtail?.stop();
    master?.kill('SIGKILL');
    try {
      kafkaSh(kdir, ['stop']);
    } catch {}
    rmSync(`${kdir}.lock`, { force: true });
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
