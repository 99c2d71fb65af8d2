import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import type { RedisServer } from '../harness/RedisServer.js';
import type { JsonEvent, RedtailProcess } from '../harness/RedtailProcess.js';
import { useTestScope } from '../harness/TestScope.js';
import {
  decodeSegment,
  RECORD_HEADER,
  readSpool,
  segmentBytes,
  segmentFiles,
  spoolEndOffset,
} from './segments.js';

/*
 * The spool's faults through the real binary and a real redis-server: a kill -9 with 100 MB spooled, segments cut
 * and bit-flipped by hand, a full disk (a small tmpfs) and an unusable spool directory. Every run has two sinks: a
 * file, which must hold every write exactly once, and stdout, whose reading the test pauses to stall the pipeline
 * (stdout cannot be taken back after a crash, so for it the check is "nothing lost").
 */

const scope = useTestScope();
const MiB = 1024 * 1024;
const isRoot = process.getuid?.() === 0;

const offsetOf = async (s: RedisServer) => Number((await s.info('replication')).master_repl_offset);
const statsOf = async (s: RedisServer) => {
  const info = await s.info('stats');
  return { full: Number(info.sync_full), partialOk: Number(info.sync_partial_ok) };
};

/** A tmpfs of `size` (root only), unmounted when the test's scope ends. */
function tmpfs(size: string, ro = false): string {
  const d = mkdtempSync(join(tmpdir(), 'redtail-spool-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}${ro ? ',ro' : ''}`, 'tmpfs', d]);
  scope.defer(() => {
    execFileSync('umount', [d]);
    rmSync(d, { recursive: true, force: true });
  });
  return d;
}

/** SETs of `count` distinct keys `<prefix>:<i>` with values of `size` bytes, pipelined. */
async function writeKeys(c: Redis, prefix: string, count: number, size: number): Promise<void> {
  const pad = 'x'.repeat(size);
  for (let i = 0; i < count; ) {
    const pipe = c.pipeline();
    for (const end = Math.min(count, i + 1000); i < end; i++)
      pipe.set(`${prefix}:${i}`, `${i}:${pad}`.slice(0, size));
    await pipe.exec();
  }
}

/** `count` pipelined SETs of 100-byte values to random keys `key:<n>` from 4 redis-benchmark clients. */
function benchmark(master: RedisServer, count: number): void {
  execFileSync(
    'redis-benchmark',
    [
      '-p',
      String(master.port),
      '-t',
      'set',
      '-n',
      String(count),
      '-r',
      '100000000',
      '-d',
      '100',
      '-P',
      '64',
      '-c',
      '4',
      '-q',
    ],
    { stdio: 'ignore' },
  );
}

async function masterKeys(c: Redis): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await c.scan(cursor, 'COUNT', 10_000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

function handshakes(p: RedtailProcess): { reply: string; requested: string }[] {
  return p
    .logs()
    .filter((l) => l.msg === 'replication handshake done')
    .map((l) => ({ reply: String(l.reply), requested: String(l.requested) }));
}

/** redtail with a file sink and stdout, a spool dir of its own and spool settings from a config file. */
class SpoolRun {
  readonly dir = mkdtempSync(join(tmpdir(), 'redtail-spoolrun-'));
  readonly file = join(this.dir, 'ev.ndjson');
  readonly checkpoint = join(this.dir, 'cp.json');
  readonly spool: string;
  readonly args: string[];

  constructor(
    master: RedisServer,
    spool: Record<string, number>,
    { spoolDir, pipeline }: { spoolDir?: string; pipeline?: Record<string, number> } = {},
  ) {
    this.spool = spoolDir ?? join(this.dir, 'spool');
    const config = join(this.dir, 'redtail.json');
    writeFileSync(config, JSON.stringify({ spool, ...(pipeline ? { pipeline } : {}) }));
    this.args = [
      'run',
      '--master',
      master.url(),
      '--sink',
      `file:${this.file}`,
      '--sink',
      'stdout',
      '--checkpoint',
      this.checkpoint,
      '--spool',
      this.spool,
      '--config',
      config,
    ];
    scope.defer(() => rmSync(this.dir, { recursive: true, force: true }));
  }

  start(): RedtailProcess {
    return scope.redtail(this.args);
  }

  /** The committed offset of a sink: 0 the file, 1 stdout (one checkpoint file each). */
  committed(sink: 0 | 1): number {
    try {
      return JSON.parse(readFileSync(`${this.checkpoint}.${sink}`, 'utf8')).offset;
    } catch {
      return -1;
    }
  }

  /** True once both sinks committed everything up to `offset`. */
  reached(offset: number): () => boolean {
    return () => this.committed(0) >= offset && this.committed(1) >= offset;
  }

  fileEvents(): JsonEvent[] {
    return readFileSync(this.file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as JsonEvent);
  }

  /** The file sink's SET events by key, counted. */
  fileSets(): Map<string, number> {
    return countSets(this.fileEvents());
  }
}

function countSets(events: JsonEvent[]): Map<string, number> {
  const n = new Map<string, number>();
  for (const e of events) if (e.op === 'set') n.set(String(e.key), (n.get(String(e.key)) ?? 0) + 1);
  return n;
}

/** Every key `<prefix>:0..count-1` occurs exactly once (`atLeast`: at least once) and no other key of the prefix. */
function expectKeys(sets: Map<string, number>, prefix: string, count: number, atLeast = false): void {
  const keys = [...sets.keys()].filter((k) => k.startsWith(`${prefix}:`));
  expect(keys.length, `${prefix}: distinct keys`).toBe(count);
  for (let i = 0; i < count; i++) {
    const times = sets.get(`${prefix}:${i}`) ?? 0;
    if (atLeast ? times < 1 : times !== 1) expect(times, `${prefix}:${i}`).toBe(1);
  }
}

/** Waits until the spool holds the master's stream up to `offset` (redtail read it all). */
function spooledTo(run: SpoolRun, offset: number): () => boolean {
  return () => existsSync(run.spool) && spoolEndOffset(run.spool) >= offset;
}

describe('kill -9 with a full spool', () => {
  it('replays 100 MB from the spool on restart, continues with +CONTINUE and the file sink holds every write once', async () => {
    // The master's default 1 MB backlog: only the spool can give the restart what the sinks had not committed.
    const master = await scope.server();
    const c = master.client();
    const run = new SpoolRun(master, { segmentBytes: 8 * MiB });
    const p1 = run.start();
    await p1.waitFor(() => p1.events.some((e) => e.op === 'snapshot-end'), 'the first sync');
    // A redtail that has been streaming for a while: the spool's first segment (the FULLRESYNC) is released.
    await writeKeys(c, 'warm', 20_000, 1000);
    await p1.waitFor(run.reached(await offsetOf(master)), 'the warm-up delivered', 60_000);
    await p1.waitFor(
      () => segmentFiles(run.spool)[0] !== '0000000000000001.seg',
      'the first segment released',
    );

    p1.pauseStdout(true);
    await writeKeys(c, 'big', 105_000, 1000);
    const end = await offsetOf(master);
    await p1.waitFor(spooledTo(run, end), 'the spool to hold everything', 90_000);
    const undelivered = end - run.committed(1);
    expect(undelivered).toBeGreaterThanOrEqual(100_000_000);
    expect(segmentBytes(run.spool)).toBeGreaterThanOrEqual(100 * MiB);
    p1.proc.kill('SIGKILL');
    await p1.exited;
    expect(handshakes(p1).map((h) => h.reply.split(' ')[0])).toEqual(['+FULLRESYNC']);

    const p2 = run.start();
    await p2.waitFor(run.reached(end), 'both sinks to commit everything', 120_000);
    expect((await p2.stop('SIGTERM')).code).toBe(0);

    const logs = p2.logs();
    expect(logs.some((l) => l.msg === 'replaying the spool before continuing from the master')).toBe(true);
    expect(logs.filter((l) => l.msg === 'discarding the spool')).toEqual([]);
    // One handshake, a partial one, from the spool's end: what the sinks lacked came from the disk.
    const hs = handshakes(p2);
    expect(hs).toHaveLength(1);
    expect(hs[0]!.reply).toMatch(/^\+CONTINUE/);
    expect(Number(hs[0]!.requested.split(' ')[1]) - 1).toBeGreaterThanOrEqual(end);
    expect(await statsOf(master)).toMatchObject({ full: 1 });

    const file = run.fileSets();
    expectKeys(file, 'warm', 20_000);
    expectKeys(file, 'big', 105_000);
    expect(await c.dbsize()).toBe(125_000);
    const stdout = countSets([...p1.events, ...p2.events]);
    expectKeys(stdout, 'big', 105_000, true);
  });
});

describe('segments damaged by hand', () => {
  it('recovers a torn tail (warning) and a flipped bit in a middle segment (error naming it), losing nothing', async () => {
    // The master resends what the spool loses: its backlog must still hold it.
    const master = await scope.server({ config: { 'repl-backlog-size': '64mb' } });
    const c = master.client();
    const run = new SpoolRun(master, { segmentBytes: MiB, maxBytes: 64 * MiB });
    const p1 = run.start();
    await p1.waitFor(() => p1.events.some((e) => e.op === 'snapshot-end'), 'the first sync');
    const replid = String(p1.events[0]!.source.replid);
    p1.pauseStdout(true);
    await writeKeys(c, 'a', 6000, 1000);
    await p1.waitFor(spooledTo(run, await offsetOf(master)), 'the spool to hold everything');
    p1.proc.kill('SIGKILL');
    await p1.exited;

    // A crash that lost the end of the last write (power loss): cut inside its last record.
    const files = segmentFiles(run.spool);
    const lastPath = join(run.spool, files.at(-1)!);
    const last = decodeSegment(lastPath).records;
    expect(last.length).toBeGreaterThanOrEqual(2);
    const torn = last.at(-1)!;
    truncateSync(lastPath, torn.at + RECORD_HEADER + Math.floor(torn.length / 2));
    const p2 = run.start();
    p2.pauseStdout(true);
    await p2.waitFor(() => handshakes(p2).length === 1, 'the handshake');
    const warn = p2.logs().find((l) => String(l.msg).includes('torn record'));
    expect(warn?.level).toBe(40);
    expect(warn?.segment).toBe(lastPath);
    expect(handshakes(p2)[0]).toEqual({
      reply: expect.stringMatching(/^\+CONTINUE/),
      requested: `${replid} ${last.at(-2)!.offset + 1}`,
    });

    await writeKeys(c, 'b', 4000, 1000);
    await p2.waitFor(spooledTo(run, await offsetOf(master)), 'the spool to hold everything');
    p2.proc.kill('SIGKILL');
    await p2.exited;

    // A flipped bit in the payload of a record in a middle segment, with whole segments after it.
    const now = segmentFiles(run.spool);
    expect(now.length).toBeGreaterThanOrEqual(6);
    // The spool writes what is pending as one record, so when the writer fell behind one record can fill a whole
    // segment: take the segment nearest the middle that holds at least two (the test damages the second).
    const middle = (now.length - 1) / 2;
    const candidates = now
      .map((name, i) => ({ i, path: join(run.spool, name) }))
      .slice(1, -1)
      .map((s) => ({ ...s, records: decodeSegment(s.path).records }))
      .filter((s) => s.records.length >= 2)
      .sort((a, b) => Math.abs(a.i - middle) - Math.abs(b.i - middle));
    expect(candidates.length).toBeGreaterThan(0);
    const { path: midPath, records: mid } = candidates[0]!;
    const bad = mid[1]!;
    const bytes = readFileSync(midPath);
    bytes[bad.at + RECORD_HEADER + Math.floor(bad.length / 2)]! ^= 0x20;
    writeFileSync(midPath, bytes);
    const p3 = run.start();
    const end = await offsetOf(master);
    await p3.waitFor(run.reached(end), 'both sinks to commit everything', 60_000);
    expect((await p3.stop('SIGTERM')).code).toBe(0);
    const error = p3.logs().find((l) => String(l.msg).includes('corrupt record'));
    expect(error?.level).toBe(50);
    expect(error?.segment).toBe(midPath);
    expect(error?.discardedSegments).toBe(now.length - 1 - now.indexOf(midPath.slice(run.spool.length + 1)));
    expect(handshakes(p3)).toEqual([
      { reply: expect.stringMatching(/^\+CONTINUE/), requested: `${replid} ${mid[0]!.offset + 1}` },
    ]);
    expect(await statsOf(master)).toMatchObject({ full: 1 });

    const file = run.fileSets();
    expectKeys(file, 'a', 6000);
    expectKeys(file, 'b', 4000);
    const stdout = countSets([...p1.events, ...p2.events, ...p3.events]);
    expectKeys(stdout, 'a', 6000, true);
    expectKeys(stdout, 'b', 4000, true);
  });
});

describe('disk full', () => {
  it.skipIf(!isRoot)(
    'logs the full disk naming the path, waits without a resync loop, and delivers everything once room returns (needs root: tmpfs)',
    async () => {
      const master = await scope.server({ config: { 'repl-backlog-size': '64mb' } });
      const c = master.client();
      const mnt = tmpfs('8m');
      const N = 200_000;
      // spool.maxBytes far above the disk: the disk, not the limit, is what runs out.
      // The pipeline may take in all the disk holds, and small values make it slower than the link: the replayer
      // catches up (into memory) after the disk filled, which must not count as room on the disk.
      const run = new SpoolRun(
        master,
        { segmentBytes: MiB, maxBytes: 256 * MiB },
        { spoolDir: join(mnt, 'spool'), pipeline: { highWaterEvents: 1_000_000, highWaterBytes: 512 * MiB } },
      );
      const p = run.start();
      await p.waitFor(() => p.events.some((e) => e.op === 'snapshot-end'), 'the first sync');
      p.pauseStdout(true);
      // redis-benchmark's pipelined clients write faster than the pipeline decodes: the replayer is behind when the
      // disk fills.
      benchmark(master, N);
      const end = await offsetOf(master);
      await p.waitFor(
        () => p.logs().some((l) => String(l.msg).includes('the disk is full')),
        'the disk-full error',
      );
      const full = p.logs().find((l) => String(l.msg).includes('the disk is full'))!;
      expect(full.level).toBe(50);
      expect(full.dir).toBe(run.spool);
      expect(String(full.err)).toContain(run.spool);
      expect(String(full.err)).toMatch(/ENOSPC/);
      // Stalled: the link waits for a released segment instead of reconnecting, which would fill the disk again at
      // once (a PSYNC and an error line per backoff turn: 100 ms, 200 ms, ... so a loop shows within 2.5 s).
      const diskFullErrors = () => p.logs().filter((l) => String(l.msg).includes('the disk is full')).length;
      const stalled = handshakes(p).length;
      await sleep(2500);
      expect(p.proc.exitCode).toBeNull();
      expect(handshakes(p).length).toBe(stalled);
      expect(diskFullErrors()).toBe(1);
      expect(master.log()).not.toMatch(/overcoming of output buffer limits/);

      p.pauseStdout(false);
      await p.waitFor(run.reached(end), 'both sinks to commit everything', 90_000);
      expect((await p.stop('SIGTERM')).code).toBe(0);
      const hs = handshakes(p);
      expect(hs[0]!.reply).toMatch(/^\+FULLRESYNC/);
      expect(hs.slice(1).every((h) => h.reply.startsWith('+CONTINUE'))).toBe(true);
      expect(await statsOf(master)).toMatchObject({ full: 1 });
      expect(p.logs().some((l) => l.msg === 'spool has room again: reading the master')).toBe(true);
      // The failed writes left no partial record behind (readSpool throws at one).
      expect(readSpool(run.spool).length).toBeGreaterThan(0);
      // Every benchmark SET once: as many as were sent, none at the same offset twice, and exactly the master's keys.
      const sets = run.fileEvents().filter((e) => e.op === 'set');
      expect(sets).toHaveLength(N);
      expect(new Set(sets.map((e) => e.source.offset)).size).toBe(N);
      const keys = new Set(sets.map((e) => String(e.key)));
      expect(keys.size).toBe(await c.dbsize());
      expect(keys).toEqual(new Set(await masterKeys(c)));
      expect(p.events.filter((e) => e.op === 'set')).toHaveLength(N);
      console.log(
        `disk full: ${hs.length} handshakes, ${diskFullErrors()} disk-full errors until everything was delivered`,
      );
    },
  );
});

describe('a snapshot larger than the free disk', () => {
  it.skipIf(!isRoot)(
    'is loaded with one full sync: the link waits for replayed snapshot segments to go, never restarting the download (needs root: tmpfs)',
    async () => {
      const master = await scope.server({ config: { 'repl-backlog-size': '64mb' } });
      const c = master.client();
      const N = 300_000;
      const value = 'v'.repeat(100);
      for (let i = 0; i < N; i += 10_000) {
        const pipe = c.pipeline();
        for (let j = i; j < i + 10_000; j++) pipe.set(`big:${j}`, value);
        await pipe.exec();
      }
      await c.config('SET', 'rdbcompression', 'no');
      const mnt = tmpfs('8m');
      // The RDB (~35 MB uncompressed) is four times the disk; spool.maxBytes is far above it, so the disk runs out.
      const run = new SpoolRun(
        master,
        { segmentBytes: MiB, maxBytes: 256 * MiB },
        { spoolDir: join(mnt, 'spool') },
      );
      const p = run.start();
      await p.waitFor(() => p.events.some((e) => e.op === 'snapshot-end'), 'the snapshot to load', 120_000);
      expect(p.logs().some((l) => String(l.msg).includes('the disk is full'))).toBe(true);
      expect(p.logs().some((l) => String(l.msg).includes('replayed snapshot segments deleted early'))).toBe(
        true,
      );
      await c.set('after', 'the snapshot');
      await p.waitFor(run.reached(await offsetOf(master)), 'the write after the snapshot', 60_000);
      expect((await p.stop('SIGTERM')).code).toBe(0);
      // One download, never restarted: before, a full disk ended the link and the next sync began the RDB again.
      expect(handshakes(p).map((h) => h.reply.split(' ')[0])).toEqual(['+FULLRESYNC']);
      expect(await statsOf(master)).toMatchObject({ full: 1 });
      const keys = run
        .fileEvents()
        .filter((e) => e.op === 'snapshot')
        .map((e) => String(e.key));
      expect(keys).toHaveLength(N);
      expect(new Set(keys).size).toBe(N);
      expect(run.fileEvents().some((e) => e.op === 'set' && e.key === 'after')).toBe(true);
    },
  );
});

describe('unusable spool directory', () => {
  async function expectExit(master: RedisServer, spool: string, hint: RegExp): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), 'redtail-spoolbad-'));
    scope.defer(() => rmSync(dir, { recursive: true, force: true }));
    const p = scope.redtail([
      'run',
      '--master',
      master.url(),
      '--sink',
      `file:${join(dir, 'ev.ndjson')}`,
      '--checkpoint',
      join(dir, 'cp.json'),
      '--spool',
      spool,
    ]);
    const { code } = await p.exited;
    expect(code).toBe(1);
    const lines = p.stderr.split('\n').filter((l) => l.startsWith('redtail:'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(spool);
    expect(lines[0]).toMatch(hint);
  }

  it('a path under a regular file: exit 1 with one line naming it', async () => {
    const master = await scope.server();
    const dir = mkdtempSync(join(tmpdir(), 'redtail-spoolbad-'));
    scope.defer(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'plain'), 'x');
    await expectExit(master, join(dir, 'plain', 'spool'), /writable|spool\.dir/);
  });

  it.skipIf(!isRoot)(
    'a read-only file system: exit 1 with one line naming it (needs root: tmpfs)',
    async () => {
      const master = await scope.server();
      await expectExit(master, tmpfs('1m', true), /read-only.*spool\.dir/);
    },
  );
});
