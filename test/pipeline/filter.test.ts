import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RedisServer } from '../harness/RedisServer.js';
import { RedtailProcess } from '../harness/RedtailProcess.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0)) await f();
});

function withConfig(config: unknown): { dir: string; args: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'redtail-filter-'));
  writeFileSync(join(dir, 'redtail.json'), JSON.stringify(config));
  return { dir, args: ['--config', join(dir, 'redtail.json'), '--checkpoint', join(dir, 'cp.json')] };
}

describe('filters from the config file', () => {
  it('keep only what include/exclude select, in the snapshot and the stream, while the checkpoint moves on', async () => {
    const master = await RedisServer.start();
    cleanup.push(() => master.stop());
    const db0 = master.client();
    const db1 = master.client({ db: 1 });
    await db0.set('user:1', 'a');
    await db0.set('secret:1', 'x');
    await db1.set('user:9', 'other db');
    const { dir, args } = withConfig({ filter: { include: { db: [0] }, exclude: { keys: ['secret:*'] } } });
    const p = RedtailProcess.start(['run', '--master', master.url(), ...args]);
    cleanup.push(() => p.stop('SIGKILL'));
    await p.waitFor(() => p.events.some((e) => e.op === 'snapshot-end'), 'the snapshot');
    await db0.set('user:2', 'b');
    await db0.set('secret:2', 'y');
    await db1.set('user:8', 'other db');
    await db0.hset('user:3', 'f', 'v');
    const end = Number((await master.info('replication')).master_repl_offset);
    await p.waitFor(() => p.events.some((e) => e.key === 'user:3'), 'the last included write');
    await p.waitFor(() => {
      try {
        return JSON.parse(readFileSync(join(dir, 'cp.json'), 'utf8')).offset >= end;
      } catch {
        return false;
      }
    }, 'the checkpoint to pass the filtered writes');
    const keyed = p.events.filter((e) => e.key !== undefined).map((e) => `${e.op} ${e.db} ${e.key}`);
    expect(keyed).toEqual(['snapshot 0 user:1', 'set 0 user:2', 'hset 0 user:3']);
    expect(p.events.filter((e) => e.key === undefined).map((e) => e.op)).toEqual([
      'snapshot-begin',
      'snapshot-end',
    ]);
  });

  it('refuses a malformed filter before connecting, naming the setting', async () => {
    const { args } = withConfig({ filter: { incldue: { db: [0] } } });
    const p = RedtailProcess.start(['run', '--master', 'redis://127.0.0.1:1', ...args]);
    const { code } = await p.exited;
    expect(code).toBe(2);
    expect(p.stderr).toMatch(/invalid config: filter\.incldue is not a filter setting/);
  });
});
