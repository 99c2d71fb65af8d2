import { loadavg } from 'node:os';
import { cpuUsage } from 'node:process';
import { buildMessages } from '../sinks/kafka/messages.js';
import { hugeBytesOf } from '../sinks/kafka/oversize.js';
import { TopicRouter } from '../sinks/kafka/TopicRouter.js';
import type { ChangeEvent } from '../src/events/ChangeEvent.js';

/**
 * bench:kafka-build — CPU per event of the Kafka sink's record building (sinks/kafka/messages.ts buildMessages: the
 * NDJSON encoding, headers, oversize decisions, state records), without a broker, on batches of 2,000 mixed events
 * like bench:kafka's (100-byte SET values, HSETs, pushes, ZADDs, 20-field snapshot hashes). Reference measured in
 * the same run: `hugeBytesOf`, the walk over every event's fields that looked for huge values before the encoder
 * reported them (issue 16), alone. REDTAIL_BENCH_ROUNDS (default 300) batches per measurement.
 */
const source = (offset: number, snapshot = false) => ({ replid: 'a'.repeat(40), offset, seq: 0, snapshot });
const b = (s: string) => Buffer.from(s);
const value = (i: number) => Buffer.from(`value-${i}-`.padEnd(100, 'x'));

function batch(n: number): ChangeEvent[] {
  const out: ChangeEvent[] = [];
  for (let i = 0; i < n; i++) {
    const key = b(`key:${i % 500}`);
    const ts = 1_795_000_000_000 + i;
    switch (i % 5) {
      case 0:
      case 1:
        out.push({ v: 1, op: 'set', db: 0, key, type: 'string', value: value(i), source: source(i), ts });
        break;
      case 2:
        out.push({
          v: 1,
          op: 'hset',
          db: 0,
          key,
          type: 'hash',
          fields: [
            [b('name'), value(i)],
            [b('age'), b(String(i % 90))],
          ],
          source: source(i),
          ts,
        } as ChangeEvent);
        break;
      case 3:
        out.push({
          v: 1,
          op: 'push',
          db: 0,
          key,
          type: 'list',
          side: 'right',
          elements: [value(i), b('b')],
          source: source(i),
          ts,
        } as ChangeEvent);
        break;
      default: {
        const fields: Array<[Buffer, Buffer]> = [];
        for (let f = 0; f < 20; f++) fields.push([b(`field${f}`), b(`value-${f}-${i}`)]);
        out.push({
          v: 1,
          op: 'snapshot',
          db: 0,
          key,
          type: 'hash',
          encoding: 'listpack',
          value: fields,
          expireAt: null,
          source: source(7, true),
          ts,
        } as ChangeEvent);
      }
    }
  }
  return out;
}

const rounds = Number(process.env.REDTAIL_BENCH_ROUNDS ?? 300);
const events = batch(2000);
// No state topic: the sink's default, and bench:kafka's.
const router = new TopicRouter('redtail.<db>');

function cpuNsPerEvent(fn: () => void): number {
  for (let i = 0; i < 20; i++) fn();
  const c0 = cpuUsage();
  for (let i = 0; i < rounds; i++) fn();
  const c = cpuUsage(c0);
  return ((c.user + c.system) * 1000) / (rounds * events.length);
}

let sink = 0;
const build = () => {
  sink += buildMessages(events, router, { maxMessageBytes: 1_000_000 }).messages.length;
};
const walk = () => {
  for (const ev of events) sink += hugeBytesOf(ev);
};
console.log(
  `bench:kafka-build, Node ${process.version}, load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
// The reference: the build plus the walk that used to precede it (its encoder then kept huge values in the line).
const buildAndWalk = () => {
  walk();
  build();
};
for (let rep = 0; rep < 3; rep++) {
  const buildNs = cpuNsPerEvent(build);
  const walkNs = cpuNsPerEvent(walk);
  const refNs = cpuNsPerEvent(buildAndWalk);
  console.log(
    `buildMessages ${buildNs.toFixed(0)} ns/event; hugeBytesOf walk alone ${walkNs.toFixed(0)} ns/event; ` +
      `build + walk (reference) ${refNs.toFixed(0)} ns/event; ratio build/reference ${(buildNs / refNs).toFixed(2)}`,
  );
}
if (sink < 0) console.log(sink);
