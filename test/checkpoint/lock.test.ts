import { mkdtempSync, readFileSync, realpathSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { lockFileOf } from '../../src/checkpoint/StateLock.js';
import { schemaProblem } from '../harness/eventSchema.js';
import { expectedFrom, fingerprint } from '../harness/expectedEvents.js';
import type { RedisServer } from '../harness/RedisServer.js';
import type { JsonEvent, RedtailProcess } from '../harness/RedtailProcess.js';
import type { TappedCommand } from '../harness/ReplicationTap.js';
import { useTestScope } from '../harness/TestScope.js';
import { Workload } from '../harness/Workload.js';

/**
 * Issue 17's acceptance: two `redtail run` on one checkpoint and file never both write. The real binary, a real
 * redis-server master, and an independent recording of its replication stream (ReplicationTap) to compare with.
 */

const scope = useTestScope();
const offsetOf = async (s: RedisServer) => Number((await s.info('replication')).master_repl_offset);
/** How many replicas ever asked this master for a sync (the master logs each one). */
const syncRequests = (s: RedisServer) => s.log().match(/asks for synchronization/g)?.length ?? 0;

function handshakeReplies(p: RedtailProcess): string[] {
  return p
    .logs()
    .filter((l) => l.msg === 'replication handshake done')
    .map((l) => String(l.reply));
}

/** Two processes' view of one file sink and checkpoint in a temp dir of their own. */
class SharedState {
  readonly dir = realpathSync(mkdtempSync(join(tmpdir(), 'redtail-lock-')));
  readonly file = join(this.dir, 'events.ndjson');
  readonly checkpoint = join(this.dir, 'cp.json');

  constructor(readonly master: RedisServer) {}

  start(extra: string[] = []): RedtailProcess {
    return scope.redtail([
      'run',
      '--master',
      this.master.url(),
      '--sink',
      `file:${this.file}`,
      '--checkpoint',
      this.checkpoint,
      '--log-level',
      'info',
      ...extra,
    ]);
  }

  /** Starts redtail and waits until it has a resumable position (its first sync is in the file). */
  async startSynced(): Promise<RedtailProcess> {
    const p = this.start();
    await p.waitFor(() => this.position() !== '', 'the first sync');
    return p;
  }

  /** The checkpoint's replid ('' before the first sync completed). */
  position(): string {
    try {
      return JSON.parse(readFileSync(this.checkpoint, 'utf8')).replid;
    } catch {
      return '';
    }
  }

  reached(offset: number): () => boolean {
    return () => {
      try {
        return JSON.parse(readFileSync(this.checkpoint, 'utf8')).offset >= offset;
      } catch {
        return false;
      }
    };
  }

  /** The bytes the sink owns, to show a refused process changed nothing. */
  bytes(): string {
    return readFileSync(this.file, 'latin1') + readFileSync(this.checkpoint, 'latin1');
  }

  events(): JsonEvent[] {
    return readFileSync(this.file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const e = JSON.parse(l) as JsonEvent;
        const problem = schemaProblem(e);
        if (problem) throw new Error(`event outside config/event.schema.json: ${problem}`);
        return e;
      });
  }

  /** The file holds one snapshot and then exactly the recorded stream, every event once. */
  expectExactlyOnce(recorded: TappedCommand[]): JsonEvent[] {
    const events = this.events();
    const begins = events.filter((e) => e.op === 'snapshot-begin');
    expect(begins).toHaveLength(1);
    const stream = events.filter((e) => !e.source.snapshot);
    expect(stream.map(fingerprint)).toEqual(expectedFrom(recorded, begins[0]!.source.offset));
    const positions = stream.map((e) => `${e.source.offset}/${e.source.seq}`);
    expect(new Set(positions).size).toBe(positions.length);
    return stream;
  }
}

/** The exact line a refused second process ends with, naming the path and the holder. */
function refusal(path: string, holder: RedtailProcess): RegExp {
  const escaped = path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  return new RegExp(
    `^redtail: ${escaped} is in use by another redtail: pid ${holder.pid} on host ${hostname()} ` +
      `\\(started \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\) holds ${escaped}\\.lock; stop that one first, or start ` +
      'this one with --wait-for-lock to take over when it exits$',
    'm',
  );
}

describe('two redtails on one checkpoint and file', () => {
  it('the second exits 1 naming the path and the holder before writing anything; every event is in the file once', async () => {
    const master = await scope.server();
    const recorder = await scope.tap(master);
    const state = new SharedState(master);
    const first = await state.startSynced();
    const before = state.bytes();

    const second = state.start();
    const { code } = await second.exited;
    expect(code).toBe(1);
    expect(second.stderr).toMatch(refusal(state.checkpoint, first));
    expect(second.logs().some((l) => l.msg === 'starting replication')).toBe(false);
    expect(state.bytes()).toBe(before);
    expect(syncRequests(master)).toBe(2); // the recorder and the first redtail

    const c = master.client();
    for (let i = 0; i < 200; i++) await c.set(`user:${i}`, `v${i}`);
    const end = await offsetOf(master);
    await first.waitFor(state.reached(end), 'the 200 writes');
    expect((await first.stop('SIGTERM')).code).toBe(0);
    await recorder.waitForOffset(end);
    const stream = state.expectExactlyOnce(recorder.drain());
    const sets = stream.filter((e) => e.op === 'set').map((e) => e.key);
    expect(sets).toEqual(Array.from({ length: 200 }, (_, i) => `user:${i}`));
  });

  it('after kill -9 of the first, a new one starts at once and continues exactly once', async () => {
    const master = await scope.server({ config: { 'repl-backlog-size': '16mb' } });
    const recorder = await scope.tap(master);
    const state = new SharedState(master);
    const workload = new Workload(master.client(), 17);
    workload.start();
    scope.defer(() => workload.stop());
    const first = await state.startSynced();
    await sleep(500);
    first.proc.kill('SIGKILL');
    await first.exited;

    const next = state.start();
    await next.waitFor(() => handshakeReplies(next).length > 0, 'the handshake after kill -9');
    expect(handshakeReplies(next)[0]).toMatch(/^\+CONTINUE/);
    expect(next.logs().find((l) => l.msg === 'holding the locks of the local state')).toMatchObject({
      waited: false,
    });
    await sleep(500);
    await workload.stop();
    expect(workload.commands).toBeGreaterThan(100);
    const end = await offsetOf(master);
    await next.waitFor(state.reached(end), 'the rest of the workload');
    expect((await next.stop('SIGTERM')).code).toBe(0);
    await recorder.waitForOffset(end);
    state.expectExactlyOnce(recorder.drain());
  });

  it('with --wait-for-lock the second waits, starts when the first exits after SIGTERM, and continues exactly once', async () => {
    const master = await scope.server({ config: { 'repl-backlog-size': '16mb' } });
    const recorder = await scope.tap(master);
    const state = new SharedState(master);
    const workload = new Workload(master.client(), 23);
    workload.start();
    scope.defer(() => workload.stop());
    const first = await state.startSynced();

    const second = state.start(['--wait-for-lock']);
    const waiting = () => second.logs().filter((l) => String(l.msg).startsWith('waiting for pid'));
    await second.waitFor(() => waiting().length > 0, 'the waiting log line');
    expect(waiting()[0]).toMatchObject({
      level: 40,
      path: state.checkpoint,
      holder: { pid: first.pid, host: hostname() },
    });
    await sleep(700);
    // Still waiting: it has not asked the master for anything.
    expect(handshakeReplies(second)).toEqual([]);
    expect(syncRequests(master)).toBe(2); // the recorder and the first redtail

    expect((await first.stop('SIGTERM')).code).toBe(0);
    await second.waitFor(() => handshakeReplies(second).length > 0, 'the handshake after the first exited');
    expect(handshakeReplies(second)[0]).toMatch(/^\+CONTINUE/);
    expect(waiting()).toHaveLength(1);
    await sleep(500);
    await workload.stop();
    const end = await offsetOf(master);
    await second.waitFor(state.reached(end), 'the rest of the workload');
    expect((await second.stop('SIGTERM')).code).toBe(0);
    await recorder.waitForOffset(end);
    state.expectExactlyOnce(recorder.drain());
  });

  it('a stale lock record naming a live, unrelated process (PID reuse) does not block the start', async () => {
    const master = await scope.server();
    const state = new SharedState(master);
    for (const path of [state.checkpoint, state.file]) {
      const db = new DatabaseSync(lockFileOf(path));
      db.exec('CREATE TABLE holder (pid INTEGER, host TEXT, started_at TEXT, boot_id TEXT)');
      db.prepare('INSERT INTO holder VALUES (?, ?, ?, ?)').run(
        process.pid,
        hostname(),
        '2001-01-01T00:00:00.000Z',
        'another-boot',
      );
      db.close();
    }
    const p = await state.startSynced();
    expect(handshakeReplies(p)[0]).toMatch(/^\+FULLRESYNC/);
    expect((await p.stop('SIGTERM')).code).toBe(0);
  });

  it('a waiting process stopped with SIGTERM exits 0 without touching anything', async () => {
    const master = await scope.server();
    const state = new SharedState(master);
    const first = await state.startSynced();
    const before = state.bytes();
    const second = state.start(['--wait-for-lock']);
    await second.waitFor(
      () => second.logs().some((l) => String(l.msg).startsWith('waiting for pid')),
      'the waiting log line',
    );
    expect((await second.stop('SIGTERM')).code).toBe(0);
    expect(handshakeReplies(second)).toEqual([]);
    expect(state.bytes()).toBe(before);
    expect((await first.stop('SIGTERM')).code).toBe(0);
  });
});
