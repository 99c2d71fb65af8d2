import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../harness/RedtailProcess.js';
import { useTestScope } from '../harness/TestScope.js';
import { families, runWithHttp, sample, tempDir, until } from './helpers.js';

const scope = useTestScope();

describe('the HTTP endpoint of redtail run', () => {
  it('serves metrics that promtool accepts, count what happened, and are all documented and on the dashboard', async () => {
    const master = await scope.server();
    const dir = tempDir('http');
    const { p, get } = await runWithHttp(scope, [
      '--master',
      master.url(),
      '--sink',
      `file:${join(dir, 'events.ndjson')}`,
      '--checkpoint',
      join(dir, 'cp.json'),
    ]);
    await p.waitFor(() => p.stderr.includes('snapshot loaded'), 'the snapshot');
    const c = master.client();
    for (let i = 0; i < 25; i++) await c.set(`k${i}`, 'v');
    await c.del('k0', 'k1');
    const target = Number((await master.info('replication')).master_repl_offset);
    let text = '';
    await until(async () => {
      text = (await get('/metrics')).body;
      return (sample(text, 'redtail_durable_offset_bytes') ?? -1) >= target;
    }, 'the durable offset to reach the master offset');

    expect(
      sample(text, `redtail_sink_events_total{sink="file:${join(dir, 'events.ndjson')}",op="set"}`),
    ).toBe(25);
    expect(
      sample(text, `redtail_sink_events_total{sink="file:${join(dir, 'events.ndjson')}",op="del"}`),
    ).toBe(2);
    expect(sample(text, 'redtail_master_offset_bytes')).toBeGreaterThanOrEqual(target);
    expect(sample(text, 'redtail_full_resyncs_total')).toBe(1);
    expect(sample(text, 'redtail_link_up')).toBe(1);
    expect(sample(text, 'redtail_ready')).toBe(1);
    expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);

    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.status, `promtool check metrics: ${check.stdout}${check.stderr}`).toBe(0);

    const names = families(text);
    const docs = readFileSync(join(repoRoot, 'docs/metrics.md'), 'utf8');
    for (const n of names.filter((x) => x.startsWith('redtail_')))
      expect(docs, `${n} is not documented in docs/metrics.md`).toContain(`\`${n}`);
    const documented = [...docs.matchAll(/`(redtail_[a-z_]+)/g)].map((m) => m[1]!);
    // The one example of adding a source names the spool, which registers itself once it exists.
    for (const n of documented.filter((x) => !x.startsWith('redtail_spool')))
      expect(names, `docs/metrics.md documents ${n}, which /metrics lacks`).toContain(n);
    const dashboard = readFileSync(join(repoRoot, 'config/grafana/redtail-dashboard.json'), 'utf8');
    for (const m of dashboard.matchAll(/\b((?:redtail|process)_[a-z_]+)/g)) {
      const family = m[1]!.replace(/_(bucket|sum|count)$/, '');
      expect(names, `the dashboard queries ${m[1]}, which /metrics lacks`).toContain(family);
    }

    expect((await get('/healthz')).status).toBe(200);
    const ready = await get('/readyz');
    expect(ready).toMatchObject({ status: 200 });
    expect(JSON.parse(ready.body)).toEqual({ ready: true, reasons: [] });
    expect((await get('/nope')).status).toBe(404);
    expect(await p.stop('SIGTERM')).toMatchObject({ code: 0 });
  });

  it('ends with one clear line when the port is taken', async () => {
    const master = await scope.server();
    const dir = tempDir('http-busy');
    const first = await runWithHttp(scope, ['--master', master.url(), '--checkpoint', join(dir, 'a.json')]);
    const second = scope.redtail([
      'run',
      '--http',
      `127.0.0.1:${first.port}`,
      '--master',
      master.url(),
      '--checkpoint',
      join(dir, 'b.json'),
    ]);
    expect(await second.exited).toMatchObject({ code: 1 });
    expect(second.stderr).toContain(
      `redtail: cannot listen on http 127.0.0.1:${first.port}: the port is in use`,
    );
  });
});
