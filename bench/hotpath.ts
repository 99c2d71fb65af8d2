import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { setImmediate as turn } from 'node:timers/promises';
import { getHeapStatistics } from 'node:v8';
import { NullSink } from '../sinks/null/NullSink.js';
import { NdjsonSink } from '../sinks/stdout/NdjsonSink.js';
import { FileCheckpointStore } from '../src/checkpoint/FileCheckpointStore.js';
import { normalizeCommand } from '../src/commands/normalize.js';
import type { ChangeEvent } from '../src/events/ChangeEvent.js';
import { NdjsonWriter } from '../src/events/NdjsonEncoder.js';
import { silentLogger } from '../src/observe/logger.js';
import { Metrics } from '../src/observe/Metrics.js';
import { SinkMonitor } from '../src/observe/SinkMonitor.js';
import { Pipeline } from '../src/pipeline/Pipeline.js';
import { Replicator } from '../src/pipeline/Replicator.js';
import { skipSnapshot } from '../src/pipeline/SnapshotDecoder.js';
import type { CommandArgs } from '../src/resp/CommandArgs.js';
import { CommandFramer } from '../src/resp/CommandFramer.js';
import { RespReader } from '../src/resp/RespReader.js';

/**
 * `node dist/bench/hotpath.js [N]`: the stream path's CPU work in one process, without sockets, spool or sinks, to
 * measure changes to framing, normalization and encoding between full `bench:stream` runs (which share the machine
 * with a master, a replica and redis-benchmark). The stream imitates what bench:stream's master propagates:
 * SET/HSET/LPUSH/SADD/ZADD/INCR with 16-byte values, SET/HSET/LPUSH with 1 KB values, and PEXPIREAT (EXPIRE
 * rewritten), in the proportions of bench:stream's burst. Prints ns per command for each stage and the whole, and
 * the CPU seconds per million commands of the process (user + system), with GC time.
 */

const N = Number(process.argv[2] ?? 600_000);
const ROUNDS = Number(process.argv[3] ?? 5);
/** Only the stages whose name contains this (e.g. `normalize`), to repeat one of them under a noisy machine. */
const ONLY = process.argv[4] ?? '';

function resp(args: string[]): string {
  let s = `*${args.length}\r\n`;
  for (const a of args) s += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
  return s;
}

function stream(n: number): Buffer {
  const parts: string[] = [resp(['SELECT', '0'])];
  const small = 'x'.repeat(16);
  const big = 'x'.repeat(1024);
  const r = () => String(Math.floor(Math.random() * 100_000)).padStart(12, '0');
  const perTest = Math.floor(n / 8.5);
  for (let i = 0; i < perTest; i++) {
    parts.push(resp(['SET', `key:${r()}`, small]));
    parts.push(resp(['HSET', `myhash`, `element:${r()}`, small]));
    parts.push(resp(['LPUSH', 'mylist', small]));
    parts.push(resp(['SADD', 'myset', `element:${r()}`]));
    parts.push(resp(['ZADD', 'myzset', String(Math.floor(Math.random() * 100)), `element:${r()}`]));
    parts.push(resp(['INCR', `counter:${r()}`]));
    parts.push(resp(['PEXPIREAT', `key:${r()}`, String(1_800_000_000_000 + i)]));
    if (i % 2 === 0) parts.push(resp(['PEXPIREAT', `key:${r()}`, String(1_800_000_000_000 + i)]));
    if (i % 10 === 0) {
      parts.push(resp(['SET', `key:${r()}`, big]));
      parts.push(resp(['HSET', `myhash`, `element:${r()}`, big]));
      parts.push(resp(['LPUSH', 'mylist', big]));
    }
  }
  return Buffer.from(parts.join(''), 'latin1');
}

function cpuS(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

const CHUNK = 64 * 1024;

function frame(data: Buffer): number {
  let n = 0;
  const f = new CommandFramer({ commands: () => n++, getAck: () => {} }, 0);
  for (let at = 0; at < data.length; at += CHUNK) f.feed(data.subarray(at, at + CHUNK));
  return n;
}

function normalizeAll(data: Buffer, encode: boolean): { commands: number; events: number; bytes: number } {
  let commands = 0;
  let events = 0;
  let bytes = 0;
  let batch: ChangeEvent[] = [];
  const w = new NdjsonWriter();
  const flush = () => {
    if (encode) {
      w.reset();
      for (const e of batch) w.event(e);
      bytes += w.length;
    }
    batch = [];
  };
  const reader = new RespReader(
    {
      lazy: (args: CommandArgs, end: number) => {
        commands++;
        const out = normalizeCommand(args, { db: 0, replid: 'a'.repeat(40), offset: end, ts: Date.now() });
        for (const e of out) batch.push(e);
        events += out.length;
        if (batch.length >= 2000) flush();
      },
    },
    0,
  );
  for (let at = 0; at < data.length; at += CHUNK) reader.feed(data.subarray(at, at + CHUNK));
  flush();
  return { commands, events, bytes };
}

/**
 * What `redtail run` does after the spool: the replicator frames and normalizes, the pipeline batches, the sink (behind
 * the SinkMonitor, as in `run`) writes; fed 64 KB at a time like the spool replayer, which stops while the pipeline
 * holds back and yields to the event loop every 20 ms.
 */
async function replicate(data: Buffer, sinkKind: 'null' | 'file'): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'redtail-hotpath-'));
  const logger = silentLogger();
  const sink =
    sinkKind === 'null'
      ? new NullSink()
      : new NdjsonSink({
          name: 'file',
          path: join(dir, 'events.ndjson'),
          checkpoints: new FileCheckpointStore(join(dir, 'checkpoint.json')),
        });
  let paused = false;
  let resume: (() => void) | null = null;
  const pipeline = new Pipeline([new SinkMonitor(new Metrics(), 60_000).wrap(sink)], {
    logger,
    maxInFlightBatches: 16,
    onBackpressure: (p) => {
      paused = p;
      if (!p) resume?.();
    },
  });
  await pipeline.open();
  const replicator = new Replicator({
    pipeline,
    normalize: normalizeCommand,
    snapshot: skipSnapshot,
    logger,
    start: null,
  });
  replicator.fullResync('a'.repeat(40), 0);
  replicator.snapshotEnd();
  let until = performance.now() + 20;
  for (let at = 0; at < data.length; at += CHUNK) {
    replicator.commands(data.subarray(at, at + CHUNK), at + CHUNK);
    if (paused) await new Promise<void>((r) => (resume = r));
    else if (performance.now() > until) {
      await turn();
      until = performance.now() + 20;
    }
  }
  await pipeline.close();
  rmSync(dir, { recursive: true, force: true });
}

let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });

async function time<T>(what: string, commands: number, f: () => T | Promise<T>): Promise<T | undefined> {
  if (!what.includes(ONLY)) return undefined;
  const c0 = cpuS();
  const gc0 = gcMs;
  // Bytes allocated on the JS heap: what the GC has to scavenge, per command.
  const a0 = getHeapStatistics().total_allocated_bytes;
  const t0 = performance.now();
  const r = await f();
  const ms = performance.now() - t0;
  const cpu = cpuS() - c0;
  const alloc = (getHeapStatistics().total_allocated_bytes - a0) / commands;
  process.stdout.write(
    `${what.padEnd(30)} ${((ms * 1e6) / commands).toFixed(0).padStart(5)} ns/command  ${(cpu / (commands / 1e6)).toFixed(2)} CPU s/M  GC ${((100 * (gcMs - gc0)) / ms).toFixed(0)} %  ${alloc.toFixed(0)} B/command allocated\n`,
  );
  return r;
}

const data = stream(N);
const { commands } = normalizeAll(data, false);
process.stdout.write(`${commands} commands, ${(data.length / 1e6).toFixed(1)} MB of stream\n`);
for (let round = 0; round < ROUNDS; round++) {
  process.stdout.write(`round ${round + 1}\n`);
  await time('frame (link side)', commands, () => frame(data));
  await time('read + normalize', commands, () => normalizeAll(data, false));
  await time('read + normalize + encode', commands, () => normalizeAll(data, true));
  await time('replicator + pipeline, null', commands, () => replicate(data, 'null'));
  await time('replicator + pipeline, file', commands, () => replicate(data, 'file'));
}
