import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Redtail } from '../../../bench/benchProcs.js';
import {
  binarySpec,
  digestFile,
  endsWithNewline,
  type HugeRunResult,
  letterSpec,
  runHugeScenario,
  sendHugeValue,
  tailHas,
  textSpec,
  until,
  valueHash,
} from '../../../bench/hugeValues.js';
import { startBenchRedis } from '../../../bench/rdbFixture.js';

/**
 * Issue 16 at a test's size: a 48 MB binary string, a 32 MB valid-UTF-8 string full of characters JSON escapes and
 * a 24 MB list element, through the stream and in a snapshot, with a real redis-server master and the real redtail
 * binary writing the NDJSON file sink. The file must hold each value exactly (decoded in a streaming pass and
 * compared by SHA-256), and redtail's peak RSS (VmHWM) must stay within a bound proportional to the largest value:
 * the value once, plus the process's fixed cost. Full size (500/300/200 MB) is `npm run bench:huge`.
 */
const MB = 1024 * 1024;
const specs = [
  binarySpec('huge:bin', 48 * MB),
  textSpec('huge:text', 32 * MB),
  letterSpec('huge:list', 24 * MB),
];
const largest = 48 * MB;
/**
 * Node, the pipeline and the spool cost about 100–150 MB before any value; the value itself may be held once (the
 * event's Buffer) plus the spool's read of its record and the chunks being written. Before issue 16 this run
 * peaked at about 8× the largest value.
 */
const bound = 200 * MB + 2 * largest;

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function check(r: HugeRunResult): void {
  console.log(
    `${r.phase}: peak RSS ${(r.peakRss / MB).toFixed(0)} MB (bound ${(bound / MB).toFixed(0)} MB), redis replica ${(r.replicaPeakRss / MB).toFixed(0)} MB`,
  );
  expect(r.redtailExited, r.log.join('\n')).toBe(false);
  for (const k of r.keys) expect(k.found.sha256, `${k.key} (${k.found.bytes} bytes)`).toBe(k.expected);
  expect(r.peakRss, `peak RSS ${(r.peakRss / MB).toFixed(0)} MB`).toBeLessThanOrEqual(bound);
}

describe('huge values through the NDJSON file sink (issue 16)', () => {
  for (const phase of ['stream', 'snapshot'] as const) {
    it(`${phase}: every value exact, peak RSS bounded`, { timeout: 300_000 }, async () => {
      const dir = mkdtempSync(join(tmpdir(), `redtail-huge-${phase}-`));
      dirs.push(dir);
      const r = await runHugeScenario({ specs, phase, dir, timeoutMs: 240_000 });
      check(r);
      if (phase === 'stream')
        // Through the stream each value is one event, its line what the whole-value encoder writes.
        for (const k of r.keys) expect(k.found.lines).toBe(1);
    });
  }
});

describe('kill -9 while a huge value is half-written (issue 16)', () => {
  it('the restart delivers it exactly once', { timeout: 300_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redtail-huge-kill-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'master'));
    const master = await startBenchRedis(join(dir, 'master'), ['client-output-buffer-limit replica 0 0 0']);
    const file = join(dir, 'events.ndjson');
    const args = ['--master', `redis://127.0.0.1:${master.port}`, '--sink', `file:${file}`];
    args.push('--checkpoint', join(dir, 'redtail.checkpoint.json'), '--log-level', 'info');
    const spec = binarySpec('huge:kill', 40 * MB);
    let redtail = new Redtail(args);
    try {
      await until(() => tailHas(file, '"op":"snapshot-end"'), 'the snapshot');
      const before = statSync(file).size;
      const sent = sendHugeValue(master.port, spec);
      // Killed once the value's line has begun in the file but not ended (the file does not end with a newline).
      await until(
        () => {
          const size = statSync(file).size;
          return size > before + 4 * MB && !endsWithNewline(file);
        },
        'the value half-written',
        1,
      );
      redtail.proc.kill('SIGKILL');
      await sent;
      await until(() => redtail.exited, 'redtail to die');
      expect(endsWithNewline(file)).toBe(false);
      await redtail.stop();
      redtail = new Redtail(args);
      master.cli(['SET', 'huge:after', '1']);
      await until(() => tailHas(file, '"key":"huge:after"'), 'the events after the value');
      const d = digestFile(file, ['huge:kill', 'huge:after']);
      expect(d.get('huge:kill')?.lines).toBe(1);
      expect(d.get('huge:kill')?.sha256).toBe(valueHash(spec));
      expect(d.get('huge:after')?.lines).toBe(1);
    } finally {
      await redtail.stop();
      master.proc.kill('SIGKILL');
    }
  });
});
