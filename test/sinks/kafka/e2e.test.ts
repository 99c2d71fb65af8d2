import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLastCheckpoint } from '../../../sinks/kafka/index.js';
import { expectedFrom, fingerprint } from '../../harness/expectedEvents.js';
import {
  kafkaBrokers,
  kafkaClient,
  PrivateKafka,
  type ReadMessage,
  readTopic,
  uniqueName,
} from '../../harness/kafka.js';
import type { RedisServer, RedisServerOptions } from '../../harness/RedisServer.js';
import type { JsonEvent, RedtailProcess } from '../../harness/RedtailProcess.js';
import type { TappedCommand } from '../../harness/ReplicationTap.js';
import { useTestScope } from '../../harness/TestScope.js';
import { prng, Workload } from '../../harness/Workload.js';

/**
 * `redtail run --sink kafka://...` end to end: the real binary, a real redis-server master, the real broker, and an
 * independent recording of the master's replication stream (ReplicationTap) to compare with what a read_committed
 * consumer sees.
 */

const scope = useTestScope();
const server = (opts?: RedisServerOptions) => scope.server(opts);
const tap = (s: RedisServer) => scope.tap(s);

interface Names {
  base: string;
  topic: string;
  offsetsTopic: string;
  transactionalId: string;
  stateTopic: string;
}

function names(prefix: string): Names {
  const base = uniqueName(prefix);
  return {
    base,
    topic: `${base}.<db>`,
    offsetsTopic: `${base}.offsets`,
    transactionalId: `txn-${base}`,
    stateTopic: `${base}.state.<db>`,
  };
}

/** A config file whose sinkOptions.kafka gives this test its own topics and transactionalId. */
function configFile(n: Names, kafka: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'redtail-kafka-e2e-'));
  scope.defer(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'redtail.json');
  const { base: _base, ...sinkOptions } = n;
  writeFileSync(path, JSON.stringify({ sinkOptions: { kafka: { ...sinkOptions, ...kafka } } }));
  return path;
}

function start(master: RedisServer, brokers: string[], config: string): RedtailProcess {
  return scope.redtail([
    'run',
    '--master',
    master.url(),
    '--sink',
    `kafka://${brokers.join(',')}`,
    '--config',
    config,
    '--log-level',
    'info',
  ]);
}

function handshakeReplies(p: RedtailProcess): string[] {
  return p
    .logs()
    .filter((l) => l.msg === 'replication handshake done')
    .map((l) => String(l.reply));
}

const offsetOf = async (s: RedisServer) => Number((await s.info('replication')).master_repl_offset);

/**
 * Waits until `replicas` replicas are connected and all acknowledged `offset`. redtail (ack: durable) acknowledges
 * only what its sinks committed, so for redtail this means "committed in Kafka". `stallMs` ends the wait only when
 * the acknowledged offsets stopped moving for that long: on a loaded machine catching up can take a while, and
 * that is not a failure.
 */
async function waitAcked(master: RedisServer, offset: number, replicas: number, stallMs = 60_000) {
  let last = '';
  let movedAt = Date.now();
  for (;;) {
    const info = await master.info('replication');
    const acked = Object.entries(info)
      .filter(([k]) => /^slave\d+$/.test(k))
      .map(([, v]) => Number(/offset=(\d+)/.exec(v)?.[1] ?? -1));
    if (acked.length === replicas && acked.every((o) => o >= offset)) return;
    const now = JSON.stringify(acked);
    if (now !== last) {
      last = now;
      movedAt = Date.now();
    } else if (Date.now() - movedAt > stallMs)
      throw new Error(
        `replicas acked ${now} and stopped there for ${stallMs} ms, waiting for ${replicas} at ${offset}`,
      );
    await sleep(100);
  }
}

type KafkaEvent = JsonEvent & { ts: number };

interface Parsed {
  message: ReadMessage;
  event: KafkaEvent;
}

function parse(messages: ReadMessage[]): Parsed[] {
  return messages.map((message) => ({
    message,
    event: JSON.parse(message.value!.toString('utf8')) as KafkaEvent,
  }));
}

/**
 * The consumer's view must be exactly the master's stream after the snapshot: same events, each once (sorted by
 * replication offset and seq they must equal the recording), every key on one partition in replication order, and
 * the headers agreeing with the value.
 */
function expectStream(got: Parsed[], tapped: TappedCommand[], after: number): number {
  const stream = got.filter((g) => !g.event.source.snapshot);
  const want = expectedFrom(tapped, after);
  const ordered = [...stream].sort(
    (a, b) => a.event.source.offset - b.event.source.offset || a.event.source.seq - b.event.source.seq,
  );
  expect(ordered.length).toBe(want.length);
  expect(ordered.map((g) => fingerprint(g.event))).toEqual(want);
  const byKey = new Map<string, { partition: number; last: [number, number] }>();
  for (const { message, event } of got) {
    expect(message.headers).toMatchObject({
      op: event.op,
      db: String(event.db),
      replid: event.source.replid,
      offset: String(event.source.offset),
      seq: String(event.source.seq),
    });
    if (message.key === null || event.source.snapshot) continue;
    const key = message.key.toString('latin1');
    const pos: [number, number] = [event.source.offset, event.source.seq];
    const seen = byKey.get(key);
    if (seen) {
      expect(message.partition).toBe(seen.partition);
      expect(pos[0] > seen.last[0] || (pos[0] === seen.last[0] && pos[1] > seen.last[1])).toBe(true);
      seen.last = pos;
    } else byKey.set(key, { partition: message.partition, last: pos });
  }
  return want.length;
}

/** The completed snapshot: its snapshot-end and the snapshot events of the same sync (same replid and offset). */
function completedSnapshot(got: Parsed[]) {
  const ends = got.filter((g) => g.event.op === 'snapshot-end');
  expect(ends).toHaveLength(1);
  const end = ends[0]!.event;
  const events = got
    .map((g) => g.event)
    .filter(
      (e) =>
        e.op === 'snapshot' && e.source.offset === end.source.offset && e.source.replid === end.source.replid,
    );
  return { end, events };
}

/** Newest record per key of a compacted topic, as a read_committed consumer sees it before compaction. */
function latestByKey(messages: ReadMessage[]): Map<string, ReadMessage> {
  const out = new Map<string, ReadMessage>();
  for (const m of messages) if (m.key !== null) out.set(m.key.toString('latin1'), m);
  return out;
}

/** A snapshot worth of every type, with expiries, a binary key and a second database. */
async function populate(master: RedisServer): Promise<void> {
  const c = master.client();
  const pipe = c.pipeline();
  for (let i = 0; i < 300; i++) pipe.set(`pre:str:${i}`, `value-${i}`);
  for (let i = 0; i < 40; i++) {
    pipe.hset(`pre:hash:${i}`, 'a', String(i), 'b', 'x'.repeat(i));
    pipe.rpush(`pre:list:${i}`, 'x', 'y', String(i));
    pipe.sadd(`pre:set:${i}`, 'm1', 'm2', String(i));
    pipe.zadd(`pre:zset:${i}`, i, 'a', i + 1, 'b');
  }
  for (let i = 0; i < 5; i++) pipe.xadd(`pre:stream:${i}`, '*', 'n', String(i));
  for (let i = 0; i < 20; i++) pipe.set(`pre:ttl:${i}`, 'v', 'EX', 5000);
  pipe.set(Buffer.from([0xff, 0xfe, 0x00, 0x41]), Buffer.from([0x80, 0x81]));
  await pipe.exec();
  const db1 = master.client({ db: 1 });
  for (let i = 0; i < 10; i++) await db1.set(`pre:db1:${i}`, String(i));
}

describe('redtail run --sink kafka:// end to end', () => {
  beforeAll(() => {
    kafkaBrokers();
  });

  it('snapshot + live stream of a mixed workload: read_committed sees exactly the master, per key in order', async () => {
    const brokers = kafkaBrokers();
    const master = await server({ config: { 'repl-backlog-size': '64mb' } });
    await populate(master);
    const snapshotKeys = (await master.client().keysBuffer('*')).map((k) => k.toString('latin1'));
    const recorder = await tap(master);
    const n = names('rt-e2e');
    const p = start(master, brokers, configFile(n));
    await p.waitFor(() => handshakeReplies(p).length === 1, 'the first sync', 60_000);
    expect(handshakeReplies(p)[0]).toMatch(/^\+FULLRESYNC/);
    // The fork happened before +FULLRESYNC was sent, so the snapshot holds exactly what `populate` wrote.
    const workload = new Workload(master.client(), 5);
    workload.start();
    scope.defer(() => workload.stop());
    await sleep(3000);
    await workload.stop();
    expect(workload.commands).toBeGreaterThan(500);
    const end = await offsetOf(master);
    await recorder.waitForOffset(end);
    await waitAcked(master, end, 2);
    expect((await p.stop('SIGTERM')).code).toBe(0);

    const tapped = recorder.drain();
    const wantStream = expectedFrom(tapped, 0).length;
    const got = parse(await readTopic(`${n.base}.0`, { minMessages: snapshotKeys.length + 2 + wantStream }));
    const { end: snapEnd, events: snapshot } = completedSnapshot(got);
    expect(got.filter((g) => g.event.op === 'snapshot-begin')).toHaveLength(1);
    expect(snapEnd.keys).toBe(snapshotKeys.length + 10);
    expect(snapshot.map((e) => e.key).length).toBe(snapshotKeys.length);
    const snapKeys = got
      .filter((g) => g.event.op === 'snapshot')
      .map((g) => g.message.key!.toString('latin1'))
      .sort();
    expect(snapKeys).toEqual([...snapshotKeys].sort());
    const byKey = new Map(snapshot.map((e) => [JSON.stringify(e.key), e]));
    expect(byKey.get('"pre:str:7"')).toMatchObject({ type: 'string', value: 'value-7' });
    expect(byKey.get('"pre:hash:3"')).toMatchObject({
      type: 'hash',
      value: [
        ['a', '3'],
        ['b', 'xxx'],
      ],
    });
    expect(byKey.get('"pre:ttl:1"')!.expireAt).toBeGreaterThan(Date.now());
    expect(
      byKey.get(JSON.stringify({ base64: Buffer.from([0xff, 0xfe, 0x00, 0x41]).toString('base64') })),
    ).toBeDefined();
    const db1 = parse(await readTopic(`${n.base}.1`, { minMessages: 10 }));
    expect(db1.map((g) => g.event.key).sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => `pre:db1:${i}`).sort(),
    );
    expect(expectStream(got, tapped, snapEnd.source.offset)).toBeGreaterThan(500);
  }, 180_000);

  it('kill -9 in the middle of Kafka transactions, 10 times: no gap and no duplicate for read_committed', async () => {
    const brokers = kafkaBrokers();
    const master = await server({ config: { 'repl-backlog-size': '64mb', 'enable-debug-command': 'yes' } });
    // Enough keys that the first snapshot spans several transactions and the first kill can cut it off.
    await master.client().call('DEBUG', 'POPULATE', '20000', 'pre', '32');
    const recorder = await tap(master);
    const workload = new Workload(master.client(), 9, 5);
    workload.start();
    scope.defer(() => workload.stop());
    const n = names('rt-e2e-kill');
    // Small produce requests make every transaction a run of sequential sends, so the sink spends most of its time
    // inside an open transaction and random kills land there.
    const config = configFile(n, { maxBatchBytes: 8192 });
    const kafka = kafkaClient();
    const admin = kafka.admin();
    await admin.connect();
    scope.defer(() => admin.disconnect());
    const committed = async () =>
      (
        await readLastCheckpoint(kafka, admin, n.offsetsTopic, 'kafka', {
          groupIdPrefix: `${n.base}.reader.`,
          timeoutMs: 30_000,
        }).catch(() => null)
      )?.replid != null;
    const rnd = prng(1234);
    const replies: string[][] = [];
    let completedSync = false;
    for (let round = 0; round < 10; round++) {
      const p = start(master, brokers, config);
      await p.waitFor(() => handshakeReplies(p).length === 1, 'the handshake', 60_000);
      if (round === 0) {
        // Cut the first snapshot off in the middle.
        await sleep(150);
      } else if (round === 1) {
        for (let i = 0; i < 240 && !(await committed()); i++) await sleep(250);
        await sleep(Math.floor(rnd() * 300));
      } else {
        // Random points of the stream, where a transaction is nearly always open (one batch is in flight while
        // the next one grows).
        await sleep(100 + Math.floor(rnd() * 1200));
      }
      p.proc.kill('SIGKILL');
      await p.exited;
      replies.push(handshakeReplies(p));
      if (completedSync) expect(replies[round]!.every((r) => r.startsWith('+CONTINUE'))).toBe(true);
      if (!completedSync && (await committed())) completedSync = true;
      if (round >= 1) expect(completedSync).toBe(true);
    }
    await workload.stop();
    expect(workload.commands).toBeGreaterThan(1000);
    const end = await offsetOf(master);
    const last = start(master, brokers, config);
    await last.waitFor(() => handshakeReplies(last).length === 1, 'the last handshake', 60_000);
    expect(handshakeReplies(last)[0]).toMatch(/^\+CONTINUE/);
    await recorder.waitForOffset(end);
    await waitAcked(master, end, 2);
    expect((await last.stop('SIGTERM')).code).toBe(0);

    const tapped = recorder.drain();
    let got = parse(
      await readTopic(`${n.base}.0`, { minMessages: 20_002 + expectedFrom(tapped, 0).length / 2 }),
    );
    {
      // The first read may stop at a pause of the consumer on a loaded machine: once the snapshot tells where the
      // stream starts, read again requiring every message that must be there (all of it is committed: WAIT said
      // so). A real gap then fails here, naming the shortfall.
      const { end } = completedSnapshot(got);
      const want = expectedFrom(tapped, end.source.offset).length;
      const streamed = got.filter((g) => !g.event.source.snapshot).length;
      if (streamed < want)
        got = parse(
          await readTopic(`${n.base}.0`, { minMessages: got.length - streamed + want, timeoutMs: 120_000 }),
        );
    }
    const { end: snapEnd, events: snapshot } = completedSnapshot(got);
    expect(snapshot).toHaveLength(Number(snapEnd.keys));
    expect(new Set(snapshot.map((e) => JSON.stringify(e.key))).size).toBe(snapshot.length);
    expect(expectStream(got, tapped, snapEnd.source.offset)).toBeGreaterThan(1000);
    // Most rounds reached the stream after the first completed sync and continued partially.
    expect(replies.flat().filter((r) => r.startsWith('+CONTINUE')).length).toBeGreaterThanOrEqual(7);
    // The kills did land inside transactions: records of aborted transactions are in the log, hidden from
    // read_committed (the next start's InitProducerId aborted them).
    const raw = await readTopic(`${n.base}.0`, { isolation: 'read_uncommitted', minMessages: got.length });
    expect(raw.length).toBeGreaterThan(got.length);
    console.info(
      `kill -9 x10: ${got.length} committed records, ${raw.length - got.length} records of aborted transactions, ` +
        `handshakes ${JSON.stringify(replies.map((r) => r[0]!.split(' ')[0]))}`,
    );
  }, 300_000);

  it('resync with the state topic: keys gone from the master get tombstones at snapshot-end', async () => {
    const brokers = kafkaBrokers();
    const master = await server({ config: { 'repl-backlog-size': '16kb' } });
    const c = master.client();
    for (let i = 0; i < 100; i++) await c.set(`keep:${i}`, `v${i}`);
    const n = names('rt-e2e-resync');
    const config = configFile(n);
    const p1 = start(master, brokers, config);
    await p1.waitFor(() => handshakeReplies(p1).length === 1, 'the first sync', 60_000);
    for (let i = 0; i < 50; i++) await c.set(`gone:${i}`, 'v');
    await waitAcked(master, await offsetOf(master), 1);
    expect((await p1.stop('SIGTERM')).code).toBe(0);
    // While redtail is down: delete keys and write far more than the backlog holds.
    for (let i = 0; i < 50; i++) await c.del(`gone:${i}`);
    for (let i = 0; i < 40; i++) await c.del(`keep:${i}`);
    for (let i = 0; i < 200; i++) await c.set(`filler:${i % 10}`, 'x'.repeat(500));
    const p2 = start(master, brokers, config);
    await p2.waitFor(() => handshakeReplies(p2).length === 1, 'the second sync', 60_000);
    expect(handshakeReplies(p2)[0]).toMatch(/^\+FULLRESYNC/);
    await c.set('after', '1');
    await waitAcked(master, await offsetOf(master), 1);
    expect((await p2.stop('SIGTERM')).code).toBe(0);
    expect(
      p2.logs().find((l) => String(l.msg).startsWith('kafka sink: state topics reconciled'))?.tombstones,
    ).toBe(90);

    const state = latestByKey(await readTopic(`${n.base}.state.0`, { minMessages: 100 + 50 + 70 + 1 + 90 }));
    const live = [...state].filter(([, m]) => m.value !== null).map(([k]) => k);
    const actual = (await c.keys('*')).map(String);
    expect(live.sort()).toEqual(actual.sort());
    const tombstoned = [...state].filter(([, m]) => m.value === null);
    expect(tombstoned).toHaveLength(90);
    expect(tombstoned.every(([, m]) => m.headers.op === 'resync' && m.headers.db === '0')).toBe(true);
    expect(JSON.parse(state.get('keep:99')!.value!.toString())).toMatchObject({ exact: true, value: 'v99' });
    const events = parse(await readTopic(`${n.base}.0`, { minMessages: 1 }));
    expect(events.some((g) => g.event.op === 'resync')).toBe(true);
  }, 180_000);
});

describe('redtail run --sink kafka:// through a broker restart', () => {
  let kafka: PrivateKafka;
  beforeAll(() => {
    kafka = PrivateKafka.start();
  });
  afterAll(() => {
    kafka?.stop();
  });

  it('waits while the broker is down, resumes, and nothing is lost or duplicated', async () => {
    const master = await server({ config: { 'repl-backlog-size': '64mb' } });
    await populate(master);
    const recorder = await tap(master);
    const n = names('rt-e2e-brestart');
    const p = start(master, kafka.brokers, configFile(n, { retryMaxMs: 2000 }));
    await p.waitFor(() => handshakeReplies(p).length === 1, 'the first sync', 60_000);
    const workload = new Workload(master.client(), 21, 5);
    workload.start();
    scope.defer(() => workload.stop());
    await sleep(1500);
    const before = p.logs().length;
    await kafka.restartAsync();
    await sleep(2000);
    await workload.stop();
    const end = await offsetOf(master);
    await recorder.waitForOffset(end);
    await waitAcked(master, end, 2, 120_000);
    expect((await p.stop('SIGTERM')).code).toBe(0);
    // The outage was felt: transactions failed and were retried whole.
    expect(
      p
        .logs()
        .slice(before)
        .some((l) => l.msg === 'kafka sink: write failed; retrying the whole transaction'),
    ).toBe(true);
    expect(handshakeReplies(p)).toHaveLength(1);

    const tapped = recorder.drain();
    const got = parse(
      await readTopic(`${n.base}.0`, {
        brokers: kafka.brokers,
        minMessages: expectedFrom(tapped, 0).length,
      }),
    );
    const { end: snapEnd } = completedSnapshot(got);
    expect(expectStream(got, tapped, snapEnd.source.offset)).toBeGreaterThan(300);
  }, 240_000);
});
