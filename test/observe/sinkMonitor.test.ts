import { describe, expect, it } from 'vitest';
import type { ChangeEvent, ReplicationPosition } from '../../src/events/ChangeEvent.js';
import { silentLogger } from '../../src/observe/logger.js';
import { Metrics } from '../../src/observe/Metrics.js';
import { SinkMonitor } from '../../src/observe/SinkMonitor.js';
import { Pipeline } from '../../src/pipeline/Pipeline.js';
import type { EventBatch, Sink } from '../../src/pipeline/Sink.js';

/** A sink that holds every write until released, and records how many were in flight at once. */
function heldSink(pipelined: boolean) {
  const held: Array<() => void> = [];
  let peak = 0;
  const sink: Sink = {
    name: 'held',
    pipelined,
    open: async () => null,
    close: async () => {},
    write(_batch: EventBatch) {
      return new Promise<void>((resolve) => {
        held.push(resolve);
        peak = Math.max(peak, held.length);
      });
    },
  };
  return { sink, held, peak: () => peak };
}

function events(from: number, n: number): ChangeEvent[] {
  return Array.from(
    { length: n },
    (_, i) =>
      ({
        v: 1,
        op: 'del',
        db: 0,
        key: Buffer.from(`k${from + i}`),
        source: { replid: 'r'.repeat(40), offset: from + i, seq: 0, snapshot: false },
        ts: Date.now(),
      }) as unknown as ChangeEvent,
  );
}

describe('SinkMonitor', () => {
  it.each([true, false])(
    'keeps the sink pipelined=%s for the pipeline (batches in flight at once)',
    async (p) => {
      const monitor = new SinkMonitor(new Metrics({ processMetrics: false }), 60_000);
      const { sink, held, peak } = heldSink(p);
      const wrapped = monitor.wrap(sink);
      expect(wrapped.pipelined).toBe(p);
      const pipeline = new Pipeline([wrapped], {
        logger: silentLogger(),
        maxBatchEvents: 10,
        maxInFlightBatches: 4,
      });
      await pipeline.open();
      const pos = (o: number): ReplicationPosition => ({ replid: 'r'.repeat(40), offset: o, db: 0 });
      for (let b = 0; b < 6; b++) pipeline.push(events(b * 10, 10), pos(b * 10 + 9));
      let done = false;
      const flushed = pipeline.flush().then(() => {
        done = true;
      });
      while (!done) {
        await new Promise((r) => setTimeout(r, 5));
        held.shift()?.();
      }
      await flushed;
      expect(peak()).toBe(p ? 4 : 1);
    },
  );

  it('measures a stall from the oldest write still in flight when several are', async () => {
    const monitor = new SinkMonitor(new Metrics({ processMetrics: false }), 200);
    const { sink, held } = heldSink(true);
    const wrapped = monitor.wrap(sink);
    const batch = { events: [], checkpoint: null };
    const first = wrapped.write(batch);
    const second = wrapped.write(batch);
    await new Promise((r) => setTimeout(r, 300));
    expect(monitor.failures()).toHaveLength(1);
    // The first completes; the second has been in flight as long and is still stuck.
    held.shift()?.();
    await first;
    expect(monitor.failures()[0]).toMatch(/has been writing one batch/);
    held.shift()?.();
    await second;
    expect(monitor.failures()).toEqual([]);
  });
});
