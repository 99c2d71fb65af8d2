import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { ChangeEvent, ReplicationPosition } from '../../src/events/ChangeEvent.js';
import { silentLogger } from '../../src/observe/logger.js';
import { Pipeline } from '../../src/pipeline/Pipeline.js';
import type { EventBatch, Sink } from '../../src/pipeline/Sink.js';

/** An in-memory sink whose writes complete when the test says so. */
class RecordingSink implements Sink {
  readonly batches: EventBatch[] = [];
  private release: (() => void) | null = null;
  hold = false;
  fail: Error | null = null;

  constructor(
    readonly name: string,
    private readonly start: ReplicationPosition | null = null,
  ) {}

  async open(): Promise<ReplicationPosition | null> {
    return this.start;
  }

  async write(batch: EventBatch): Promise<void> {
    if (this.fail) throw this.fail;
    this.batches.push(batch);
    if (this.hold) await new Promise<void>((r) => (this.release = r));
  }

  unblock(): void {
    this.hold = false;
    this.release?.();
    this.release = null;
  }

  async close(): Promise<void> {}
}

const pos = (offset: number): ReplicationPosition => ({ replid: 'r', offset, db: 0 });
const ev = (offset: number, seq = 0): ChangeEvent =>
  ({
    v: 1,
    op: 'set',
    db: 0,
    key: Buffer.from(`k${offset}`),
    source: { replid: 'r', offset, seq, snapshot: false },
    ts: 0,
  }) as ChangeEvent;

/** A sink that takes several batches at once and completes each when the test says so, in any order. */
class PipelinedSink implements Sink {
  readonly name = 'pipelined';
  readonly pipelined = true;
  readonly batches: EventBatch[] = [];
  readonly releases: Array<() => void> = [];

  async open(): Promise<ReplicationPosition | null> {
    return null;
  }

  write(batch: EventBatch): Promise<void> {
    this.batches.push(batch);
    return new Promise<void>((r) => this.releases.push(r));
  }

  async close(): Promise<void> {}
}

describe('Pipeline', () => {
  it('hands a pipelined sink several batches at once, yet moves the durable position only in order', async () => {
    const sink = new PipelinedSink();
    const durable: number[] = [];
    const p = new Pipeline([sink], {
      logger: silentLogger(),
      maxBatchEvents: 2,
      lingerMs: 1,
      maxInFlightBatches: 3,
      onDurable: (at) => durable.push(at.offset),
    });
    await p.open();
    for (let o = 1; o <= 10; o++) p.push([ev(o)], pos(o));
    await sleep(20);
    // Three batches out before any completed; the rest wait for room.
    expect(sink.batches).toHaveLength(3);
    // The second completes first: nothing is durable until the first has completed too.
    sink.releases[1]!();
    await sleep(5);
    expect(durable).toEqual([]);
    expect(p.durableOffset).toBe(0);
    sink.releases[0]!();
    await sleep(5);
    expect(durable).toEqual([sink.batches[0]!.checkpoint!.offset, sink.batches[1]!.checkpoint!.offset]);
    // Room for two more: handed out at once.
    expect(sink.batches).toHaveLength(5);
    const flushed = p.flush();
    const releaseAll = setInterval(() => {
      for (const r of sink.releases.splice(0)) r();
    }, 2);
    await flushed;
    clearInterval(releaseAll);
    expect(p.durableOffset).toBe(10);
    expect(sink.batches.flatMap((b) => b.events).map((e) => e.source.offset)).toEqual(
      Array.from({ length: 10 }, (_, i) => i + 1),
    );
  });

  it('stays paused while a batch of many bytes is in flight, though batches before it are done (issue 16)', async () => {
    const sink = new PipelinedSink();
    const signals: boolean[] = [];
    const MB = 1024 * 1024;
    const p = new Pipeline([sink], {
      logger: silentLogger(),
      maxBatchEvents: 1,
      lingerMs: 1,
      maxInFlightBatches: 4,
      highWaterBytes: 64 * MB,
      onBackpressure: (paused) => signals.push(paused),
    });
    await p.open();
    p.push([ev(1)], pos(1), 100);
    // A huge value's command: over the high-water mark by itself.
    p.push([ev(2)], pos(2), 500 * MB);
    await sleep(10);
    expect(sink.batches).toHaveLength(2);
    expect(signals).toEqual([true]);
    // The small batch before it is done; the huge one is still being written: reading must not resume yet.
    sink.releases[0]!();
    await sleep(5);
    expect(signals).toEqual([true]);
    sink.releases[1]!();
    await sleep(5);
    expect(signals).toEqual([true, false]);
    await p.flush();
  });

  it('bounds batches by maxBatchEvents, cutting only between pushes, each with the last position pushed', async () => {
    const sink = new RecordingSink('a');
    sink.hold = true;
    const p = new Pipeline([sink], { logger: silentLogger(), maxBatchEvents: 10, lingerMs: 1 });
    await p.open();
    p.push([ev(1)], pos(1));
    await sleep(10);
    // While the first batch is held, 100 single events and one 25-event "transaction" queue up.
    for (let o = 2; o <= 101; o++) p.push([ev(o)], pos(o));
    p.push(
      Array.from({ length: 25 }, (_, i) => ev(102, i)),
      pos(102),
    );
    p.push([], pos(110));
    sink.unblock();
    await p.flush();
    // A batch takes pushes while it holds fewer than 10 events, so only the one that took the 25-event push
    // may pass 10.
    for (const b of sink.batches) {
      const hasTransaction = b.events.some((e) => e.source.offset === 102);
      expect(b.events.length).toBeLessThanOrEqual(hasTransaction ? 9 + 25 : 10);
    }
    expect(sink.batches.flatMap((b) => b.events).map((e) => `${e.source.offset}:${e.source.seq}`)).toEqual([
      ...Array.from({ length: 101 }, (_, i) => `${i + 1}:0`),
      ...Array.from({ length: 25 }, (_, i) => `102:${i}`),
    ]);
    // The transaction stays whole in one batch.
    const txBatches = sink.batches.filter((b) => b.events.some((e) => e.source.offset === 102));
    expect(txBatches).toHaveLength(1);
    for (const b of sink.batches) {
      const last = b.events[b.events.length - 1];
      if (last) expect(b.checkpoint!.offset).toBeGreaterThanOrEqual(last.source.offset);
    }
    expect(sink.batches[sink.batches.length - 1]!.checkpoint).toEqual(pos(110));
    expect(p.durableOffset).toBe(110);
  });

  it('resumes from the lowest sink checkpoint and lets each sink skip what it already has', async () => {
    const behind = new RecordingSink('behind', pos(5));
    const ahead = new RecordingSink('ahead', pos(8));
    const p = new Pipeline([behind, ahead], { logger: silentLogger(), lingerMs: 1 });
    expect(await p.open()).toEqual(pos(5));
    for (let o = 6; o <= 10; o++) p.push([ev(o)], pos(o));
    await p.flush();
    expect(behind.batches.flatMap((b) => b.events).map((e) => e.source.offset)).toEqual([6, 7, 8, 9, 10]);
    expect(ahead.batches.flatMap((b) => b.events).map((e) => e.source.offset)).toEqual([9, 10]);
  });

  it('needs a full resync when any sink has no checkpoint', async () => {
    const p = new Pipeline([new RecordingSink('a', pos(5)), new RecordingSink('b', null)], {
      logger: silentLogger(),
    });
    expect(await p.open()).toBeNull();
  });

  it('asks the link to pause above the high-water mark and to resume once drained', async () => {
    const sink = new RecordingSink('a');
    sink.hold = true;
    const signals: boolean[] = [];
    const p = new Pipeline([sink], {
      logger: silentLogger(),
      maxBatchEvents: 5,
      lingerMs: 1,
      highWaterEvents: 20,
      onBackpressure: (paused) => signals.push(paused),
    });
    await p.open();
    for (let o = 1; o <= 30; o++) p.push([ev(o)], pos(o));
    expect(signals).toEqual([true]);
    sink.unblock();
    await p.flush();
    expect(signals).toEqual([true, false]);
  });

  it('stops at a sink failure without writing or acknowledging anything after it', async () => {
    const sink = new RecordingSink('a');
    const errors: Error[] = [];
    const p = new Pipeline([sink], { logger: silentLogger(), lingerMs: 1, onError: (e) => errors.push(e) });
    await p.open();
    p.push([ev(1)], pos(1));
    await p.flush();
    sink.fail = new Error('disk full');
    p.push([ev(2)], pos(2));
    await expect(p.flush()).rejects.toThrow('disk full');
    expect(errors.map((e) => e.message)).toEqual(['disk full']);
    expect(p.durableOffset).toBe(1);
    expect(() => p.push([ev(3)], pos(3))).toThrow('disk full');
  });
});
