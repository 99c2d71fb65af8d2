/**
 * `npm run bench:postgres`: the Postgres sink's snapshot load against a plain bulk insert of the same rows (the
 * ceiling), and streaming throughput with end-to-end latency through the real Pipeline. Needs PostgreSQL on
 * REDTAIL_BENCH_PG (default postgres://postgres@127.0.0.1:5432/test); uses and drops its own schemas.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { parsePostgresSpec } from '../sinks/postgres/config.js';
import { PostgresSink } from '../sinks/postgres/PostgresSink.js';
import { normalizeCommand } from '../src/commands/normalize.js';
import type { ChangeEvent } from '../src/events/ChangeEvent.js';
import { silentLogger } from '../src/observe/logger.js';
import { Pipeline } from '../src/pipeline/Pipeline.js';

const PG = process.env.REDTAIL_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const SNAPSHOT_KEYS = Number(process.env.REDTAIL_BENCH_KEYS ?? 200_000);
const STREAM_EVENTS = Number(process.env.REDTAIL_BENCH_EVENTS ?? 200_000);
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

function snapshotEvents(n: number): ChangeEvent[] {
  const out: ChangeEvent[] = [];
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
      value: hash
        ? [
            [Buffer.from('name'), Buffer.from(`n${i}`)],
            [Buffer.from('score'), Buffer.from(String(i))],
          ]
        : Buffer.from(`value-${i}-${'x'.repeat(40)}`),
      expireAt: i % 10 === 0 ? Date.now() + 3_600_000 : null,
      source: src,
      ts: Date.now(),
    });
  }
  return out;
}

function control(op: string): ChangeEvent {
  return { v: 1, op, db: 0, source: { replid: REPLID, offset: 0, seq: 0, snapshot: true }, ts: Date.now() };
}

async function snapshotBench(): Promise<{ sinkRate: number; ceilingRate: number }> {
  const schema = `bench_snap_${randomBytes(4).toString('hex')}`;
  const sink = new PostgresSink(parsePostgresSpec(PG, { schema, changes: false }), {
    logger: silentLogger(),
  });
  await sink.open();
  const events = snapshotEvents(SNAPSHOT_KEYS);
  const t0 = performance.now();
  await sink.write({ events: [control('snapshot-begin')], checkpoint: null });
  for (let i = 0; i < events.length; i += 5_000)
    await sink.write({ events: events.slice(i, i + 5_000), checkpoint: null });
  await sink.write({ events: [control('snapshot-end')], checkpoint: { replid: REPLID, offset: 0, db: 0 } });
  const sinkMs = performance.now() - t0;
  await sink.close();

  // The ceiling: the same rows, already encoded, bulk-inserted into an identical empty table in one statement per
  // 5,000 rows (what the sink does, minus decoding, encoding and bookkeeping).
  const c = new pg.Client({ connectionString: PG });
  await c.connect();
  await c.query(`CREATE TABLE "${schema}".ceiling (LIKE "${schema}".keys INCLUDING ALL)`);
  const rows = events.map((e) => ({
    key: e.key!,
    type: e.type as string,
    json: JSON.stringify(
      e.type === 'hash'
        ? (e.value as Buffer[][]).map(([f, v]) => [f!.toString(), v!.toString()])
        : (e.value as Buffer).toString(),
    ),
    exp: e.expireAt as number | null,
  }));
  const t1 = performance.now();
  await c.query('BEGIN');
  for (let i = 0; i < rows.length; i += 5_000) {
    const r = rows.slice(i, i + 5_000);
    await c.query(
      `INSERT INTO "${schema}".ceiling (db, key, key_text, type, value, expire_at, updated_offset, snapshot_gen)
       SELECT 0, k, convert_from(k, 'UTF8'), t, v::jsonb, CASE WHEN x IS NULL THEN NULL ELSE timestamptz 'epoch' + x * interval '1 millisecond' END, 0, 1
       FROM unnest($1::bytea[], $2::text[], $3::text[], $4::bigint[]) AS u(k, t, v, x)`,
      [r.map((x) => x.key), r.map((x) => x.type), r.map((x) => x.json), r.map((x) => x.exp)],
    );
  }
  await c.query('COMMIT');
  const ceilingMs = performance.now() - t1;
  await c.end();
  await sql(`DROP SCHEMA "${schema}" CASCADE`);
  return { sinkRate: (SNAPSHOT_KEYS / sinkMs) * 1000, ceilingRate: (SNAPSHOT_KEYS / ceilingMs) * 1000 };
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

async function streamBench(
  rate: number,
): Promise<{ eventsPerSec: number; p50: number; p99: number; max: number }> {
  const schema = `bench_stream_${randomBytes(4).toString('hex')}`;
  const sink = new PostgresSink(parsePostgresSpec(PG, { schema }), { logger: silentLogger() });
  const latencies: number[] = [];
  const sentAt = new Map<number, number>();
  const pipeline = new Pipeline([sink], {
    logger: silentLogger(),
    onDurable: (pos) => {
      const now = performance.now();
      for (const [off, t] of sentAt) {
        if (off > pos.offset) break;
        latencies.push(now - t);
        sentAt.delete(off);
      }
    },
  });
  await pipeline.open();
  const cmds = streamCommands(STREAM_EVENTS);
  let offset = 0;
  const t0 = performance.now();
  for (let i = 0; i < cmds.length; i++) {
    offset += 50;
    const events = normalizeCommand(cmds[i]!, { db: 0, replid: REPLID, offset, ts: Date.now() });
    sentAt.set(offset, performance.now());
    pipeline.push(events, { replid: REPLID, offset, db: 0 });
    if (rate > 0) {
      const due = t0 + (i / rate) * 1000;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    } else if (i % 2_000 === 0) await new Promise((r) => setImmediate(r));
    while (sentAt.size > 50_000) await new Promise((r) => setTimeout(r, 1));
  }
  await pipeline.flush();
  const ms = performance.now() - t0;
  await pipeline.close();
  await sql(`DROP SCHEMA "${schema}" CASCADE`);
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
  return { eventsPerSec: (STREAM_EVENTS / ms) * 1000, p50: q(0.5), p99: q(0.99), max: q(1) };
}

async function main(): Promise<void> {
  const snap = await snapshotBench();
  console.log(
    `snapshot load: ${Math.round(snap.sinkRate)} keys/s through the sink; ceiling (plain bulk INSERT of the same rows): ${Math.round(snap.ceilingRate)} rows/s; ratio ${(snap.sinkRate / snap.ceilingRate).toFixed(2)}`,
  );
  const max = await streamBench(0);
  console.log(
    `streaming, unthrottled: ${Math.round(max.eventsPerSec)} events/s; commit latency p50 ${max.p50.toFixed(0)} ms, p99 ${max.p99.toFixed(0)} ms`,
  );
  const paced = Math.round(max.eventsPerSec / 4);
  const steady = await streamBench(paced);
  console.log(
    `streaming at ${paced} events/s (a quarter of the maximum): end-to-end latency p50 ${steady.p50.toFixed(1)} ms, p99 ${steady.p99.toFixed(1)} ms, max ${steady.max.toFixed(1)} ms`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
