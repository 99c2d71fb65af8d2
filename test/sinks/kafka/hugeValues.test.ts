import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Redtail } from '../../../bench/benchProcs.js';
import {
  type KafkaRecord,
  kafkaNames,
  kafkaProblems,
  kafkaSinkSpec,
  type OversizeCheck,
  readCommittedUntil,
} from '../../../bench/hugeKafka.js';
import {
  binarySpec,
  DONE_KEY,
  digestFile,
  elementSpec,
  endsWithNewline,
  type HugeRunResult,
  type HugeValueSpec,
  letterSpec,
  runHugeScenario,
  sendHugeValue,
  tailHas,
  textSpec,
  until,
  valueHash,
} from '../../../bench/hugeValues.js';
import { startBenchRedis } from '../../../bench/rdbFixture.js';
import { createTopic, kafkaBrokers } from '../../harness/kafka.js';

/**
 * Issue 16 through a real broker: a master holding huge values (a binary string, a valid-UTF-8 string full of JSON
 * escapes, a list element, a hash field), some in the snapshot and some written on the stream while the real
 * `redtail run` follows, into the Kafka sink (beside the file sink, whose lines are the reference) under each
 * oversize policy. redtail must keep running; each value's record must be there once, read_committed, in the form
 * the policy documents (docs/kafka.md#oversize-policy), with the size and SHA-256 of what it stands for; the events
 * written after each value must arrive too (no stall); the records must be exactly the file's events (exactly once);
 * and peak RSS must stay within a bound proportional to the largest value.
 */
const MB = 1024 * 1024;
const brokers = kafkaBrokers();
const specs: HugeValueSpec[] = [
  { ...binarySpec('snap:bin', 24 * MB), phase: 'snapshot' },
  { ...elementSpec('snap:hash', 12 * MB, 'hash'), phase: 'snapshot' },
  { ...binarySpec('live:bin', 40 * MB), phase: 'stream' },
  { ...textSpec('live:text', 16 * MB), phase: 'stream' },
  { ...letterSpec('live:list', 8 * MB), phase: 'stream' },
];
/** The file sink's bound (hugeValues.test.ts) plus the Kafka sink's client, buffers and its measuring pass. */
const bound = (largest: number) => 250 * MB + 2 * largest;

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The values through redtail with the file sink and a Kafka sink (`params`) beside it; the records read back. */
async function scenario(
  list: HugeValueSpec[],
  params: Record<string, string>,
  prefix: string,
  {
    args,
    names = kafkaNames(`huge-${prefix}`),
  }: { args?: string[]; names?: ReturnType<typeof kafkaNames> } = {},
): Promise<{ r: HugeRunResult; records: KafkaRecord[] }> {
  const dir = mkdtempSync(join(tmpdir(), `redtail-kafka-huge-${prefix}-`));
  dirs.push(dir);
  let records: KafkaRecord[] = [];
  const r = await runHugeScenario({
    specs: list,
    phase: 'both',
    dir,
    timeoutMs: 280_000,
    after: true,
    extraSink: {
      spec: kafkaSinkSpec(brokers, names, params),
      caughtUp: async (done) => {
        records = await readCommittedUntil(brokers, names.topic0, done, 280_000);
        return records;
      },
    },
    ...(args ? { args } : {}),
  });
  return { r, records };
}

async function run(
  list: HugeValueSpec[],
  params: Record<string, string>,
  prefix: string,
): Promise<{ r: HugeRunResult; records: KafkaRecord[] }> {
  const { r, records } = await scenario(list, params, prefix, { args: ['--log-level', 'warn'] });
  const limit = bound(r.largest);
  console.log(
    `${prefix}: ${records.length} records; peak RSS ${(r.peakRss / MB).toFixed(0)} MB (bound ${(limit / MB).toFixed(0)} MB), redis replica ${(r.replicaPeakRss / MB).toFixed(0)} MB, ${r.seconds.toFixed(1)} s`,
  );
  expect(r.redtailExited, r.log.join('\n')).toBe(false);
  // The file sink holds every value exactly: the reference the Kafka records are checked against.
  for (const k of r.keys) expect(k.found.sha256, k.key).toBe(k.expected);
  expect(r.peakRss, `peak RSS ${(r.peakRss / MB).toFixed(0)} MB`).toBeLessThanOrEqual(limit);
  return { r, records };
}

function check(
  r: HugeRunResult,
  records: KafkaRecord[],
  list: HugeValueSpec[],
  expectOf: (s: HugeValueSpec) => OversizeCheck,
  limit = 1_000_000,
) {
  expect(kafkaProblems(r, records, { specs: list, expect: expectOf, limit, after: true })).toEqual([]);
}

describe('huge values through the Kafka sink and a real broker (issue 16)', () => {
  it('truncate (default): each value a marker with its line size and SHA-256, no stall, exactly once', {
    timeout: 300_000,
  }, async () => {
    // Beside the huge values, two below 1 MiB around maxMessageBytes (1,000,000): 700 kB of binary is a 933 kB
    // line, written whole; 760 kB is a 1,013 kB line, a marker like the huge ones.
    const list = [
      ...specs,
      { ...binarySpec('live:near', 700_000), phase: 'stream' as const },
      { ...binarySpec('live:over', 760_000), phase: 'stream' as const },
    ];
    const { r, records } = await run(list, {}, 'truncate');
    check(r, records, list, (s) => (s.key === 'live:near' ? 'whole' : 'truncate'));
    // redtail says so, once per marker.
    const warned = r.log.filter((l) => l.includes('truncation marker')).length;
    expect(warned).toBe(list.length - 1);
  });

  it('oversize=reference: each value a reference with its size and SHA-256, every other field kept', {
    timeout: 300_000,
  }, async () => {
    const { r, records } = await run(specs, { oversize: 'reference' }, 'reference');
    check(r, records, specs, () => 'reference');
  });

  it("maxMessageBytes vs the broker's max.message.bytes: within the topic's limit whole, past it cut", {
    timeout: 300_000,
  }, async () => {
    // The topic takes records up to 8 MiB (the broker's default message.max.bytes is 1 MiB); the sink's limit is 6 MB.
    // A 3 MB value is a 4 MB record: written whole. A 12 MB one passes maxMessageBytes: referenced.
    const names = kafkaNames('huge-limits');
    const list: HugeValueSpec[] = [
      { ...binarySpec('live:fits', 3 * MB), phase: 'stream' },
      { ...binarySpec('live:past', 12 * MB), phase: 'stream' },
    ];
    await createTopic(names.topic0, { partitions: 3, configs: { 'max.message.bytes': String(8 * MB) } });
    const limit = 6_000_000;
    const { r, records } = await scenario(
      list,
      { oversize: 'reference', maxMessageBytes: String(limit) },
      'limits',
      { names },
    );
    expect(r.redtailExited, r.log.join('\n')).toBe(false);
    check(r, records, list, (s) => (s.key === 'live:fits' ? 'whole' : 'reference'), limit);
  });

  it("maxMessageBytes above the broker's limit: the broker refuses, the sink shrinks and writes a marker", {
    timeout: 300_000,
  }, async () => {
    // The topic keeps the broker's default (message.max.bytes 1 MiB + 12); the sink is told 6 MB. The 3 MB value's
    // record is refused (MESSAGE_TOO_LARGE); the sink halves its limits and retries the transaction, so the value
    // becomes a marker (its limit the halved one) and nothing after it waits.
    const list: HugeValueSpec[] = [{ ...binarySpec('live:refused', 3 * MB), phase: 'stream' }];
    const { r, records } = await scenario(list, { maxMessageBytes: '6000000' }, 'refused');
    expect(r.redtailExited, r.log.join('\n')).toBe(false);
    const marker = records.find((m) => m.key?.toString() === 'live:refused');
    const limit = (JSON.parse(String(marker?.value)) as { truncated?: { limit: number } }).truncated?.limit;
    expect(limit, String(marker?.value).slice(0, 300)).toBeLessThan(1_048_576);
    check(r, records, list, () => 'truncate', limit);
    expect(r.log.some((l) => l.includes('broker rejected a batch as too large'))).toBe(true);
  });
});

describe('kill -9 while a huge value is half-written, Kafka beside the file sink (issue 16)', () => {
  it('the restart delivers its record exactly once, and the file its line', {
    timeout: 300_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redtail-kafka-huge-kill-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'master'));
    const master = await startBenchRedis(join(dir, 'master'), ['client-output-buffer-limit replica 0 0 0']);
    const file = join(dir, 'events.ndjson');
    const names = kafkaNames('huge-kill');
    const args = ['--master', `redis://127.0.0.1:${master.port}`, '--sink', `file:${file}`];
    args.push('--sink', kafkaSinkSpec(brokers, names), '--checkpoint', join(dir, 'redtail.checkpoint.json'));
    const spec = binarySpec('huge:kill', 40 * MB);
    let redtail = new Redtail(args);
    try {
      await until(() => tailHas(file, '"op":"snapshot-end"'), 'the snapshot');
      const before = statSync(file).size;
      const sent = sendHugeValue(master.port, spec);
      // Killed once the value's line has begun in the file but not ended.
      await until(
        () => statSync(file).size > before + 4 * MB && !endsWithNewline(file),
        'the value half-written',
        1,
      );
      redtail.proc.kill('SIGKILL');
      await sent;
      await until(() => redtail.exited, 'redtail to die');
      expect(endsWithNewline(file)).toBe(false);
      await redtail.stop();
      redtail = new Redtail(args);
      master.cli(['SET', DONE_KEY, '1']);
      const records = await readCommittedUntil(brokers, names.topic0, DONE_KEY, 240_000);
      expect(redtail.exited).toBe(false);
      const d = digestFile(file, [spec.key]);
      const found = d.get(spec.key)!;
      expect(found.lines).toBe(1);
      expect(found.sha256).toBe(valueHash(spec));
      const keys = [{ key: spec.key, expected: valueHash(spec), found, ok: true }];
      // One marker for the value, of its file line; the records are the file's events, each once.
      expect(
        kafkaProblems({ file, keys, phase: 'stream' }, records, {
          specs: [spec],
          expect: () => 'truncate',
          limit: 1_000_000,
          after: false,
        }),
      ).toEqual([]);
    } finally {
      await redtail.stop();
      master.proc.kill('SIGKILL');
    }
  });
});
