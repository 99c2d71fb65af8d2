import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { MasterFetcher } from '../../../sinks/postgres/MasterFetcher.js';
import { verifyMirror } from '../../../sinks/postgres/verify.js';
import { type MasterAddress, parseMasterUrl } from '../../../src/link/MasterAddress.js';
import { RedisServer } from '../../harness/RedisServer.js';
import type { RedtailProcess } from '../../harness/RedtailProcess.js';
import { useTestScope } from '../../harness/TestScope.js';
import { describeDiffs, dropSchema, mirrorOffset, PG_URL, pgQuery, uniqueSchema } from './helpers.js';

const scope = useTestScope();

const offsetOf = async (s: RedisServer) => Number((await s.info('replication')).master_repl_offset);

function handshakes(p: RedtailProcess): number {
  return p.logs().filter((l) => l.msg === 'replication handshake done').length;
}

async function until(
  what: string,
  done: () => Promise<boolean>,
  timeoutMs = 30_000,
  detail: () => string = () => '',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${detail()}`);
    await sleep(50);
  }
}

async function caughtUp(replica: RedisServer, master: RedisServer): Promise<void> {
  const target = await offsetOf(master);
  await until('the replica to catch up', async () => {
    const info = await replica.info('replication');
    return info.master_link_status === 'up' && Number(info.master_repl_offset) >= target;
  });
}

/** A master and a replica of it (the promotion candidate), with backlogs that keep one history across the failover. */
async function pair(replicaConfig: Record<string, string> = {}): Promise<{ m: RedisServer; r: RedisServer }> {
  const m = await scope.server({ config: { 'repl-backlog-size': '16mb' } });
  const r = await scope.server({
    config: { 'repl-backlog-size': '16mb', replicaof: `127.0.0.1 ${m.port}`, ...replicaConfig },
  });
  await until('the replica link', async () => (await r.info('replication')).master_link_status === 'up');
  return { m, r };
}

/** Commands whose mirror update needs the master's exact value (docs/postgres.md, "fetched"). */
async function fetchedWrites(c: Redis, tag: string): Promise<void> {
  await c.rpush(`list:${tag}`, 'pear', 'apple', 'fig');
  await c.sort(`list:${tag}`, 'ALPHA', 'STORE', `sorted:${tag}`);
  await c.zadd(`z:${tag}`, 1, 'a', 2, 'b', 3, 'c');
  await c.call('ZRANGESTORE', `zr:${tag}`, `z:${tag}`, '0', '1');
  await c.geoadd(`geo:${tag}`, 13.361389, 38.115556, 'Palermo', 15.087269, 37.502669, 'Catania');
  await c.pfadd(`hll:${tag}`, 'x', 'y', 'z');
  await c.call('BITFIELD', `bf:${tag}`, 'INCRBY', 'u8', '0', '300');
  await c.set(`plain:${tag}`, 'v');
}

describe('postgres mirror across a failover', () => {
  it.each([
    ['two candidate masters', 'candidates'],
    ['redis-sentinel', 'sentinel'],
  ])(
    'fetches exact values from the new master (%s)',
    async (_title, how) => {
      const { m, r } = await pair();
      const schema = uniqueSchema('failover');
      scope.defer(() => dropSchema(schema));
      let source: string[];
      let sentinel: RedisServer | null = null;
      if (how === 'sentinel') {
        const dir = mkdtempSync(join(tmpdir(), 'redtail-sentinel-'));
        scope.defer(() => rmSync(dir, { recursive: true, force: true }));
        sentinel = await RedisServer.start({
          dir,
          sentinel: [
            `sentinel monitor mymaster 127.0.0.1 ${m.port} 1`,
            'sentinel down-after-milliseconds mymaster 1000',
            'sentinel failover-timeout mymaster 5000',
          ],
        });
        const s = sentinel;
        scope.defer(() => s.stop());
        // --master still names the first master: with Sentinel it only supplies credentials.
        source = ['--sentinel', `127.0.0.1:${s.port}`, '--master-name', 'mymaster', '--master', m.url()];
      } else source = ['--master', m.url(), '--master', r.url()];

      const p = scope.redtail([
        'run',
        '--log-level',
        'info',
        ...source,
        '--sink',
        `${PG_URL}?schema=${schema}`,
      ]);
      await p.waitFor(() => handshakes(p) === 1, 'the first sync');
      // Before the failover the fetcher has a live connection to the first master.
      await fetchedWrites(m.client(), 'before');
      const before = await offsetOf(m);
      await until('the mirror to reach the first master', async () => (await mirrorOffset(schema)) >= before);

      if (sentinel) {
        const s = sentinel;
        await until('sentinel to discover the replica', async () => {
          const replicas = (await s.client().call('SENTINEL', 'REPLICAS', 'mymaster')) as unknown[];
          return replicas.length > 0;
        });
      }
      // One history across the failover: the old master stops writing (Sentinel's hello PUBLISHes included)
      // before the replica is promoted, as the FAILOVER command or a careful operator does (docs/resume.md).
      await m.client().call('CLIENT', 'PAUSE', '10000', 'WRITE');
      await caughtUp(r, m);
      if (sentinel) await sentinel.client().call('SENTINEL', 'FAILOVER', 'mymaster');
      else {
        await r.client().call('REPLICAOF', 'NO', 'ONE');
        await m.client().call('REPLICAOF', '127.0.0.1', String(r.port));
      }
      await until('the promotion', async () => (await r.info('replication')).role === 'master');
      await p.waitFor(() => handshakes(p) >= 2, 'redtail to follow the new master');

      // The old master is, or is about to become, a replica of the new one: nothing it answers is at the
      // stream's offsets any more. Before the fix the sink fetched there and failed on its ROLE reply.
      await fetchedWrites(r.client(), 'after');
      await r.client().call('SORT', 'list:before', 'ALPHA', 'DESC', 'STORE', 'sorted:before');
      await r.client().call('ZRANGESTORE', 'zr:before', 'z:before', '1', '2');

      const end = await offsetOf(r);
      await until(
        'the mirror to reach the new master',
        async () => (await mirrorOffset(schema)) >= end,
        20_000,
        () => `; redtail's log ends with: ${p.stderr.slice(-3000)}`,
      );
      const result = await verifyMirror({ master: r.url(), postgres: PG_URL, schema, timeoutMs: 10_000 });
      expect(result.caughtUp).toBe(true);
      expect(result.keys).toBeGreaterThan(10);
      expect(result.differences.length, describeDiffs(result)).toBe(0);
      const mirrored = await pgQuery<{ key_text: string; value: unknown }>(
        `SELECT key_text, value FROM "${schema}".keys WHERE key_text IN ('sorted:after', 'sorted:before', 'zr:before')
       ORDER BY key_text`,
      );
      expect(mirrored).toEqual([
        { key_text: 'sorted:after', value: ['apple', 'fig', 'pear'] },
        { key_text: 'sorted:before', value: ['pear', 'fig', 'apple'] },
        {
          key_text: 'zr:before',
          value: [
            ['b', 2],
            ['c', 3],
          ],
        },
      ]);
      const moved = p.logs().filter((l) => l.msg === 'exact values are now fetched from another master');
      expect(moved.map((l) => l.to)).toContain(`127.0.0.1:${r.port}`);
      expect((await p.stop('SIGTERM')).code).toBe(0);
    },
    90_000,
  );
});

describe('MasterFetcher', () => {
  it('never uses values read from a replica, says so once, and reads from the master once it is current', async () => {
    // A writable replica holding a value of its own: reading it there would be visibly wrong.
    const { m, r } = await pair({ 'replica-read-only': 'no' });
    await m.client().set('k', 'on the master');
    await caughtUp(r, m);
    await r.client().set('k', 'on the replica only');
    const logs: Record<string, unknown>[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line)) });
    let current: MasterAddress = parseMasterUrl(r.url());
    const fetcher = new MasterFetcher(() => current, { retryMaxDelayMs: 200, logger });
    scope.defer(() => fetcher.close());

    let settled = false;
    const fetching = fetcher.fetch([{ db: 0, key: Buffer.from('k') }]);
    fetching.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    await sleep(2_000);
    expect(settled).toBe(false);
    const warnings = logs.filter((l) => String(l.msg).includes('is not a master'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ server: `127.0.0.1:${r.port}`, role: 'slave' });

    const from = await offsetOf(m);
    current = parseMasterUrl(m.url());
    const result = await fetching;
    expect(result.offset).toBeGreaterThanOrEqual(from);
    expect(result.offset).toBeLessThanOrEqual(await offsetOf(m));
    expect(result.values).toHaveLength(1);
    expect(result.values[0]!.value).toEqual({ type: 'string', v: Buffer.from('on the master') });
    expect(logs.some((l) => l.msg === 'exact values are now fetched from another master')).toBe(true);
  });
});

describe('postgres mirror across a failover while the sinks hold the stream back', () => {
  it('connects to the new master for a fetch although the pipeline is full, instead of waiting for itself', async () => {
    const { m, r } = await pair();
    const schema = uniqueSchema('failbp');
    scope.defer(() => dropSchema(schema));
    const dir = mkdtempSync(join(tmpdir(), 'redtail-failbp-'));
    scope.defer(() => rmSync(dir, { recursive: true, force: true }));
    const config = join(dir, 'redtail.json');
    // A few events in flight are enough to hold the link back: the failover then always finds it paused. Only
    // without the spool do the sinks hold the link back at all (with it they hold back the replay, and the link
    // follows the failover by itself, as the other failover tests show).
    writeFileSync(config, JSON.stringify({ pipeline: { highWaterEvents: 4 }, spool: { enabled: false } }));
    const p = scope.redtail([
      'run',
      '--log-level',
      'info',
      '--master',
      m.url(),
      '--master',
      r.url(),
      '--sink',
      `${PG_URL}?schema=${schema}`,
      '--config',
      config,
    ]);
    await p.waitFor(() => handshakes(p) === 1, 'the first sync');
    await m.client().set('warm', '1');
    const warm = await offsetOf(m);
    await until(
      'the mirror to start',
      async () => (await mirrorOffset(schema)) >= warm,
      30_000,
      () => p.stderr.slice(-3000),
    );

    // Hold the sink's next batch inside Postgres, so the fetch it needs happens only after the failover.
    const locker = new pg.Client({ connectionString: PG_URL });
    await locker.connect();
    scope.defer(() => locker.end());
    await locker.query('BEGIN');
    await locker.query(`LOCK TABLE "${schema}".keys IN ACCESS EXCLUSIVE MODE`);
    await fetchedWrites(m.client(), 'held');
    await caughtUp(r, m);
    await r.client().call('REPLICAOF', 'NO', 'ONE');
    await m.client().call('REPLICAOF', '127.0.0.1', String(r.port));
    await until('the promotion', async () => (await r.info('replication')).role === 'master');
    await locker.query('COMMIT');

    await fetchedWrites(r.client(), 'after');
    const end = await offsetOf(r);
    await until(
      'the mirror to reach the new master',
      async () => (await mirrorOffset(schema)) >= end,
      30_000,
      () => `; redtail's log ends with: ${p.stderr.slice(-3000)}`,
    );
    expect(
      p.logs().some((l) => l.msg === 'connecting to the master while the sinks hold the stream back'),
    ).toBe(true);
    const result = await verifyMirror({ master: r.url(), postgres: PG_URL, schema, timeoutMs: 10_000 });
    expect(result.caughtUp).toBe(true);
    expect(result.differences.length, describeDiffs(result)).toBe(0);
    const sorted = await pgQuery<{ key_text: string; value: unknown }>(
      `SELECT key_text, value FROM "${schema}".keys WHERE key_text IN ('sorted:held', 'sorted:after') ORDER BY key_text`,
    );
    expect(sorted).toEqual([
      { key_text: 'sorted:after', value: ['apple', 'fig', 'pear'] },
      { key_text: 'sorted:held', value: ['apple', 'fig', 'pear'] },
    ]);
    expect((await p.stop('SIGTERM')).code).toBe(0);
  }, 90_000);
});
