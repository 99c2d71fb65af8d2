import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresTarget } from './hugePostgres.js';
import { binarySpec, type HugeRunResult, letterSpec, runHugeScenario, textSpec } from './hugeValues.js';

/**
 * bench:huge — issue 16's acceptance run: a 500 MB binary string, a 300 MB valid-UTF-8 string full of characters
 * JSON escapes, and a 200 MB list element (all 'a', which the snapshot holds LZF-compressed), each through the
 * stream and each in a snapshot, with the NDJSON file sink. Prints redtail's peak RSS against the acceptance bound
 * (1.5 × the largest value + 200 MB) and against a real redis-server replica of the same master, measured in the
 * same run. REDTAIL_HUGE_SCALE scales every value (default 1: full size). REDTAIL_HUGE_SINK=postgres runs the same
 * with the Postgres sink instead (REDTAIL_BENCH_PG, default postgres://postgres@127.0.0.1:5432/test): each value is
 * hashed from the chunks Postgres holds, and `redtail verify` runs against the master at the end.
 */
const sink = process.env.REDTAIL_HUGE_SINK === 'postgres' ? 'postgres' : 'file';
const PG = process.env.REDTAIL_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const MB = 1024 * 1024;
const scale = Number(process.env.REDTAIL_HUGE_SCALE ?? 1);
const specs = [
  binarySpec('huge:bin', Math.round(500 * MB * scale)),
  textSpec('huge:text', Math.round(300 * MB * scale)),
  letterSpec('huge:list', Math.round(200 * MB * scale)),
];
const phases = (process.env.REDTAIL_HUGE_PHASES ?? 'stream,snapshot').split(',') as Array<
  'stream' | 'snapshot'
>;

function report(r: HugeRunResult): boolean {
  const mb = (n: number) => `${(n / MB).toFixed(0)} MB`;
  const okAll = r.keys.every((k) => k.ok) && !r.redtailExited;
  console.log(
    `${r.phase}: redtail peak RSS ${mb(r.peakRss)} (${(r.peakRss / r.largest).toFixed(2)}× the largest value; ` +
      `bound ${mb(r.budget)}: ${r.peakRss <= r.budget ? 'within' : 'OVER'}); redis replica peak RSS ` +
      `${mb(r.replicaPeakRss)}; ratio redtail/replica ${(r.peakRss / r.replicaPeakRss).toFixed(2)}; ${r.seconds.toFixed(1)} s; ` +
      `CPU s redtail ${r.cpu.toFixed(1)}, replica ${r.replicaCpu.toFixed(1)}`,
  );
  for (const k of r.keys)
    console.log(
      `  ${k.key}: ${k.ok ? 'exact' : 'MISMATCH'} (${k.found.bytes} bytes in ${k.found.lines} line(s): ${k.found.ops.join(',')})`,
    );
  if (r.verify)
    console.log(`  redtail verify: ${r.verify.differences} differences (${r.verify.seconds.toFixed(1)} s)`);
  for (const l of r.log.slice(0, 5)) console.log(`  log: ${l.slice(0, 300)}`);
  return okAll && r.peakRss <= r.budget && (r.verify?.differences ?? 0) === 0;
}

let ok = true;
console.log(
  `bench:huge (${sink} sink), Node ${process.version}, load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
for (const phase of phases) {
  const dir = mkdtempSync(join(process.env.REDTAIL_BENCH_TMP ?? tmpdir(), `redtail-huge-${phase}-`));
  const postgres = sink === 'postgres' ? new PostgresTarget(PG) : undefined;
  try {
    await postgres?.open();
    ok = report(await runHugeScenario({ specs, phase, dir, ...(postgres ? { postgres } : {}) })) && ok;
  } catch (err) {
    console.log(`${phase}: FAILED: ${(err as Error).message}`);
    ok = false;
  } finally {
    await postgres?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
process.exitCode = ok ? 0 : 1;
