import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { schemaProblem } from '../harness/eventSchema.js';
import { expectedFrom, fingerprint } from '../harness/expectedEvents.js';
import { prng } from '../harness/prng.js';
import { RedisServer, type RedisServerOptions } from '../harness/RedisServer.js';
import type { JsonEvent, RedtailProcess } from '../harness/RedtailProcess.js';
import { ReplicationTap, type TappedCommand } from '../harness/ReplicationTap.js';
import { useTestScope } from '../harness/TestScope.js';
import { Workload } from '../harness/Workload.js';

const scope = useTestScope();
const server = (opts?: RedisServerOptions) => scope.server(opts);
const tap = (s: RedisServer) => scope.tap(s);
const start = (args: string[]) => scope.redtail(['run', '--log-level', 'info', ...args]);

const offsetOf = async (s: RedisServer) => Number((await s.info('replication')).master_repl_offset);

function readEvents(path: string): JsonEvent[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const event = JSON.parse(l) as JsonEvent;
      const problem = schemaProblem(event);
      if (problem) throw new Error(`event outside config/event.schema.json: ${problem}`);
      return event;
    });
}

/**
 * True once the sink's checkpoint reached `offset`. The stream may end in bytes that carry no event (PING, the
 * REPLCONF GETACK that SHUTDOWN and FAILOVER send), so waiting for an event at that offset could wait forever.
 */
function checkpointAt(path: string, offset: number): () => boolean {
  return () => {
    try {
      return JSON.parse(readFileSync(path, 'utf8')).offset >= offset;
    } catch {
      return false;
    }
  };
}

function streamEvents(events: JsonEvent[]): JsonEvent[] {
  return events.filter((e) => !e.source.snapshot);
}

function handshakeReplies(p: RedtailProcess): string[] {
  return p
    .logs()
    .filter((l) => l.msg === 'replication handshake done')
    .map((l) => String(l.reply));
}

/** redtail writing to a `file:` sink in a temp dir of its own, and what that sink has committed. */
class FileSinkRun {
  readonly dir = mkdtempSync(join(tmpdir(), 'redtail-faults-'));
  readonly file = join(this.dir, 'events.ndjson');
  readonly checkpoint = join(this.dir, 'cp.json');
  readonly args: string[];

  /** `source` names the master: `--master URL` (repeatable) or `--sentinel ... --master-name ...`. */
  constructor(source: string[]) {
    this.args = [...source, '--sink', `file:${this.file}`, '--checkpoint', this.checkpoint];
  }

  start(): RedtailProcess {
    return start(this.args);
  }

  /** Starts redtail and waits until its first handshake is done. */
  async startSynced(): Promise<RedtailProcess> {
    const p = this.start();
    await p.waitFor(() => handshakeReplies(p).length === 1, 'the first sync');
    return p;
  }

  /** True once the sink committed everything up to `offset`. */
  reached(offset: number): () => boolean {
    return checkpointAt(this.checkpoint, offset);
  }

  /** True once the sink has a resumable position (a first snapshot completed). */
  hasPosition(): boolean {
    try {
      return JSON.parse(readFileSync(this.checkpoint, 'utf8')).replid !== '';
    } catch {
      return false; // killed before the sink wrote its first checkpoint
    }
  }

  events(): JsonEvent[] {
    return readEvents(this.file);
  }

  /** The committed stream equals, event by event, what the independent tap recorded after the snapshot. */
  expectStreamToEqual(recorded: TappedCommand[]): void {
    const events = this.events();
    const begin = events.find((e) => e.op === 'snapshot-begin')!;
    const want = expectedFrom(recorded, begin.source.offset);
    expect(want.length).toBeGreaterThan(100);
    expect(streamEvents(events).map(fingerprint)).toEqual(want);
  }
}

/** Runs the mixed workload against `client` for `ms`. */
async function writeFor(client: Redis, seed: number, ms: number): Promise<Workload> {
  const w = new Workload(client, seed);
  w.start();
  await sleep(ms);
  await w.stop();
  return w;
}

/** Waits until the replica has everything the master has (so a promotion loses nothing). */
async function caughtUp(replica: RedisServer, master: RedisServer): Promise<void> {
  const target = await offsetOf(master);
  for (let i = 0; i < 400 && Number((await replica.info('replication')).master_repl_offset) < target; i++)
    await sleep(25);
}

describe('resume after kill -9', () => {
  it('is exactly-once across 20 kills at random moments, continuing partially after the first sync', async () => {
    const master = await server({ config: { 'enable-debug-command': 'yes', 'repl-backlog-size': '64mb' } });
    // Enough data that the first snapshot takes a while and can be cut off.
    await master.client().call('DEBUG', 'POPULATE', '100000', 'pre', '32');
    const recorder = await tap(master);
    const workload = new Workload(master.client(), 7);
    workload.start();
    scope.defer(() => workload.stop());
    const run = new FileSinkRun(['--master', master.url()]);
    const rnd = prng(42);
    let completedSync = false;
    const replies: string[][] = [];
    for (let round = 0; round < 20; round++) {
      const p = run.start();
      await p.waitFor(() => handshakeReplies(p).length > 0, 'the handshake');
      if (round === 0) {
        // Cut the first snapshot off in the middle.
        await sleep(30);
      } else if (round === 1) {
        await p.waitFor(() => run.hasPosition(), 'a completed first sync');
        await sleep(Math.floor(rnd() * 300));
      } else {
        // Somewhere in the stream: mid-batch, mid-transaction, between checkpoints.
        await sleep(Math.floor(rnd() * 800));
      }
      p.proc.kill('SIGKILL');
      await p.exited;
      replies.push(handshakeReplies(p));
      if (completedSync) expect(replies[round]).toEqual([expect.stringMatching(/^\+CONTINUE/)]);
      if (run.hasPosition()) completedSync = true;
    }
    await workload.stop();
    expect(workload.commands).toBeGreaterThan(1000);
    const end = await offsetOf(master);
    const last = run.start();
    await last.waitFor(run.reached(end), 'the final checkpoint');
    expect((await last.stop('SIGTERM')).code).toBe(0);
    await recorder.waitForOffset(end);

    const events = run.events();
    expect(events.filter((e) => e.op === 'snapshot-end')).toHaveLength(1);
    expect(events.filter((e) => e.op === 'snapshot')).toHaveLength(
      Number(events.find((e) => e.op === 'snapshot-end')!.keys),
    );
    run.expectStreamToEqual(recorder.drain());
    // Every round after the first completed sync continued partially.
    expect(replies.slice(2).flat()).toHaveLength(18);
    // 21 starts of the real binary: it took 71 s once at load 16 (past vitest's 60 s default) on the shared 2-core
    // machine. A failure detector, not a limit.
  }, 240_000);
});

describe('master restart', () => {
  it('continues partially after SHUTDOWN SAVE and a restart that reloads the RDB', async () => {
    const master = await server({ config: { 'repl-backlog-size': '16mb' } });
    const first = await tap(master);
    const run = new FileSinkRun(['--master', master.url()]);
    const p = await run.startSynced();
    await writeFor(master.client(), 3, 800);
    const before = await offsetOf(master);
    await first.waitForOffset(before);
    const recorded = first.drain();
    first.close();
    await master
      .client()
      .call('SHUTDOWN', 'SAVE')
      .catch(() => {});
    await master.restart();
    const second = await tap(master);
    // The restarted master kept its history: it reloaded replid and offset from the RDB and, like a promoted
    // replica, serves it as replid2 under a new replid, which is what lets redtail continue partially. Its offset
    // moved a little past `before`: SHUTDOWN sends a REPLCONF GETACK to its replicas.
    expect((await master.info('replication')).master_replid2).toBe(first.replid);
    expect(second.offset).toBeGreaterThanOrEqual(before);
    await writeFor(master.client(), 4, 800);
    const end = await offsetOf(master);
    await second.waitForOffset(end);
    await p.waitFor(run.reached(end), 'events after the restart');
    expect((await p.stop('SIGTERM')).code).toBe(0);
    const replies = handshakeReplies(p);
    expect(replies[0]).toMatch(/^\+FULLRESYNC/);
    expect(replies.slice(1).length).toBeGreaterThan(0);
    expect(replies.slice(1).every((r) => r.startsWith('+CONTINUE'))).toBe(true);
    run.expectStreamToEqual([...recorded, ...second.drain()]);
  });
});

/** Waits for the tap to be dropped by a promotion, then continues its recording on `server`. */
async function resumeTap(t: ReplicationTap, s: RedisServer): Promise<ReplicationTap> {
  for (let i = 0; i < 400 && !t.closed; i++) await sleep(25);
  const next = await ReplicationTap.resume(s.port, t.position, '127.0.0.1', s.options.password);
  scope.defer(() => next.close());
  return next;
}

describe('failover', () => {
  async function pair() {
    const m = await server({ config: { 'repl-backlog-size': '16mb' } });
    const r = await server({ config: { 'repl-backlog-size': '16mb', replicaof: `127.0.0.1 ${m.port}` } });
    for (let i = 0; i < 200 && (await r.info('replication')).master_link_status !== 'up'; i++)
      await sleep(25);
    // A tap chained on the replica sees the whole history: the old master's stream, then the promoted one's.
    return { m, r, recorder: await tap(r) };
  }

  /** After the promotion: more writes on the new master, then redtail's file must equal the recording. */
  async function finish(p: RedtailProcess, run: FileSinkRun, r: RedisServer, before: ReplicationTap) {
    const after = await resumeTap(before, r);
    await writeFor(r.client(), 17, 600);
    const end = await offsetOf(r);
    await after.waitForOffset(end);
    await p.waitFor(run.reached(end), 'events from the new master');
    expect((await p.stop('SIGTERM')).code).toBe(0);
    const replies = handshakeReplies(p);
    expect(replies.slice(1).length).toBeGreaterThan(0);
    expect(replies.slice(1).every((x) => x.startsWith(`+CONTINUE ${after.replid}`))).toBe(true);
    expect(JSON.parse(readFileSync(run.checkpoint, 'utf8')).replid).toBe(after.replid);
    run.expectStreamToEqual([...before.drain(), ...after.drain()]);
  }

  it.each([
    ['REPLICAOF NO ONE on the replica, then the old master made its replica', 'replicaof'],
    ['FAILOVER on the master', 'failover'],
  ])('follows %s, exactly once', async (_title, how) => {
    const { m, r, recorder } = await pair();
    const run = new FileSinkRun(['--master', m.url(), '--master', r.url()]);
    const p = await run.startSynced();
    await writeFor(m.client(), 11, 700);
    await caughtUp(r, m);
    await recorder.waitForOffset(await offsetOf(m));
    if (how === 'failover') {
      // Redis 6.2+: the master pauses writes, lets the replica catch up, hands over and becomes its replica.
      await m.client().call('FAILOVER', 'TO', '127.0.0.1', String(r.port));
      for (let i = 0; i < 400 && (await r.info('replication')).role !== 'master'; i++) await sleep(25);
    } else {
      // What Sentinel does: promote the replica, then turn the old master into its replica. Writes are paused
      // first so that not even a replication PING reaches redtail after the replica's promotion.
      await m.client().call('CLIENT', 'PAUSE', '10000', 'WRITE');
      await caughtUp(r, m);
      await r.client().call('REPLICAOF', 'NO', 'ONE');
      await m.client().call('REPLICAOF', '127.0.0.1', String(r.port));
    }
    await finish(p, run, r, recorder);
  });

  it('follows a failover through redis-sentinel', async () => {
    const { m, r, recorder } = await pair();
    const sentinelDir = mkdtempSync(join(tmpdir(), 'redtail-sentinel-'));
    scope.defer(() => rmSync(sentinelDir, { recursive: true, force: true }));
    const sentinel = await RedisServer.start({
      dir: sentinelDir,
      sentinel: [
        `sentinel monitor mymaster 127.0.0.1 ${m.port} 1`,
        'sentinel down-after-milliseconds mymaster 1000',
        'sentinel failover-timeout mymaster 5000',
      ],
    });
    scope.defer(() => sentinel.stop());
    const run = new FileSinkRun(['--sentinel', `127.0.0.1:${sentinel.port}`, '--master-name', 'mymaster']);
    const p = await run.startSynced();
    await writeFor(m.client(), 13, 500);
    // Sentinel needs to have discovered the replica before it can fail over to it.
    for (let i = 0; i < 200; i++) {
      const replicas = (await sentinel.client().call('SENTINEL', 'REPLICAS', 'mymaster')) as unknown[];
      if (replicas.length > 0) break;
      await sleep(50);
    }
    // Sentinel keeps PUBLISHing hello messages to the old master, and a forced failover does not pause it: a
    // message that reaches redtail but not the replica before its promotion is history the new master never had,
    // and then only a full resync is correct. Pausing writes first (as the FAILOVER command does) keeps one history.
    await m.client().call('CLIENT', 'PAUSE', '10000', 'WRITE');
    await caughtUp(r, m);
    await recorder.waitForOffset(await offsetOf(m));
    await sentinel.client().call('SENTINEL', 'FAILOVER', 'mymaster');
    for (let i = 0; i < 400 && (await r.info('replication')).role !== 'master'; i++) await sleep(25);
    expect((await r.info('replication')).role).toBe('master');
    await p.waitFor(() => handshakeReplies(p).length >= 2, 'redtail to follow the new master', 30_000);
    expect(p.logs().some((l) => l.msg === 'sentinel announced a new master')).toBe(true);
    await finish(p, run, r, recorder);
  });
});

describe('backlog overrun', () => {
  it('falls back to a full resync with a resync event, and keys deleted meanwhile are gone downstream', async () => {
    const master = await server({ config: { 'repl-backlog-size': '16kb' } });
    const c = master.client();
    for (let i = 0; i < 100; i++) await c.set(`keep:${i}`, 'v');
    const run = new FileSinkRun(['--master', master.url()]);
    const p1 = await run.startSynced();
    for (let i = 0; i < 50; i++) await c.set(`gone:${i}`, 'v');
    await p1.waitFor(run.reached(await offsetOf(master)), 'writes');
    expect((await p1.stop('SIGTERM')).code).toBe(0);
    // While redtail is down: delete keys and write far more than the backlog holds.
    for (let i = 0; i < 50; i++) await c.del(`gone:${i}`);
    for (let i = 0; i < 40; i++) await c.del(`keep:${i}`);
    for (let i = 0; i < 200; i++) await c.set(`filler:${i % 10}`, 'x'.repeat(500));
    const p2 = await run.startSynced();
    await p2.waitFor(run.reached(await offsetOf(master)), 'the resync');
    expect((await p2.stop('SIGTERM')).code).toBe(0);
    expect(handshakeReplies(p2)[0]).toMatch(/^\+FULLRESYNC/);
    const events = run.events();
    const resync = events.find((e) => e.op === 'resync');
    expect(resync).toBeDefined();
    expect(resync!.requested).toMatchObject({ replid: events[0]!.source.replid });
    // A consumer that follows the documented contract (docs/events.md: a snapshot-begin with resync=true replaces
    // everything known) ends with exactly the master's keys.
    const state = new Set<string>();
    for (const e of events) {
      if (e.op === 'snapshot-begin' && e.resync) state.clear();
      else if (e.op === 'snapshot' || e.op === 'set') state.add(String(e.key));
      else if (e.op === 'del') state.delete(String(e.key));
    }
    const actual = new Set((await c.keys('*')).map(String));
    expect([...state].sort()).toEqual([...actual].sort());
    expect([...state].some((k) => k.startsWith('gone:'))).toBe(false);
  });
});

describe('aborted snapshot', () => {
  it('retries after a FLUSHALL kills the BGSAVE it was waiting for, and ends with exactly the master', async () => {
    // rdb-key-save-delay (microseconds per key) keeps the save running long enough to be killed mid-way.
    const master = await server({ config: { 'rdb-key-save-delay': '2000' } });
    const c = master.client();
    const pipe = c.pipeline();
    for (let i = 0; i < 2000; i++) pipe.set(`old:${i}`, 'v');
    await pipe.exec();
    const dir = mkdtempSync(join(tmpdir(), 'redtail-abort-'));
    const config = join(dir, 'redtail.json');
    writeFileSync(config, JSON.stringify({ link: { minFullSyncIntervalMs: 500 } }));
    const run = new FileSinkRun(['--master', master.url(), '--config', config]);
    const p = run.start();
    await p.waitFor(() => /Starting BGSAVE for SYNC/.test(master.log()), 'the save for redtail');
    await c.flushall();
    await c.config('SET', 'rdb-key-save-delay', '0');
    for (let i = 0; i < 10; i++) await c.set(`new:${i}`, 'v');
    await p.waitFor(run.reached(await offsetOf(master)), 'the second sync', 30_000);
    expect(master.log()).toMatch(/SYNC failed\. BGSAVE child returned an error/);
    expect(
      p.logs().some((l) => String(l.msg).startsWith('the master closed the link before the snapshot')),
    ).toBe(true);
    const replies = handshakeReplies(p);
    expect(replies).toHaveLength(2);
    expect(replies.every((r) => r.startsWith('+FULLRESYNC'))).toBe(true);
    const events = run.events();
    // The cut-off snapshot's begin is downstream; the next one says it replaces whatever that one delivered.
    const begins = events.filter((e) => e.op === 'snapshot-begin');
    expect(begins.map((e) => [e.resync, e.interrupted])).toEqual([
      [false, undefined],
      [true, true],
    ]);
    const state = new Set<string>();
    for (const e of events) {
      if (e.op === 'snapshot-begin' && e.resync) state.clear();
      else if (e.op === 'snapshot' || e.op === 'set') state.add(String(e.key));
      else if (e.op === 'del') state.delete(String(e.key));
      else if (e.op === 'flush') state.clear();
    }
    expect([...state].sort()).toEqual((await c.keys('*')).map(String).sort());
    expect((await p.stop('SIGTERM')).code).toBe(0);
  });
});

describe('snapshot cut off mid-transfer', () => {
  it('a diskless snapshot dropped half-way is replaced by the next one, keys deleted meanwhile included', async () => {
    // Diskless: keys reach redtail while the child is still writing them, so part of the first snapshot is
    // downstream when the link drops.
    const master = await server({ diskless: true, config: { 'rdb-key-save-delay': '1000' } });
    const c = master.client();
    const pipe = c.pipeline();
    for (let i = 0; i < 3000; i++) pipe.set(`old:${i}`, 'v');
    await pipe.exec();
    const dir = mkdtempSync(join(tmpdir(), 'redtail-cut-'));
    const config = join(dir, 'redtail.json');
    writeFileSync(config, JSON.stringify({ link: { minFullSyncIntervalMs: 500 } }));
    const run = new FileSinkRun(['--master', master.url(), '--config', config]);
    const p = run.start();
    const delivered = () => {
      try {
        return run.events().filter((e) => e.op === 'snapshot');
      } catch {
        return []; // the file does not exist yet
      }
    };
    await p.waitFor(() => delivered().length >= 1000, 'part of the first snapshot');
    await c.call('CLIENT', 'KILL', 'TYPE', 'replica');
    const seen = delivered().map((e) => String(e.key));
    expect(seen.length).toBeLessThan(3000);
    // Delete what the first snapshot delivered: the second snapshot lacks those keys and emits nothing for them.
    for (const k of seen) await c.del(k);
    await c.config('SET', 'rdb-key-save-delay', '0');
    await p.waitFor(run.reached(await offsetOf(master)), 'the second sync', 30_000);
    const events = run.events();
    expect(events.filter((e) => e.op === 'snapshot-begin').map((e) => e.resync)).toEqual([false, true]);
    const state = new Set<string>();
    for (const e of events) {
      if (e.op === 'snapshot-begin' && e.resync) state.clear();
      else if (e.op === 'snapshot' || e.op === 'set') state.add(String(e.key));
      else if (e.op === 'del') state.delete(String(e.key));
    }
    const actual = (await c.keys('*')).map(String).sort();
    expect(actual).toHaveLength(3000 - seen.length);
    expect([...state].sort()).toEqual(actual);
    expect((await p.stop('SIGTERM')).code).toBe(0);
  });
});

describe('output buffer limit', () => {
  it('reports a link the master dropped for slow sinks and recovers with one full sync, not a storm', async () => {
    // Since Redis 7 replicas share the backlog's buffer and the effective hard limit is the larger of the limit and
    // repl-backlog-size; once it is passed the backlog no longer covers the replica, so one full sync must follow.
    const master = await server({
      config: { 'client-output-buffer-limit': 'replica 1mb 0 0', 'repl-backlog-size': '1mb' },
    });
    const dir = mkdtempSync(join(tmpdir(), 'redtail-obuf-'));
    // A small in-process bound, so the stalled consumer's backlog has to wait at the master.
    const config = join(dir, 'redtail.json');
    writeFileSync(config, JSON.stringify({ pipeline: { highWaterEvents: 1000, highWaterBytes: 1_000_000 } }));
    // Without the spool redtail reads at the sinks' pace, which is what lets the master's buffer overflow.
    const p = start([
      '--master',
      master.url(),
      '--checkpoint',
      join(dir, 'cp.json'),
      '--config',
      config,
      '--spool',
      'off',
    ]);
    await p.waitFor(() => p.events.some((e) => e.op === 'snapshot-end'), 'the first sync');
    p.pauseStdout(true);
    const c = master.client();
    const value = 'y'.repeat(1000);
    for (let i = 0; i < 40; i++) {
      const pipe = c.pipeline();
      for (let j = 0; j < 500; j++) pipe.set(`big:${i}:${j}`, value);
      await pipe.exec();
    }
    await sleep(1000);
    p.pauseStdout(false);
    await p.waitFor(() => p.events.filter((e) => e.op === 'snapshot-end').length === 2, 'the resync', 60_000);
    await sleep(500);
    expect(master.log()).toMatch(/scheduled to be closed ASAP for overcoming of output buffer limits/);
    // The diagnosis names the limit the master reported and the fix.
    const diagnosis = p.logs().find((l) => String(l.msg).includes('client-output-buffer-limit'));
    expect(diagnosis?.limit).toBe('replica 1048576 0 0');
    expect(String(diagnosis?.msg)).toMatch(/Enable the spool/);
    const replies = handshakeReplies(p);
    expect(replies).toHaveLength(2);
    expect(replies.every((r) => r.startsWith('+FULLRESYNC'))).toBe(true);
    expect(p.events.filter((e) => e.op === 'resync')).toHaveLength(1);
    // The second snapshot holds every key, so a consumer following the resync contract has them all.
    const snap = p.events.filter((e) => e.op === 'snapshot' && String(e.key).startsWith('big:'));
    expect(new Set(snap.map((e) => e.key)).size).toBe(20_000);
  });
});
