import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { RedisServer } from '../harness/RedisServer.js';
import { RedtailProcess } from '../harness/RedtailProcess.js';
import { expectExactlyOnceAcrossReplicaKills, masterOffset, text, writes } from './linkChecks.js';

const running: RedtailProcess[] = [];
const servers: RedisServer[] = [];

afterEach(async () => {
  for (const p of running.splice(0)) await p.stop('SIGKILL');
  for (const s of servers.splice(0)) await s.stop();
});

async function master(opts: Parameters<typeof RedisServer.start>[0] = {}): Promise<RedisServer> {
  const s = await RedisServer.start({
    ...opts,
    config: { 'enable-debug-command': 'yes', ...(opts.config ?? {}) },
  });
  servers.push(s);
  return s;
}

function redtail(url: string, extra: string[] = []): { proc: RedtailProcess; checkpoint: string } {
  const dir = mkdtempSync(join(tmpdir(), 'redtail-run-'));
  const checkpoint = join(dir, 'checkpoint.json');
  const proc = RedtailProcess.start(['run', '--master', url, '--checkpoint', checkpoint, ...extra]);
  running.push(proc);
  return { proc, checkpoint };
}

/** Parses `slave0:ip=...,port=...,state=online,offset=N,lag=M`. */
async function replicaInfo(s: RedisServer): Promise<Record<string, string> | null> {
  const line = (await s.info('replication')).slave0;
  if (!line) return null;
  return Object.fromEntries(line.split(',').map((kv) => kv.split('=') as [string, string]));
}

describe('replica handshake and authentication', () => {
  it('authenticates with the default user password and streams writes', async () => {
    const m = await master({ password: 's3cret' });
    const { proc } = redtail(m.url('default'));
    await proc.waitFor(() => proc.events.some((e) => e.op === 'snapshot-end'), 'snapshot end');
    await m.client().set('pw:key', 'value');
    await proc.waitFor(() => writes(proc.events, 'pw:').length === 1, 'the write');
    expect(writes(proc.events, 'pw:')[0]).toMatchObject({ op: 'set', db: 0, key: 'pw:key' });
  });

  it('authenticates as an ACL user', async () => {
    const m = await master({ password: 'adminpw', aclUser: { name: 'tail', password: 'tailpw' } });
    const { proc } = redtail(m.url('acl'));
    await proc.waitFor(() => proc.events.some((e) => e.op === 'snapshot-end'), 'snapshot end');
    await m.client().set('acl:key', 'v');
    await proc.waitFor(() => writes(proc.events, 'acl:').length === 1, 'the write');
    const info = await replicaInfo(m);
    expect(info?.state).toBe('online');
  });

  it('exits non-zero with one line naming the master and the reason on a wrong password', async () => {
    const m = await master({ password: 'right' });
    const { proc } = redtail(`redis://:wrong@127.0.0.1:${m.port}`);
    const { code } = await proc.exited;
    expect(code).not.toBe(0);
    const plain = proc.stderr.split('\n').filter((l) => l && !l.startsWith('{'));
    expect(plain).toHaveLength(1);
    expect(plain[0]).toContain(`127.0.0.1:${m.port}`);
    expect(plain[0]).toMatch(/WRONGPASS|invalid password/);
  });

  it('exits non-zero when the master needs a password and none is given', async () => {
    const m = await master({ password: 'right' });
    const { proc } = redtail(`redis://127.0.0.1:${m.port}`);
    const { code } = await proc.exited;
    expect(code).not.toBe(0);
    expect(proc.stderr).toMatch(/NOAUTH.*requires a password/);
  });
});

for (const diskless of [false, true]) {
  describe(`full sync (${diskless ? 'diskless' : 'disk-based'})`, () => {
    it('delivers writes made during and after the snapshot exactly once, in order, with exact offsets', async () => {
      const m = await master({ diskless });
      const c = m.client();
      // A snapshot big enough to take a while, so that writes land while it is produced and transferred.
      await c.call('DEBUG', 'POPULATE', '200000', 'bulk', '64');
      await c.set('before', 'x');
      const { proc, checkpoint } = redtail(m.url());
      let i = 0;
      let snapshotEndedAt = -1;
      // Keep writing until the snapshot has been loaded, then 500 more.
      while (snapshotEndedAt < 0 || i < snapshotEndedAt + 500) {
        await c.set(`w:${String(i).padStart(6, '0')}`, String(i));
        i++;
        if (snapshotEndedAt < 0 && proc.events.some((e) => e.op === 'snapshot-end')) snapshotEndedAt = i;
        if (i > 200_000) throw new Error('snapshot never ended');
      }
      const end = await masterOffset(m);
      await proc.waitForOffset(end);
      const got = writes(proc.events, 'w:').map((e) => Number(text(e.key).slice(2)));
      // Writes before the fork are in the snapshot; every later one arrives once, in order, with none missing.
      expect(got.length).toBeGreaterThan(500);
      const first = got[0]!;
      expect(got).toEqual(Array.from({ length: i - first }, (_, k) => first + k));
      const snap = proc.events.filter((e) => e.op === 'snapshot');
      const snapW = snap
        .filter((e) => text(e.key).startsWith('w:'))
        .map((e) => Number(text(e.key).slice(2)))
        .sort((a, b) => a - b);
      expect(snapW).toEqual(Array.from({ length: first }, (_, k) => k));
      expect(snap.find((e) => e.key === 'before')).toMatchObject({
        type: 'string',
        value: 'x',
        expireAt: null,
      });
      expect(snap.length).toBe(200_000 + 1 + first);
      // Each event's offset is the offset at the end of its command: strictly increasing, last one = master's.
      const offsets = writes(proc.events, 'w:').map((e) => e.source.offset);
      for (let k = 1; k < offsets.length; k++) expect(offsets[k]).toBeGreaterThan(offsets[k - 1]!);
      expect(offsets[offsets.length - 1]).toBe(end);
      const snapEnd = proc.events.find((e) => e.op === 'snapshot-end')!;
      expect(snapEnd.keys).toBe(snap.length);
      await proc.stop();
      const cp = JSON.parse(readFileSync(checkpoint, 'utf8'));
      expect(cp.offset).toBe(await masterOffset(m));
      expect(cp.replid).toBe((await m.info('replication')).master_replid);
    });
  });
}

describe('acknowledgements', () => {
  it('is an online replica whose acknowledged offset catches up, and WAIT counts it', async () => {
    const m = await master({ password: 'pw' });
    const { proc } = redtail(m.url());
    await proc.waitFor(() => proc.events.some((e) => e.op === 'snapshot-end'), 'snapshot end');
    const c = m.client();
    const pipe = c.pipeline();
    for (let k = 0; k < 5000; k++) pipe.set(`burst:${k}`, 'v');
    await pipe.exec();
    expect(await c.call('WAIT', '1', '1000')).toBe(1);
    // WAIT itself appends a REPLCONF GETACK to the stream, so the target is read after it.
    const target = await masterOffset(m);
    let info = await replicaInfo(m);
    for (let k = 0; k < 50 && Number(info?.offset) !== target; k++) {
      await sleep(100);
      info = await replicaInfo(m);
    }
    expect(info?.state).toBe('online');
    expect(Number(info?.offset)).toBe(target);
    expect(Number(info?.lag)).toBeLessThanOrEqual(1);
  });
});

describe('WAIT', () => {
  it('is answered as soon as the sinks have the write, not at the next periodic ACK', async () => {
    const m = await master();
    const { proc } = redtail(m.url());
    await proc.waitFor(() => proc.events.some((e) => e.op === 'snapshot-end'), 'snapshot end');
    const c = m.client();
    // Periodic ACKs come once a second; twenty WAITs with half that timeout only all succeed when the durable
    // offset is acknowledged on its own, right after each write reaches the sink.
    const answers: unknown[] = [];
    for (let i = 0; i < 20; i++) {
      await c.set(`wait:${i}`, 'v');
      answers.push(await c.call('WAIT', '1', '500'));
    }
    expect(answers).toEqual(Array(20).fill(1));
  });
});

describe('reconnection', () => {
  it('continues with a partial resync after the master kills the link, losing and repeating nothing', async () => {
    const m = await master();
    const { proc } = redtail(m.url());
    await proc.waitFor(() => proc.events.some((e) => e.op === 'snapshot-end'), 'snapshot end');
    await expectExactlyOnceAcrossReplicaKills(m, proc);
  });
});

describe('throughput and backpressure', () => {
  it('carries 100,000 pipelined redis-benchmark writes and stays bounded while stdout is not read', async () => {
    const m = await master({ config: { 'client-output-buffer-limit': 'replica 0 0 0' } });
    const { proc } = redtail(m.url());
    await proc.waitFor(() => proc.events.some((e) => e.op === 'snapshot-end'), 'snapshot end');
    const before = proc.events.length;
    proc.pauseStdout(true);
    const baseline = proc.rss();
    // ~100 MB of values: far more than redtail may hold, so it must stop reading the socket.
    m.cli([]);
    const { execFileSync } = await import('node:child_process');
    execFileSync(
      'redis-benchmark',
      ['-p', String(m.port), '-t', 'set', '-n', '100000', '-P', '32', '-d', '1000', '-q'],
      {
        stdio: 'ignore',
      },
    );
    const end = await masterOffset(m);
    await sleep(1000);
    const rssWhilePaused = proc.rss();
    const info = await replicaInfo(m);
    proc.pauseStdout(false);
    // While the consumer stalls, the data waits at the master (its acknowledged offset lags far behind) instead
    // of piling up inside redtail.
    expect(end - Number(info?.offset)).toBeGreaterThan(50_000_000);
    expect(rssWhilePaused - baseline).toBeLessThan(150 * 1024 * 1024);
    await proc.waitForOffset(end, 120_000);
    const sets = proc.events.slice(before).filter((e) => e.op === 'set');
    expect(sets.length).toBe(100_000);
  });
});
