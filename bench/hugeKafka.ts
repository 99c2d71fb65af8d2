import { createHash, randomBytes } from 'node:crypto';
import kafkajs from 'kafkajs';
import { fileEvents, type HugeRunResult, type HugeValueSpec, type KeyDigest } from './hugeValues.js';

/**
 * Issue 16 through the Kafka sink: the huge-value scenario (bench/hugeValues.ts) with `--sink kafka://…` beside the
 * file sink, a read_committed consumer that reads the event topic until the run's last key is there, and the checks
 * of what it saw against the file sink's lines (exact by SHA-256) and the values sent. Used by
 * test/sinks/kafka/hugeValues.test.ts (tens of MB) and bench/huge.ts (full size).
 */

export interface KafkaRecord {
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

/** Names of one run's own topics and transactionalId. */
export function kafkaNames(prefix: string) {
  const base = `${prefix}-${randomBytes(4).toString('hex')}`;
  return {
    topic: `${base}.<db>`,
    topic0: `${base}.0`,
    offsetsTopic: `${base}.offsets`,
    transactionalId: `txn-${base}`,
  };
}

/**
 * The `--sink` spec of a Kafka sink with its own topics (`names`) and extra URL parameters (`oversize`,
 * `maxMessageBytes`, …).
 */
export function kafkaSinkSpec(
  brokers: string[],
  names: ReturnType<typeof kafkaNames>,
  params: Record<string, string> = {},
): string {
  const q = new URLSearchParams({
    topic: names.topic,
    offsetsTopic: names.offsetsTopic,
    transactionalId: names.transactionalId,
    ...params,
  });
  return `kafka://${brokers.join(',')}?${q.toString()}`;
}

/**
 * Reads `topic` from the beginning, read_committed (what a downstream consumer sees: no aborted or open
 * transaction), until a record with key `doneKey` arrived and nothing more came for `idleMs`.
 */
export async function readCommittedUntil(
  brokers: string[],
  topic: string,
  doneKey: string,
  timeoutMs = 600_000,
  idleMs = 1500,
): Promise<KafkaRecord[]> {
  const kafka = new kafkajs.Kafka({
    clientId: 'redtail-huge-reader',
    brokers,
    logLevel: kafkajs.logLevel.NOTHING,
  });
  const consumer = kafka.consumer({
    groupId: `redtail-huge-reader-${randomBytes(4).toString('hex')}`,
    readUncommitted: false,
    maxWaitTimeInMs: 200,
  });
  const out: KafkaRecord[] = [];
  let done = false;
  let last = Date.now();
  await consumer.connect();
  try {
    // The topic exists once the sink's first transaction that needs it: wait for it rather than fail.
    const admin = kafka.admin();
    await admin.connect();
    const deadline = Date.now() + timeoutMs;
    try {
      while (!(await admin.listTopics()).includes(topic)) {
        if (Date.now() > deadline) throw new Error(`topic ${topic} was never created`);
        await new Promise((r) => setTimeout(r, 500));
      }
    } finally {
      await admin.disconnect();
    }
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        last = Date.now();
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {}))
          if (v !== undefined) headers[k] = String(v);
        out.push({ partition, offset: message.offset, key: message.key, value: message.value, headers });
        if (message.key?.toString('utf8') === doneKey) done = true;
      },
    });
    for (;;) {
      await new Promise((r) => setTimeout(r, 200));
      if (done && Date.now() - last >= idleMs) break;
      if (Date.now() > deadline)
        throw new Error(`${topic}: ${out.length} records read, no '${doneKey}' within ${timeoutMs} ms`);
    }
  } finally {
    await consumer.disconnect();
  }
  out.sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
  return out;
}

export type OversizeCheck = 'truncate' | 'reference' | 'whole';

type Json = Record<string, unknown>;
const idOf = (ev: Json) => {
  const s = ev.source as { replid: string; offset: number; seq: number };
  return `${s.replid}/${s.offset}/${s.seq}/${String(ev.op)}`;
};

/**
 * What is wrong with the records of a run (empty: nothing). `expect` says per key what the record must be:
 *   - `truncate`: the marker `{…, truncated: {bytes, limit, sha256}}` (header `truncated: 1`), bytes and SHA-256
 *     those of the file sink's line for the same event (the whole-value encoder's line);
 *   - `reference`: the event with its huge byte string as `{ref: {bytes, sha256}}` (header `oversize: reference`),
 *     bytes and SHA-256 those of the value in the file's line (which the caller checks against the value sent),
 *     every other field as in the file's line;
 *   - `whole`: the event's line itself, byte for byte the file's.
 * A value in a snapshot may be several events (parts): one record per line, checked in order. And for every run:
 * the records are the file's events, each exactly once (read_committed), so nothing behind a huge value is missing,
 * and each spec key's `…:after` event is there when the run wrote it.
 */
export function kafkaProblems(
  r: Pick<HugeRunResult, 'file' | 'keys' | 'phase'>,
  records: KafkaRecord[],
  o: {
    specs: readonly HugeValueSpec[];
    expect: (spec: HugeValueSpec) => OversizeCheck;
    /** The sink's maxMessageBytes, which a marker names. */
    limit: number;
    /** The run wrote `<key>:after` after each value on the stream (HugeRunOptions.after). */
    after: boolean;
  },
): string[] {
  const { specs } = o;
  const problems: string[] = [];
  const events = records.map((m) => JSON.parse(String(m.value)) as Json);
  // Exactly once: the same events as the file, by (replid, offset, seq, op), none twice.
  const fromFile = new Map<string, number>();
  for (const ev of fileEvents(r.file)) fromFile.set(idOf(ev), (fromFile.get(idOf(ev)) ?? 0) + 1);
  const fromKafka = new Map<string, number>();
  for (const ev of events) fromKafka.set(idOf(ev), (fromKafka.get(idOf(ev)) ?? 0) + 1);
  for (const [id, n] of fromKafka) if (n !== 1) problems.push(`${id}: ${n} records in Kafka`);
  for (const [id, n] of fromFile)
    if (!fromKafka.has(id)) problems.push(`${id}: in the file (${n}×), not in Kafka`);
  for (const id of fromKafka.keys()) if (!fromFile.has(id)) problems.push(`${id}: in Kafka, not in the file`);
  for (const spec of specs) {
    const found = r.keys.find((k) => k.key === spec.key)?.found;
    // A value is one event, or several in a snapshot (raw strings over 64 MB come in parts): one record each.
    const at = records.flatMap((m, i) => (m.key?.toString('utf8') === spec.key ? [i] : []));
    const lines = found?.lines ?? 0;
    if (found === undefined || lines === 0 || at.length !== lines) {
      problems.push(`${spec.key}: ${at.length} records, ${lines} file lines`);
      continue;
    }
    for (let j = 0; j < at.length; j++)
      recordProblems(problems, spec, records[at[j]!]!, events[at[j]!]!, found, j, o);
    if (o.after && spec.phase !== 'snapshot' && r.phase !== 'snapshot') {
      const after = records.some((x) => x.key?.toString('utf8') === `${spec.key}:after`);
      if (!after) problems.push(`${spec.key}: no record for ${spec.key}:after, written right after it`);
    }
  }
  return problems;
}

/** The checks of `kafkaProblems` on the record of a value's `j`th event (its `j`th line in the file). */
function recordProblems(
  problems: string[],
  spec: HugeValueSpec,
  m: KafkaRecord,
  ev: Json,
  found: KeyDigest,
  j: number,
  o: { expect: (spec: HugeValueSpec) => OversizeCheck; limit: number },
): void {
  const line = found.events[j]!;
  const want = o.expect(spec);
  const bad = (what: string) => problems.push(`${spec.key}#${j} (${want}): ${what}`);
  if (want === 'truncate') {
    const t = ev.truncated as { bytes?: number; limit?: number; sha256?: string } | undefined;
    if (!t) bad(`no truncation marker: ${String(m.value).slice(0, 200)}`);
    else {
      // The same event received in another run (delivered to Kafka before a kill -9, to the file after the
      // restart) has another `ts`: its line is the file's with the marker's `ts`.
      const facts =
        ev.ts === line.ts
          ? { sha256: found.lineSha256[j], bytes: found.lineBytes[j] }
          : found.lineWithTs[j]?.(Number(ev.ts));
      if (t.bytes !== facts?.bytes) bad(`marker bytes ${t.bytes}, the file's line ${facts?.bytes}`);
      if (t.sha256 !== facts?.sha256) bad(`marker sha256 ${t.sha256}, the file's line ${facts?.sha256}`);
      if (t.limit !== o.limit) bad(`marker limit ${t.limit}, want ${o.limit}`);
    }
    if (m.headers.truncated !== '1') bad(`header truncated=${m.headers.truncated}`);
    for (const f of ['op', 'db', 'key', 'type', 'source'] as const)
      if (JSON.stringify(ev[f]) !== JSON.stringify(line[f])) bad(`${f} ${JSON.stringify(ev[f])} ≠ file's`);
  } else if (want === 'reference') {
    const refs: Array<{ bytes: number; sha256: string }> = [];
    const normalized = JSON.stringify(ev, (_k, v) => {
      if (v && typeof v === 'object' && 'ref' in v) {
        refs.push((v as { ref: { bytes: number; sha256: string } }).ref);
        return 'HUGE';
      }
      return v;
    });
    const fileNormalized = JSON.stringify(line, (_k, v) =>
      v && typeof v === 'object' && ('hugeRef' in v || (v.base64 && typeof v.base64 === 'object'))
        ? 'HUGE'
        : v,
    );
    // The value's bytes in this event (all of it, or this snapshot part): their size and SHA-256 from the file.
    if (refs.length !== 1) bad(`${refs.length} references`);
    else {
      if (refs[0]!.bytes !== found.lineValueBytes[j])
        bad(`ref bytes ${refs[0]!.bytes}, the value's ${found.lineValueBytes[j]}`);
      if (refs[0]!.sha256 !== found.lineValueSha256[j])
        bad(`ref sha256 ${refs[0]!.sha256} is not the value's`);
    }
    if (normalized !== fileNormalized) bad(`fields differ from the file's line: ${normalized.slice(0, 300)}`);
    if (m.headers.oversize !== 'reference') bad(`header oversize=${m.headers.oversize}`);
  } else {
    const facts =
      ev.ts === line.ts
        ? { sha256: found.lineSha256[j], bytes: found.lineBytes[j] }
        : found.lineWithTs[j]?.(Number(ev.ts));
    if (!m.value || createHash('sha256').update(m.value).digest('hex') !== facts?.sha256)
      bad(`record of ${m.value?.length} bytes is not the file's line (${facts?.bytes} bytes)`);
  }
}
