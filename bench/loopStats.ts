import { monitorEventLoopDelay, PerformanceObserver, performance } from 'node:perf_hooks';

/**
 * Preloaded into the redtail process by `bench:stream` when REDTAIL_BENCH_PROFILE is set (`node --import`): at exit
 * it prints one JSON line to stderr with the event-loop delay, the event-loop utilisation and the time spent in
 * garbage collection, so the profile notes can say how much of the run was idle, blocked or collecting.
 */
const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
const gc = { count: 0, ms: 0, byKind: {} as Record<string, number> };
const KINDS: Record<number, string> = {
  1: 'scavenge',
  2: 'mark-sweep-compact',
  4: 'incremental',
  8: 'weak-cb',
};
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gc.count++;
    gc.ms += e.duration;
    const kind = KINDS[(e as { detail?: { kind?: number } }).detail?.kind ?? 0] ?? 'other';
    gc.byKind[kind] = (gc.byKind[kind] ?? 0) + e.duration;
  }
}).observe({ entryTypes: ['gc'] });

process.on('exit', () => {
  const elu = performance.eventLoopUtilization();
  const ms = (ns: number) => Math.round(ns / 1e4) / 100;
  process.stderr.write(
    `${JSON.stringify({
      loopStats: {
        uptimeS: Math.round(performance.now()) / 1000,
        eventLoopUtilization: Math.round(elu.utilization * 1000) / 1000,
        idleS: Math.round(elu.idle) / 1000,
        delayMs: { p50: ms(delay.percentile(50)), p99: ms(delay.percentile(99)), max: ms(delay.max) },
        gc: { count: gc.count, ms: Math.round(gc.ms), byKind: gc.byKind },
      },
    })}\n`,
  );
});
