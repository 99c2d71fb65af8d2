import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { freePort } from '../harness/ports.js';
import type { RedtailProcess } from '../harness/RedtailProcess.js';
import { useTestScope } from '../harness/TestScope.js';
import {
  dropSchema,
  mirrorCaughtUp,
  mirrorOffset,
  PG_URL,
  pgQuery,
  uniqueSchema,
} from '../sinks/postgres/helpers.js';
import { tempDir } from './helpers.js';

const scope = useTestScope();

/** Waits for the process to exit; the limit only detects a stop that hangs (the bug under test). */
async function exitOf(p: RedtailProcess, limitMs = 60_000) {
  const r = await Promise.race([p.exited, sleep(limitMs).then(() => null)]);
  if (!r) throw new Error(`redtail did not exit within ${limitMs} ms; stderr: ${p.stderr.slice(-2000)}`);
  return r;
}

/**
 * A Postgres mirror whose `changes` table another session holds locked: every write of the sink waits, as with a
 * database that stopped answering. `unlock` lets it go on.
 */
async function stalledMirror(env: NodeJS.ProcessEnv) {
  const master = await scope.server();
  const schema = uniqueSchema('stop');
  scope.defer(() => dropSchema(schema));
  const args = [
    'run',
    '--master',
    master.url(),
    '--sink',
    `${PG_URL}?schema=${schema}`,
    '--checkpoint',
    join(tempDir('stop'), 'cp.json'),
  ];
  const p = scope.redtail(args, env);
  await master.client().set('before', '1');
  await mirrorCaughtUp(master, schema);
  const committed = await mirrorOffset(schema);
  const locker = new pg.Client({ connectionString: PG_URL });
  await locker.connect();
  scope.defer(() => locker.end().catch(() => {}));
  await locker.query('BEGIN');
  await locker.query(`LOCK TABLE "${schema}".changes IN ACCESS EXCLUSIVE MODE`);
  const c = master.client();
  for (let i = 0; i < 50; i++) await c.set(`during:${i}`, String(i));
  const target = Number((await master.info('replication')).master_repl_offset);
  // The sink is now blocked on the lock with these writes in flight.
  await sleep(500);
  return {
    master,
    schema,
    p,
    args,
    committed,
    target,
    unlock: () => locker.query('ROLLBACK'),
  };
}

describe('stopping redtail run', () => {
  it('exits 1 after shutdownTimeoutMs when a sink cannot commit, saying what was not flushed; the next start loses nothing', async () => {
    const s = await stalledMirror({ REDTAIL_SHUTDOWN_TIMEOUT_MS: '1500' });
    s.p.proc.kill('SIGTERM');
    expect(await exitOf(s.p)).toMatchObject({ code: 1 });
    const line = s.p.stderr.split('\n').find((l) => l.startsWith('redtail: the stop did not finish'));
    expect(line, s.p.stderr.slice(-2000)).toBeDefined();
    expect(line).toContain('shutdownTimeoutMs (1500 ms) while draining the sinks');
    expect(line).toContain(`the checkpoint is at`);
    expect(line).toContain(`:${s.committed}`);
    expect(line).toContain('Nothing past the last checkpoint is lost: the next start resumes from it');
    expect(await mirrorOffset(s.schema)).toBe(s.committed);

    await s.unlock();
    const again = scope.redtail(s.args);
    await mirrorCaughtUp(s.master, s.schema);
    const rows = await pgQuery<{ n: string }>(
      `SELECT count(*) AS n FROM "${s.schema}".keys WHERE key_text LIKE 'during:%'`,
    );
    expect(Number(rows[0]!.n)).toBe(50);
    expect(await mirrorOffset(s.schema)).toBeGreaterThanOrEqual(s.target);
    expect(await again.stop('SIGTERM')).toMatchObject({ code: 0 });
  });

  it('exits at once on a second signal, saying what was not flushed', async () => {
    const s = await stalledMirror({ REDTAIL_SHUTDOWN_TIMEOUT_MS: '600000' });
    s.p.proc.kill('SIGTERM');
    await s.p.waitFor(() => s.p.stderr.includes('a second signal exits at once'), 'the first stop');
    s.p.proc.kill('SIGTERM');
    // 128 + SIGTERM (15), like a shell reports a process killed by it.
    expect(await exitOf(s.p)).toMatchObject({ code: 143 });
    const line = s.p.stderr.split('\n').find((l) => l.startsWith('redtail: second SIGTERM: exiting at once'));
    expect(line, s.p.stderr.slice(-2000)).toBeDefined();
    expect(line).toMatch(
      /not flushed: \d+ bytes of the replication stream \(offsets \d+\.\.\d+\) received but not committed/,
    );
    expect(await mirrorOffset(s.schema)).toBe(s.committed);
    await s.unlock();
  });

  it('does not wait for Kafka brokers that cannot be reached', async () => {
    const master = await scope.server();
    const closed = await freePort();
    // Kafka's own connect timeout and the stop deadline are both far away: only not waiting ends this quickly.
    const p = scope.redtail(
      [
        'run',
        '--master',
        master.url(),
        '--sink',
        `kafka://127.0.0.1:${closed}?connectTimeoutMs=600000`,
        '--checkpoint',
        join(tempDir('kafka-down'), 'cp.json'),
      ],
      { REDTAIL_SHUTDOWN_TIMEOUT_MS: '600000' },
    );
    await p.waitFor(
      () => p.stderr.includes('brokers not ready; retrying'),
      'a retry of the unreachable brokers',
    );
    p.proc.kill('SIGTERM');
    expect(await exitOf(p, 20_000)).toMatchObject({ code: 1 });
    expect(p.stderr).toContain(
      'redtail: stopped while opening the sinks (kafka), before anything was streamed: nothing past the last checkpoint is lost, the next start resumes from it',
    );
  });
});
