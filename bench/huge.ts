import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './benchProcs.js';
import {
  type KafkaRecord,
  kafkaNames,
  kafkaProblems,
  kafkaSinkSpec,
  readCommittedUntil,
} from './hugeKafka.js';
import { PostgresTarget } from './hugePostgres.js';
import { binarySpec, type HugeRunResult, letterSpec, runHugeScenario, textSpec } from './hugeValues.js';

/**
 * bench:huge — issue 16's acceptance run: a 500 MB binary string, a 300 MB valid-UTF-8 string full of characters
 * JSON escapes, and a 200 MB list element (all 'a', which the snapshot holds LZF-compressed), each through the
 * stream and each in a snapshot, with the NDJSON file sink, then again with the Kafka sink beside it (its default
 * oversize policy, `truncate`, or REDTAIL_HUGE_OVERSIZE=reference). Prints redtail's peak RSS against the
 * acceptance bound (1.5 × the largest value + 200 MB) and against a real redis-server replica of the same master,
 * measured in the same run; for Kafka also what a read_committed consumer saw, checked against the file sink's
 * lines (bench/hugeKafka.ts). REDTAIL_HUGE_SCALE scales every value (default 1: full size); REDTAIL_HUGE_PHASES
 * (stream,snapshot) and REDTAIL_HUGE_SINKS (file,kafka; also postgres) pick the runs. Kafka: KAFKA_BROKERS, else the
 * scripts/kafka.sh broker (started, and stopped at the end, when not running). Postgres (REDTAIL_BENCH_PG, default
 * postgres://postgres@127.0.0.1:5432/test, a schema of its own): each value is hashed back from the chunks Postgres
 * holds (bench/hugePostgres.ts), and `redtail verify` runs against the master at the end.
 */
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
const sinks = (process.env.REDTAIL_HUGE_SINKS ?? 'file,kafka').split(',');
const oversize = process.env.REDTAIL_HUGE_OVERSIZE === 'reference' ? 'reference' : 'truncate';

function report(label: string, r: HugeRunResult): boolean {
  const mb = (n: number) => `${(n / MB).toFixed(0)} MB`;
  const okAll = r.keys.every((k) => k.ok) && !r.redtailExited;
  console.log(
    `${label}: redtail peak RSS ${mb(r.peakRss)} (${(r.peakRss / r.largest).toFixed(2)}× the largest value; ` +
      `bound ${mb(r.budget)}: ${r.peakRss <= r.budget ? 'within' : 'OVER'}); redis replica peak RSS ` +
      `${mb(r.replicaPeakRss)}; ratio redtail/replica ${(r.peakRss / r.replicaPeakRss).toFixed(2)}; ${r.seconds.toFixed(1)} s; ` +
      `CPU s redtail ${r.cpu.toFixed(1)}, replica ${r.replicaCpu.toFixed(1)}`,
  );
  for (const k of r.keys)
    console.log(
      `  ${k.key}: ${k.ok ? 'exact' : 'MISMATCH'} (${k.found.bytes} bytes in ${k.found.lines} line(s): ${k.found.ops.join(',')})`,
    );
  // The Kafka sink's one warning per truncation marker is expected; anything else is shown.
  const markers = r.log.filter((l) => l.includes('written as a truncation marker')).length;
  if (markers > 0) console.log(`  log: ${markers} truncation-marker warning(s)`);
  for (const l of r.log.filter((x) => !x.includes('written as a truncation marker')).slice(0, 5))
    console.log(`  log: ${l.slice(0, 300)}`);
  if (r.verify)
    console.log(`  redtail verify: ${r.verify.differences} differences (${r.verify.seconds.toFixed(1)} s)`);
  return okAll && r.peakRss <= r.budget && (r.verify?.differences ?? 0) === 0;
}

/** The Postgres sink alone: values hashed back from Postgres, then `redtail verify`. */
async function postgresOnce(phase: 'stream' | 'snapshot', dir: string): Promise<boolean> {
  const postgres = new PostgresTarget(PG);
  try {
    await postgres.open();
    return report(`postgres ${phase}`, await runHugeScenario({ specs, phase, dir, postgres }));
  } finally {
    await postgres.close();
  }
}

const kafkaScript = join(repoRoot, 'scripts', 'kafka.sh');
let startedBroker = false;
function brokers(): string[] {
  if (process.env.KAFKA_BROKERS) return process.env.KAFKA_BROKERS.split(',');
  const running = spawnSync(kafkaScript, ['status'], { stdio: 'ignore' }).status === 0;
  if (!running) execFileSync(kafkaScript, ['start'], { stdio: ['ignore', 'ignore', 'inherit'] });
  startedBroker = !running;
  const address = execFileSync(kafkaScript, ['address'], { encoding: 'utf8' }).trim();
  process.env.KAFKA_BROKERS = address;
  return [address];
}

async function once(sink: string, phase: 'stream' | 'snapshot'): Promise<boolean> {
  const dir = mkdtempSync(join(process.env.REDTAIL_BENCH_TMP ?? tmpdir(), `redtail-huge-${sink}-${phase}-`));
  try {
    if (sink === 'file') return report(`file ${phase}`, await runHugeScenario({ specs, phase, dir }));
    if (sink === 'postgres') return await postgresOnce(phase, dir);
    const b = brokers();
    const names = kafkaNames(`bench-huge-${phase}`);
    let records: KafkaRecord[] = [];
    const r = await runHugeScenario({
      specs,
      phase,
      dir,
      after: true,
      extraSink: {
        spec: kafkaSinkSpec(b, names, { oversize }),
        caughtUp: async (done) => (records = await readCommittedUntil(b, names.topic0, done)),
      },
    });
    const ok = report(`kafka (${oversize}) + file ${phase}`, r);
    const problems = kafkaProblems(r, records, {
      specs,
      expect: () => oversize,
      limit: 1_000_000,
      after: true,
    });
    console.log(
      `  kafka: ${records.length} records read_committed; ${problems.length === 0 ? `every value's record as documented (${oversize}), exactly once, nothing after it missing` : `${problems.length} problem(s):`}`,
    );
    for (const p of problems.slice(0, 10)) console.log(`    ${p}`);
    return ok && problems.length === 0;
  } catch (err) {
    console.log(`${sink} ${phase}: FAILED: ${(err as Error).message}`);
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let ok = true;
console.log(
  `bench:huge, Node ${process.version}, load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
try {
  for (const sink of sinks) for (const phase of phases) ok = (await once(sink, phase)) && ok;
} finally {
  if (startedBroker) execFileSync(kafkaScript, ['stop'], { stdio: 'ignore' });
}
console.log(
  `load average at the end ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
process.exitCode = ok ? 0 : 1;
