/**
 * `npm run bench:postgres`: the Postgres sink's snapshot load against a plain COPY of the same rows (the ceiling),
 * and streaming throughput with end-to-end latency through the real Pipeline, with where the time of the slowest
 * batches goes (connection, lock, apply, changes, checkpoint, commit), event-loop delay and GC pauses. Needs PostgreSQL on
 * REDTAIL_BENCH_PG (default postgres://postgres@127.0.0.1:5432/test); uses and drops its own schemas.
 *
 * Live mode (REDTAIL_BENCH_MODE=live, postgresLive.ts): REDTAIL_BENCH_LIVE_N commands per test, REDTAIL_BENCH_BIG=n
 * for issue 13's big-collection load (a hash, a zset and a list of n members), REDTAIL_BENCH_DRAIN=1 to stop redtail
 * during the burst and time its own rate on the backlog, REDTAIL_BENCH_PROFILE=dir for `--cpu-prof`.
 */

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { parsePostgresSpec } from '../sinks/postgres/config.js';
import { type CopyType, encodeCopyBinary } from '../sinks/postgres/copy.js';
import { keyText } from '../sinks/postgres/MirrorApplier.js';
import { valueFromRdb, valueToJson } from '../sinks/postgres/model/encoding.js';
import { PostgresSink, type WriteTiming } from '../sinks/postgres/PostgresSink.js';
import { normalizeCommand } from '../src/commands/normalize.js';
import type { ChangeEvent, ControlEvent, SnapshotEvent } from '../src/events/ChangeEvent.js';
import { silentLogger } from '../src/observe/logger.js';
import { Pipeline } from '../src/pipeline/Pipeline.js';
import type { Sink } from '../src/pipeline/Sink.js';
import { appendResultsSection } from './benchProcs.js';
import { type LiveResult, liveBench } from './postgresLive.js';

/** Everything printed, appended to bench/results.md at the end of the run. */
const printed: string[] = [];
function say(line: string): void {
  console.log(line);
  printed.push(line);
}

const PG = process.env.REDTAIL_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const SNAPSHOT_KEYS = Number(process.env.REDTAIL_BENCH_KEYS ?? 200_000);
const STREAM_EVENTS = Number(process.env.REDTAIL_BENCH_EVENTS ?? 200_000);
const SNAPSHOT_BATCH = Number(process.env.REDTAIL_BENCH_SNAPSHOT_BATCH ?? 5_000);
const REPLID = 'b'.repeat(40);

async function sql(q: string, params: unknown[] = []): Promise<void> {
  const c = new pg.Client({ connectionString: PG });
  await c.connect();
  try {
    await c.query(q, params);
  } finally {
    await c.end();
  }
}

function snapshotEvents(n: number): SnapshotEvent[] {
  const out: SnapshotEvent[] = [];
  for (let i = 0; i < n; i++) {
    const key = Buffer.from(`user:${i}`);
    const src = { replid: REPLID, offset: 0, seq: i + 1, snapshot: true };
    const hash = i % 2 === 1;
    out.push({
      v: 1,
      op: 'snapshot',
      db: 0,
      key,
      type: hash ? 'hash' : 'string',
      encoding: hash ? 'hash-listpack' : 'string-raw',
      value: hash
        ? ([
            [Buffer.from('name'), Buffer.from(`n${i}`)],
            [Buffer.from('score'), Buffer.from(String(i))],
          ] as Array<[Buffer, Buffer]>)
        : Buffer.from(`value-${i}-${'x'.repeat(40)}`),
      expireAt: i % 10 === 0 ? Date.now() + 3_600_000 : null,
      source: src,
      ts: Date.now(),
    });
  }
  return out;
}

function control(op: ControlEvent['op']): ChangeEvent {
  return { v: 1, op, db: 0, source: { replid: REPLID, offset: 0, seq: 0, snapshot: true }, ts: Date.now() };
}

interface SnapshotResult {
  sinkRate: number;
  ceilingRate: number;
  bareRate: number;
  /** Median over the rounds of sink rate / ceiling rate of the same round. */
  ratio: number;
  rounds: string[];
}

/**
 * The sink's load of SNAPSHOT_KEYS snapshot keys into an empty mirror, as `redtail run` drives it (batches of
 * SNAPSHOT_BATCH, up to 4 handed over before the first is committed, like the Pipeline's `maxInFlightBatches`).
 */
async function sinkLoad(events: SnapshotEvent[]): Promise<{ ms: number; detail: string }> {
  const schema = `bench_snap_${randomBytes(4).toString('hex')}`;
  const sink = new PostgresSink(parsePostgresSpec(PG, { schema, changes: false }), {
    logger: silentLogger(),
  });
  await sink.open();
  const t0 = performance.now();
  const inFlight: Array<Promise<void>> = [
    sink.write({ events: [control('snapshot-begin')], checkpoint: null }),
  ];
  for (let i = 0; i < events.length; i += SNAPSHOT_BATCH) {
    if (inFlight.length >= 4) await inFlight.shift();
    inFlight.push(sink.write({ events: events.slice(i, i + SNAPSHOT_BATCH), checkpoint: null }));
  }
  inFlight.push(
    sink.write({ events: [control('snapshot-end')], checkpoint: { replid: REPLID, offset: 0, db: 0 } }),
  );
  await Promise.all(inFlight);
  const ms = performance.now() - t0;
  const phases = Object.entries(sink.stats.ms)
    .filter(([, v]) => v >= 1)
    .map(([k, v]) => `${k} ${Math.round(v)}`)
    .join(', ');
  await sink.close();
  await sql(`DROP SCHEMA "${schema}" CASCADE`);
  const index = Math.round(sink.applier.stats.indexBuildMs);
  return {
    ms,
    detail: `${sink.stats.transactions} transactions, ms: ${phases} (of which index builds ${index})`,
  };
}

/**
 * The snapshot load against its ceiling, a plain COPY of the same rows, already encoded (the very bytes, in the
 * binary format the sink sends), in one statement and one transaction into a table identical to `keys` (same
 * primary key and indexes), and for reference into a bare table of the same columns without any index. The machine
 * is shared, so the three alternate for REDTAIL_BENCH_ROUNDS rounds (default 3) and the medians are reported.
 */
async function snapshotBench(): Promise<SnapshotResult> {
  const rounds = Number(process.env.REDTAIL_BENCH_ROUNDS ?? 3);
  const events = snapshotEvents(SNAPSHOT_KEYS);
  const schema = `bench_ceiling_${randomBytes(4).toString('hex')}`;
  const template = new PostgresSink(parsePostgresSpec(PG, { schema, changes: false }), {
    logger: silentLogger(),
  });
  await template.open();
  await template.close();
  const c = new pg.Client({ connectionString: PG });
  await c.connect();
  const rows = events.map((e) => {
    const v = valueFromRdb(e.type as string, e.value, undefined);
    return [
      0,
      e.key!,
      keyText(e.key!),
      v.type,
      JSON.stringify(valueToJson(v)),
      (e.expireAt as number | null) ?? null,
      null,
      0,
      1,
    ];
  });
  const columns = 'db, key, key_text, type, value, expire_at, field_expire_at, updated_offset, snapshot_gen';
  const types: CopyType[] = [
    'int4',
    'bytea',
    'text',
    'text',
    'jsonb',
    'timestamptz',
    'jsonb',
    'int8',
    'int8',
  ];
  const data = [...encodeCopyBinary(types, rows)];
  const plainCopy = async (table: string, like: string): Promise<number> => {
    await c.query(`CREATE TABLE "${schema}".${table} (LIKE "${schema}".keys ${like})`);
    const t = performance.now();
    await c.query('BEGIN');
    const stream = c.query(
      copyStreams.from(`COPY "${schema}".${table} (${columns}) FROM STDIN (FORMAT binary)`),
    );
    await pipeline(Readable.from(data), stream);
    await c.query('COMMIT');
    if (stream.rowCount !== SNAPSHOT_KEYS) throw new Error(`ceiling COPY stored ${stream.rowCount} rows`);
    const ms = performance.now() - t;
    await c.query(`DROP TABLE "${schema}".${table}`);
    return ms;
  };
  const rate = (ms: number) => (SNAPSHOT_KEYS / ms) * 1000;
  const sinkRates: number[] = [];
  const ceilingRates: number[] = [];
  const bareRates: number[] = [];
  const ratios: number[] = [];
  const lines: string[] = [];
  for (let r = 0; r < rounds; r++) {
    const ceiling = rate(await plainCopy('ceiling', 'INCLUDING ALL'));
    const load = await sinkLoad(events);
    const bare = rate(await plainCopy('bare', ''));
    sinkRates.push(rate(load.ms));
    ceilingRates.push(ceiling);
    bareRates.push(bare);
    ratios.push(rate(load.ms) / ceiling);
    lines.push(
      `round ${r + 1}: sink ${Math.round(rate(load.ms))} keys/s (${load.detail}), plain COPY ${Math.round(ceiling)} rows/s, ratio ${(rate(load.ms) / ceiling).toFixed(2)}; load average ${loadavg()[0]!.toFixed(2)}`,
    );
  }
  await c.end();
  await sql(`DROP SCHEMA "${schema}" CASCADE`);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  return {
    sinkRate: median(sinkRates),
    ceilingRate: median(ceilingRates),
    bareRate: median(bareRates),
    ratio: median(ratios),
    rounds: lines,
  };
}

/** A realistic command mix over 10,000 keys, normalized exactly as the stream would be. */
function streamCommands(n: number): Buffer[][] {
  const out: Buffer[][] = [];
  const b = (...a: Array<string | number>) => a.map((x) => Buffer.from(String(x)));
  for (let i = 0; i < n; i++) {
    const k = i % 10_000;
    switch (i % 6) {
      case 0:
        out.push(b('SET', `s:${k}`, `v${i}`));
        break;
      case 1:
        out.push(b('INCRBY', `n:${k}`, 3));
        break;
      case 2:
        out.push(b('RPUSH', `l:${k % 1000}`, `e${i}`));
        break;
      case 3:
        out.push(b('HSET', `h:${k}`, `f${i % 7}`, i));
        break;
      case 4:
        out.push(b('ZADD', `z:${k % 1000}`, i % 97, `m${i % 50}`));
        break;
      default:
        out.push(b('SADD', `t:${k % 1000}`, `m${i % 30}`));
    }
  }
  return out;
}

interface StreamResult {
  eventsPerSec: number;
  latency: { p50: number; p99: number; max: number };
  /** Of the events in the slowest 1 % of latencies: mean wait in the pipeline before their batch's write began. */
  slowWaitMs: number;
  /** ... and mean time from that start to the commit. */
  slowWriteMs: number;
  batchMs: { p50: number; p99: number; max: number };
  batchEvents: { p50: number; max: number };
  /** Mean share of each phase in the batches whose write time is in the top 1 %. */
  slowest: string;
  loopDelayMaxMs: number;
  gcMaxMs: number;
  gcTotalMs: number;
}

function quantile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

/**
 * Streams STREAM_EVENTS normalized commands through the real Pipeline (default batching: linger 10 ms, batches of
 * 2,000) into the sink. `rate` 0 pushes as fast as backpressure allows; otherwise events arrive on a 1 ms tick
 * (like socket reads), as many as are due, so the producer never starves the event loop.
 */
async function streamBench(rate: number): Promise<StreamResult> {
  const schema = `bench_stream_${randomBytes(4).toString('hex')}`;
  const timings: WriteTiming[] = [];
  const sink = new PostgresSink(parsePostgresSpec(PG, { schema }), {
    logger: silentLogger(),
    onWrite: (t) => timings.push(t),
  });
  const latencies: Array<[number, number, number]> = [];
  const sentAt: Array<[number, number]> = [];
  // When the write that made each event durable began: the pipeline's own wait (linger, the batch in flight)
  // is the time from the push to there.
  let writeStart = 0;
  const timed: Sink = {
    name: sink.name,
    open: () => sink.open(),
    close: () => sink.close(),
    write: async (b) => {
      writeStart = performance.now();
      await sink.write(b);
    },
  };
  let head = 0;
  let paused = false;
  const pipeline = new Pipeline([timed], {
    logger: silentLogger(),
    onBackpressure: (p) => {
      paused = p;
    },
    onDurable: (pos) => {
      const now = performance.now();
      while (head < sentAt.length && sentAt[head]![0] <= pos.offset) {
        const sent = sentAt[head++]![1];
        latencies.push([now - sent, writeStart - sent, now - writeStart]);
      }
    },
  });
  await pipeline.open();
  const cmds = streamCommands(STREAM_EVENTS);
  const gcs: number[] = [];
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push(e.duration);
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  let offset = 0;
  let i = 0;
  const t0 = performance.now();
  const pushOne = () => {
    offset += 50;
    const events = normalizeCommand(cmds[i++]!, { db: 0, replid: REPLID, offset, ts: Date.now() });
    sentAt.push([offset, performance.now()]);
    pipeline.push(events, { replid: REPLID, offset, db: 0 });
  };
  while (i < cmds.length) {
    if (rate > 0) {
      const due = Math.min(cmds.length, Math.floor(((performance.now() - t0) / 1000) * rate));
      while (i < due) pushOne();
      await sleep(1);
    } else {
      for (let n = 0; n < 500 && i < cmds.length && !paused; n++) pushOne();
      await new Promise((r) => setImmediate(r));
      while (paused) await sleep(1);
    }
  }
  await pipeline.flush();
  const ms = performance.now() - t0;
  loop.disable();
  gcObserver.disconnect();
  await pipeline.close();
  await sql(`DROP SCHEMA "${schema}" CASCADE`);
  latencies.sort((a, b) => a[0] - b[0]);
  const lat = latencies.map((l) => l[0]);
  const tail = latencies.slice(Math.floor(latencies.length * 0.99));
  const mean = (k: 1 | 2) => tail.reduce((a, l) => a + l[k], 0) / Math.max(1, tail.length);
  const totals = timings.map((t) => t.totalMs).sort((a, b) => a - b);
  const sizes = timings.map((t) => t.events).sort((a, b) => a - b);
  const cut = quantile(totals, 0.99);
  const slow = timings.filter((t) => t.totalMs >= cut);
  const phases = ['connectMs', 'lockMs', 'applyMs', 'changesMs', 'checkpointMs', 'commitMs'] as const;
  const slowest = phases
    .map((p) => `${p.slice(0, -2)} ${(slow.reduce((a, t) => a + t[p], 0) / slow.length).toFixed(1)}`)
    .join(', ');
  return {
    eventsPerSec: (STREAM_EVENTS / ms) * 1000,
    latency: { p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), max: quantile(lat, 1) },
    slowWaitMs: mean(1),
    slowWriteMs: mean(2),
    batchMs: { p50: quantile(totals, 0.5), p99: cut, max: quantile(totals, 1) },
    batchEvents: { p50: quantile(sizes, 0.5), max: quantile(sizes, 1) },
    slowest: `${slow.length} batches >= ${cut.toFixed(1)} ms, ${(slow.reduce((a, t) => a + t.events, 0) / slow.length).toFixed(0)} events each; mean ms: ${slowest}`,
    loopDelayMaxMs: loop.max / 1e6,
    gcMaxMs: Math.max(0, ...gcs),
    gcTotalMs: gcs.reduce((a, b) => a + b, 0),
  };
}

function report(label: string, r: StreamResult): void {
  const f = (n: number) => n.toFixed(1);
  say(
    `${label}: ${Math.round(r.eventsPerSec)} events/s; end-to-end latency p50 ${f(r.latency.p50)} ms, p99 ${f(r.latency.p99)} ms, max ${f(r.latency.max)} ms`,
  );
  say(
    `  slowest 1 % of events: ${f(r.slowWaitMs)} ms queued in the pipeline before their batch's write began, ${f(r.slowWriteMs)} ms from there to the commit`,
  );
  say(
    `  batches: write p50 ${f(r.batchMs.p50)} ms, p99 ${f(r.batchMs.p99)} ms, max ${f(r.batchMs.max)} ms; events per batch p50 ${r.batchEvents.p50}, max ${r.batchEvents.max}`,
  );
  say(`  slowest 1 % of batches: ${r.slowest}`);
  say(
    `  event-loop delay max ${f(r.loopDelayMaxMs)} ms; GC pauses max ${f(r.gcMaxMs)} ms, total ${f(r.gcTotalMs)} ms`,
  );
}

async function live(): Promise<LiveResult> {
  const n = Number(process.env.REDTAIL_BENCH_LIVE_N ?? 50_000);
  const random = Number(process.env.REDTAIL_BENCH_LIVE_RANDOM ?? 0);
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  // REDTAIL_BENCH_BIG=members: issue 13's big-collection load (a hash, a zset and a list of that many members each).
  const bigMembers = Number(process.env.REDTAIL_BENCH_BIG ?? 0) || undefined;
  // REDTAIL_BENCH_DRAIN=1: redtail stopped during the burst, its rate measured on the backlog (postgresLive.ts).
  const drain = process.env.REDTAIL_BENCH_DRAIN === '1';
  const r = await liveBench({
    pg: PG,
    n,
    random,
    bigMembers,
    drain,
    profileDir: process.env.REDTAIL_BENCH_PROFILE,
  });
  r.load = load;
  const what = bigMembers
    ? `big collections of ${bigMembers} members (hash, zset, list), -n ${n} of HSET, ZINCRBY and LMOVE each`
    : `redis-benchmark -P 32 -n ${n}${random ? ` -r ${random}` : ''} -t set,hset,lpush,sadd,zadd,incr`;
  say(
    `live master (${what}): ${r.events} events, initial sync ${r.syncS.toFixed(1)} s, burst ${r.burstS.toFixed(2)} s; redtail ${Math.round(r.eventsPerSec)} events/s, caught up ${r.catchUpS.toFixed(2)} s after the burst; CPU s per million events: redtail ${r.redtailCpuPerM.toFixed(1)}, its Postgres backends ${r.pgCpuPerM.toFixed(1)}; verify ${r.verify}; load average ${load}`,
  );
  say(
    `  redtail's own window (${r.drain ? 'drain: SIGCONT after the burst' : 'first commit past the burst start'} → caught up): ${r.ownS.toFixed(2)} s, ${Math.round(r.ownRate)} ${bigMembers ? 'member updates' : 'events'}/s; Postgres WAL ${Math.round(r.walPerEvent)} bytes per event`,
  );
  say(
    `  same-run reference: a plain binary COPY of these ${r.events} changes rows into a table like changes: ${Math.round(r.changesCeiling)} rows/s (sink/ceiling ${(r.eventsPerSec / r.changesCeiling).toFixed(2)})`,
  );
  say(`  sink: ${r.sinkStats}`);
  return r;
}

async function main(): Promise<void> {
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  try {
    await runModes();
  } finally {
    if (printed.length > 0) appendResults(load);
  }
}

/** A bench/results.md section: when, machine, versions, load average at start and end, and the printed figures. */
function appendResults(loadAtStart: string): void {
  // Without the sink's own query parameters (e.g. bigCollectionMembers), which psql refuses.
  const pgUrl = parsePostgresSpec(PG).connectionString;
  const pgVersion = execFileSync('psql', [pgUrl, '-Atc', 'SHOW server_version'], { encoding: 'utf8' }).trim();
  const redis = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();
  appendResultsSection(
    `bench:postgres ${new Date().toISOString()} (REDTAIL_BENCH_MODE=${process.env.REDTAIL_BENCH_MODE ?? 'all'})`,
    `Node ${process.version}, PostgreSQL ${pgVersion}, ${redis}`,
    printed,
    loadAtStart,
  );
}

async function runModes(): Promise<void> {
  // REDTAIL_BENCH_RATE=n: only the paced streaming run at n events/s (to study latency, e.g. under CHECKPOINTs).
  const only = Number(process.env.REDTAIL_BENCH_RATE ?? 0);
  if (only > 0) {
    report(`streaming at ${only} events/s`, await streamBench(only));
    return;
  }
  // REDTAIL_BENCH_MODE: live (only the live master), snapshot, synthetic; default all three.
  const mode = process.env.REDTAIL_BENCH_MODE ?? 'all';
  if (mode === 'live' || mode === 'all') await live();
  if (mode === 'live') return;
  const snap = await snapshotBench();
  for (const l of snap.rounds) say(`  ${l}`);
  say(
    `snapshot load (median of ${snap.rounds.length} rounds): ${Math.round(snap.sinkRate)} keys/s through the sink (batches of ${SNAPSHOT_BATCH}); ceiling, a plain COPY of the same rows into a table like keys: ${Math.round(snap.ceilingRate)} rows/s; ratio ${snap.ratio.toFixed(2)} (into an index-less table: ${Math.round(snap.bareRate)} rows/s, ratio ${(snap.sinkRate / snap.bareRate).toFixed(2)})`,
  );
  if (mode === 'snapshot') return;
  const max = await streamBench(0);
  report('streaming, unthrottled', max);
  const paced = Math.round(max.eventsPerSec / 4);
  report(`streaming at ${paced} events/s (a quarter of the maximum)`, await streamBench(paced));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
