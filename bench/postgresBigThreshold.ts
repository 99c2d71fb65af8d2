/**
 * `npm run bench:postgres-threshold`: the cost of one member update of a collection of n members, stored inline (one
 * jsonb) and in member rows (docs/postgres.md, "Big collections"), at the lowest rate: one HSET / ZADD INCR per
 * transaction, the case where an inline value is parsed and rewritten whole for each change. It is what the default
 * of `bigCollectionMembers` is chosen by; full-speed bursts amortize an inline value over all the changes of a
 * transaction (bench:postgres live mode measures that). Needs PostgreSQL on REDTAIL_BENCH_PG; uses its own schemas.
 */

import { loadavg } from 'node:os';
import pg from 'pg';
import { parsePostgresSpec } from '../sinks/postgres/config.js';
import { PostgresSink } from '../sinks/postgres/PostgresSink.js';
import type { ChangeEvent } from '../src/events/ChangeEvent.js';
import { silentLogger } from '../src/observe/logger.js';

const PG = process.env.REDTAIL_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const SIZES = (process.env.REDTAIL_BENCH_SIZES ?? '500,1000,2000,5000,10000').split(',').map(Number);
const UPDATES = Number(process.env.REDTAIL_BENCH_UPDATES ?? 200);
const REPLID = 'b'.repeat(40);

function source(offset: number, snapshot: boolean) {
  return { replid: REPLID, offset, seq: 0, snapshot };
}

/** Mean ms per one-event transaction of `UPDATES` updates of a hash and a zset of n members. */
async function measure(n: number, rows: boolean): Promise<{ hash: number; zset: number }> {
  const schema = `bench_thr_${process.pid}_${n}_${rows ? 'r' : 'i'}`;
  const sink = new PostgresSink(
    parsePostgresSpec(PG, { schema, changes: false, bigCollectionMembers: rows ? 2 : 1_000_000_000 }),
    { logger: silentLogger() },
  );
  await sink.open();
  const field = (i: number) => Buffer.from(`f${String(i).padStart(12, '0')}`);
  const snap = (key: string, type: string, value: unknown): ChangeEvent =>
    ({
      v: 1,
      op: 'snapshot',
      db: 0,
      key: Buffer.from(key),
      type,
      value,
      expireAt: null,
      source: source(1, true),
      ts: 0,
    }) as ChangeEvent;
  await sink.write({
    events: [
      { v: 1, op: 'snapshot-begin', db: 0, source: source(1, true), ts: 0 } as ChangeEvent,
      snap(
        'h',
        'hash',
        Array.from({ length: n }, (_, i) => [field(i), Buffer.from(`v${i}`)]),
      ),
      snap(
        'z',
        'zset',
        Array.from({ length: n }, (_, i) => [field(i), 0]),
      ),
      { v: 1, op: 'snapshot-end', db: 0, source: source(1, true), ts: 0 } as ChangeEvent,
    ],
    checkpoint: null,
  });
  let offset = 10;
  const time = async (make: (i: number) => ChangeEvent): Promise<number> => {
    const t0 = performance.now();
    for (let i = 0; i < UPDATES; i++) {
      const ev = make(i);
      await sink.write({ events: [ev], checkpoint: { replid: REPLID, offset: ev.source.offset, db: 0 } });
    }
    return (performance.now() - t0) / UPDATES;
  };
  const pick = () => field(Math.floor(Math.random() * n));
  const hash = await time(
    () =>
      ({
        v: 1,
        op: 'hset',
        db: 0,
        key: Buffer.from('h'),
        type: 'hash',
        fields: [[pick(), Buffer.from('x')]],
        fieldExpireAt: null,
        source: source(offset++, false),
        ts: 0,
      }) as ChangeEvent,
  );
  const zset = await time(
    () =>
      ({
        v: 1,
        op: 'zadd',
        db: 0,
        key: Buffer.from('z'),
        type: 'zset',
        members: [[pick(), 1]],
        flags: ['incr'],
        source: source(offset++, false),
        ts: 0,
      }) as ChangeEvent,
  );
  await sink.close();
  const c = new pg.Client({ connectionString: PG });
  await c.connect();
  await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await c.end();
  return { hash, zset };
}

async function main(): Promise<void> {
  console.log(
    `one-event transactions, ${UPDATES} updates each; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  for (const n of SIZES) {
    // Interleaved, so both forms of a size see the same machine.
    const inline = await measure(n, false);
    const rows = await measure(n, true);
    console.log(
      `n=${n}: HSET inline ${inline.hash.toFixed(2)} ms, rows ${rows.hash.toFixed(2)} ms (rows/inline ${(rows.hash / inline.hash).toFixed(2)}); ZINCRBY inline ${inline.zset.toFixed(2)} ms, rows ${rows.zset.toFixed(2)} ms (${(rows.zset / inline.zset).toFixed(2)}); load ${loadavg()[0]!.toFixed(2)}`,
    );
  }
}

await main();
