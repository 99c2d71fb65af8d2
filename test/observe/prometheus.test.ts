import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { freePort } from '../harness/ports.js';
import { useTestScope } from '../harness/TestScope.js';
import { dropSchema, mirrorCaughtUp, PG_URL, uniqueSchema } from '../sinks/postgres/helpers.js';
import { runWithHttp, tempDir, until } from './helpers.js';

const scope = useTestScope();

/** Debian's Prometheus server on a free loopback port, scraping `target` every second. */
async function prometheus(target: string): Promise<(query: string) => Promise<number | null>> {
  const dir = tempDir('prometheus');
  const port = await freePort();
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: redtail
    scrape_interval: 1s
    scrape_timeout: 900ms
    static_configs: [{ targets: ['${target}'] }]
`,
  );
  const proc: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  proc.stderr!.on('data', (d) => {
    log += d;
  });
  scope.defer(async () => {
    proc.kill('SIGTERM');
    await new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once('exit', r)));
  });
  const query = async (q: string): Promise<number | null> => {
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = (await res.json()) as { data: { result: { value: [number, string] }[] } };
    const r = body.data.result[0];
    return r ? Number(r.value[1]) : null;
  };
  await until(async () => {
    if (proc.exitCode !== null) throw new Error(`prometheus exited: ${log.slice(-2000)}`);
    try {
      return (await query('up{job="redtail"}')) === 1;
    } catch {
      return false;
    }
  }, 'Prometheus to scrape redtail');
  return query;
}

describe('redtail scraped by a real Prometheus', () => {
  it('sees the lag rise while a sink is stalled and fall back to 0, and readiness drop during a master outage', async () => {
    const master = await scope.server();
    const schema = uniqueSchema('prom');
    scope.defer(() => dropSchema(schema));
    const dir = tempDir('prom-run');
    writeFileSync(join(dir, 'redtail.json'), JSON.stringify({ readiness: { sinkStallMs: 2000 } }));
    const { p, port, get } = await runWithHttp(scope, [
      '--master',
      master.url(),
      '--sink',
      `${PG_URL}?schema=${schema}`,
      '--checkpoint',
      join(dir, 'cp.json'),
      '--config',
      join(dir, 'redtail.json'),
    ]);
    await master.client().set('warmup', '1');
    await mirrorCaughtUp(master, schema);
    const query = await prometheus(`127.0.0.1:${port}`);
    await until(async () => (await query('redtail_ready')) === 1, 'Prometheus to see redtail ready');
    expect(await query('redtail_lag_bytes')).toBe(0);

    // Stall the sink: its writes wait for a lock another session holds.
    const locker = new pg.Client({ connectionString: PG_URL });
    await locker.connect();
    scope.defer(() => locker.end().catch(() => {}));
    await locker.query('BEGIN');
    await locker.query(`LOCK TABLE "${schema}".changes IN ACCESS EXCLUSIVE MODE`);
    const c = master.client();
    for (let i = 0; i < 100; i++) await c.set(`stalled:${i}`, 'x'.repeat(100));
    await until(async () => ((await query('redtail_lag_bytes')) ?? 0) > 10_000, 'the lag in bytes to rise');
    await until(async () => ((await query('redtail_lag_seconds')) ?? 0) >= 2, 'the lag in seconds to rise');
    await until(
      async () => (await query('redtail_sink_failing{sink="postgres"}')) === 1,
      'the sink to count as failing',
    );
    expect((await get('/readyz')).status).toBe(503);
    const peak = (await query('max_over_time(redtail_lag_bytes[1m])')) ?? 0;

    await locker.query('ROLLBACK');
    await mirrorCaughtUp(master, schema);
    await until(async () => (await query('redtail_lag_bytes')) === 0, 'the lag in bytes to return to 0');
    await until(async () => (await query('redtail_lag_seconds')) === 0, 'the lag in seconds to return to 0');
    await until(async () => (await query('redtail_ready')) === 1, 'redtail to be ready again');
    expect(peak).toBeGreaterThan(10_000);
    let sets: number | null = null;
    await until(async () => {
      sets = await query('sum(redtail_sink_events_total{op="set"})');
      // The warm-up write may have landed in the snapshot instead.
      return sets !== null && sets >= 100;
    }, 'Prometheus to count the 100 committed sets').catch((err) => {
      throw new Error(`${err.message}: it counts ${sets}`);
    });

    // A master outage: not ready (the link is down) until it is back, as Prometheus and /readyz both see.
    await master.stop({ graceful: false, keepDir: true });
    await until(async () => (await get('/readyz')).status === 503, '/readyz to say not ready');
    expect(JSON.parse((await get('/readyz')).body).reasons.join(' ')).toMatch(
      /replication link is (connecting|handshake)/,
    );
    await until(async () => (await query('redtail_ready')) === 0, 'Prometheus to see redtail not ready');
    expect(await query('redtail_link_up')).toBe(0);
    await master.restart();
    await until(async () => (await get('/readyz')).status === 200, '/readyz to say ready again');
    await until(async () => (await query('redtail_ready')) === 1, 'Prometheus to see redtail ready again');
    expect(await query('redtail_link_reconnects_total')).toBeGreaterThanOrEqual(1);
    expect(await p.stop('SIGTERM')).toMatchObject({ code: 0 });
  }, 240_000);
});
