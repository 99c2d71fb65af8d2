import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { verifyMirror } from '../../sinks/postgres/verify.js';
import type { RedisServer } from '../harness/RedisServer.js';
import type { RedtailProcess } from '../harness/RedtailProcess.js';
import { useTestScope } from '../harness/TestScope.js';
import { describeDiffs, dropSchema, mirrorOffset, PG_URL, uniqueSchema } from '../sinks/postgres/helpers.js';

/*
 * Issue 10's scenario, small: a master with `client-output-buffer-limit replica 64mb 32mb 10` and a 64 MB backlog,
 * redtail loading its snapshot into Postgres while the master takes well over 64 MB of writes. The Postgres sink is
 * held back deterministically (its state table locked in a transaction the test holds) for the whole burst, so the
 * only question is where the burst waits: in redtail's spool (on disk, the master sees a replica reading at wire
 * speed) or in the master's output buffer for redtail (which the master drops past its limit, and the next sync is
 * a full one). The same run with `--spool off` shows the drop, which is what makes the first half able to fail.
 */

const scope = useTestScope();

const KEYS = 100_000;
/**
 * 30k SETs of 4 KB values on 5000 keys: ~124 MB of replication stream, well past the 64 MB hard limit. Large values
 * keep the number of events (what the Postgres sink pays for) small, so the test stays short.
 */
const WRITES = 30_000;
const VALUE_BYTES = 4096;
const WRITE_KEYS = 5000;
/**
 * The burst is paced at ~25 MB/s, about what the issue's `redis-benchmark -d 100 -P 8 -c 4` puts on the replication
 * stream, for ~5 s. Unpaced, a loopback master takes 4 KB SETs at 250+ MB/s, faster than a replica on this loaded
 * shared machine reads anything: that would test the machine, not where a slow sink's backlog waits.
 */
const PER_TICK = 256;
const TICK_MS = 40;
/** How many times the master's log says it dropped a client (redtail, the only replica) for its output buffer. */
function outputBufferDrops(master: RedisServer): number {
  return master.log().split('scheduled to be closed ASAP for overcoming of output buffer limits').length - 1;
}

interface Run {
  master: RedisServer;
  redtail: RedtailProcess;
  schema: string;
  /** Releases the lock that holds the sink back. */
  release: () => Promise<void>;
}

function handshakeReplies(p: RedtailProcess): string[] {
  return p
    .logs()
    .filter((l) => l.msg === 'replication handshake done')
    .map((l) => String(l.reply));
}

function fullSyncs(p: RedtailProcess): number {
  return handshakeReplies(p).filter((r) => r.startsWith('+FULLRESYNC')).length;
}

function statsLines(p: RedtailProcess): Record<string, unknown>[] {
  return p.logs().filter((l) => l.msg === 'stats');
}

/** The stats line's link.receivedOffset at its latest report (0 before the first). */
function receivedOffset(p: RedtailProcess): number {
  const last = statsLines(p).at(-1) as { link?: { receivedOffset?: number } } | undefined;
  return last?.link?.receivedOffset ?? 0;
}

/** Polls `check`; the timeout only detects a failure, and its message ends with redtail's last log lines. */
async function until(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  redtail?: RedtailProcess,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what}; redtail's log ends: ${redtail?.stderr.slice(-1500) ?? ''}`,
      );
    await sleep(100);
  }
}

async function masterOffset(master: RedisServer): Promise<number> {
  return Number((await master.info('replication')).master_repl_offset);
}

async function start(spool: boolean): Promise<Run> {
  const master = await scope.server({
    config: {
      'client-output-buffer-limit': 'replica 64mb 32mb 10',
      'repl-backlog-size': '64mb',
      'enable-debug-command': 'yes',
    },
  });
  master.cli(['DEBUG', 'POPULATE', String(KEYS), 'key', '100']);
  const schema = uniqueSchema('obuf');
  scope.defer(() => dropSchema(schema));
  const dir = mkdtempSync(join(tmpdir(), 'redtail-obuf-'));
  scope.defer(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'redtail.json');
  // Stats every second (received offset, spool bytes); a resync without the spool need not wait the default 30 s.
  writeFileSync(config, JSON.stringify({ statsIntervalMs: 1000, link: { minFullSyncIntervalMs: 1000 } }));
  const redtail = scope.redtail([
    'run',
    '--log-level',
    'info',
    '--master',
    master.url(),
    '--sink',
    `${PG_URL}?schema=${schema}`,
    '--checkpoint',
    join(dir, 'cp.json'),
    '--config',
    config,
    ...(spool ? [] : ['--spool', 'off']),
  ]);
  // Every write transaction of the sink reads its row in sink_state FOR UPDATE: an exclusive lock on that table,
  // taken as soon as the sink has created it, holds back every batch (the snapshot's too) until released.
  await until('the sink to create its tables', () => tableExists(schema), 30_000, redtail);
  const locker = new pg.Client({ connectionString: PG_URL });
  await locker.connect();
  await locker.query('BEGIN');
  await locker.query(`LOCK TABLE "${schema}".sink_state IN ACCESS EXCLUSIVE MODE`);
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await locker.query('ROLLBACK');
    await locker.end();
  };
  scope.defer(release);
  return { master, redtail, schema, release };
}

async function tableExists(schema: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    const r = await c.query(`SELECT to_regclass($1) AS t`, [`"${schema}".sink_state`]);
    return r.rows[0]?.t !== null;
  } finally {
    await c.end();
  }
}

/** The state of the master's only replica (redtail): wait_bgsave, send_bulk, online. */
async function replicaState(master: RedisServer): Promise<string | null> {
  const info = await master.info('replication');
  return /state=(\w+)/.exec(info.slave0 ?? '')?.[1] ?? null;
}

/**
 * Pipelined SETs at a steady pace. The burst starts once the master has saved its snapshot and is sending it: while
 * it still saves it (wait_bgsave) the output buffer grows whatever the replica does, and no replica avoids a drop.
 */
async function burst(master: RedisServer): Promise<void> {
  const c = master.client();
  const filler = 'v'.repeat(VALUE_BYTES - 16);
  const t0 = Date.now();
  for (let i = 0, tick = 0; i < WRITES; tick++) {
    const pipe = c.pipeline();
    for (const end = Math.min(WRITES, i + PER_TICK); i < end; i++)
      pipe.set(`w:${i % WRITE_KEYS}`, `${String(i).padStart(15, '0')}:${filler}`);
    await pipe.exec();
    const wait = t0 + (tick + 1) * TICK_MS - Date.now();
    if (wait > 0) await sleep(wait);
  }
}

describe('the master output buffer under slow sinks (issue 10)', () => {
  it('with the spool: one full sync, no output-buffer drop, the snapshot completes and the mirror is exact', async () => {
    const run = await start(true);
    // With the spool the whole snapshot is downloaded at wire speed although the sink has not committed a key.
    await until(
      'the master to finish sending its snapshot',
      async () => (await replicaState(run.master)) === 'online',
      30_000,
      run.redtail,
    );
    await burst(run.master);
    const target = await masterOffset(run.master);
    // The sink is still locked: the whole burst must have been read off the master all the same.
    await until(
      'redtail to read the whole burst into the spool',
      () => receivedOffset(run.redtail) >= target,
      60_000,
      run.redtail,
    );
    const spooled = statsLines(run.redtail).at(-1) as { spool?: { bytes?: number } };
    expect(spooled.spool?.bytes, JSON.stringify(spooled)).toBeGreaterThan(WRITES * VALUE_BYTES * 0.9);
    await run.release();
    await until(
      'the mirror to reach the master',
      async () => (await mirrorOffset(run.schema)) >= target,
      120_000,
      run.redtail,
    );
    const verify = await verifyMirror({
      master: run.master.url(),
      postgres: PG_URL,
      schema: run.schema,
      timeoutMs: 30_000,
    });
    expect(verify.differences, describeDiffs(verify)).toEqual([]);
    expect(verify.keys).toBeGreaterThanOrEqual(KEYS);
    expect(run.redtail.logs().filter((l) => l.msg === 'snapshot loaded')).toHaveLength(1);
    expect(handshakeReplies(run.redtail)).toEqual([expect.stringMatching(/^\+FULLRESYNC /)]);
    expect(outputBufferDrops(run.master)).toBe(0);
  }, 300_000);

  it('without the spool the same burst overflows the master output buffer and costs a second full sync', async () => {
    const run = await start(false);
    await until(
      'the master to start sending its snapshot',
      async () => ['send_bulk', 'online'].includes((await replicaState(run.master)) ?? ''),
      30_000,
      run.redtail,
    );
    await burst(run.master);
    await until('the master to drop redtail', () => outputBufferDrops(run.master) > 0, 60_000, run.redtail);
    await run.release();
    await until('a second full sync', () => fullSyncs(run.redtail) >= 2, 60_000, run.redtail);
    const diagnosis = run.redtail.logs().find((l) => String(l.msg).includes('client-output-buffer-limit'));
    expect(diagnosis?.limit).toBe('replica 67108864 33554432 10');
    expect(String(diagnosis?.msg)).toMatch(/Enable the spool/);
    expect(run.redtail.logs().some((l) => String(l.msg).includes('snapshot save failed'))).toBe(false);
  }, 300_000);
});
