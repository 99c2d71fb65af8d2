import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createKafkaSink,
  type KafkaSink,
  type KafkaSinkOptions,
  KafkaTopicMissingError,
} from '../../../sinks/kafka/index.js';
import { createTopic, kafkaBrokers, readTopic, topicConfig, uniqueName } from '../../harness/kafka.js';
import { captureLogger, event, position, REPLID, setBatch, T0 } from './fixtures/events.js';

const open: KafkaSink[] = [];
afterAll(async () => {
  for (const s of open) await s.close();
});

function names() {
  const base = uniqueName('rt');
  return {
    base,
    topic: `${base}.<db>`,
    offsetsTopic: `${base}.offsets`,
    stateTopic: `${base}.state.<db>`,
    name: `sink-${base}`,
    transactionalId: `txn-${base}`,
  };
}

function sink(n: ReturnType<typeof names>, extra: KafkaSinkOptions = {}): KafkaSink {
  const spec = `kafka://${kafkaBrokers().join(',')}?topic=${encodeURIComponent(n.topic)}&offsetsTopic=${n.offsetsTopic}`;
  const s = createKafkaSink(spec, {
    name: n.name,
    transactionalId: n.transactionalId,
    partitions: 3,
    logger: captureLogger(),
    ...extra,
  });
  open.push(s);
  return s;
}

describe('KafkaSink against a real broker', () => {
  beforeAll(() => {
    kafkaBrokers();
  });

  it('writes batches with checkpoints in transactions; read_committed sees every event once, per key in order', async () => {
    const n = names();
    const s = sink(n);
    expect(await s.open()).toBeNull();
    expect(s.mode).toBe('exactly-once');
    expect((await topicConfig(n.offsetsTopic))['cleanup.policy']).toBe('compact');

    const batches = [setBatch(100, 50), setBatch(150, 50), setBatch(200, 1)];
    for (const b of batches) await s.write(b);
    await s.write({ events: [], checkpoint: position(260) });

    const got = await readTopic(`${n.base}.0`, { minMessages: 101 });
    expect(got).toHaveLength(101);
    const values = got.map((m) => JSON.parse(m.value!.toString()));
    expect(new Set(values.map((v) => v.source.offset)).size).toBe(101);
    // Per key: offsets strictly increasing, and every event of a key on one partition.
    const byKey = new Map<string, { partition: number; offsets: number[] }>();
    for (const m of got) {
      const key = m.key!.toString();
      const v = JSON.parse(m.value!.toString());
      expect(v.key).toBe(key);
      const entry = byKey.get(key) ?? { partition: m.partition, offsets: [] };
      expect(m.partition).toBe(entry.partition);
      entry.offsets.push(v.source.offset);
      byKey.set(key, entry);
    }
    for (const { offsets } of byKey.values()) expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(new Set([...byKey.values()].map((e) => e.partition)).size).toBeGreaterThan(1);

    const first = got.find((m) => JSON.parse(m.value!.toString()).source.offset === 100)!;
    expect(first.headers).toMatchObject({ op: 'set', db: '0', replid: REPLID, offset: '100', seq: '0' });
    expect(JSON.parse(first.value!.toString())).toEqual({
      v: 1,
      op: 'set',
      db: 0,
      key: 'key:0',
      type: 'string',
      value: 'v100',
      source: { replid: REPLID, offset: 100, seq: 0, snapshot: false },
      ts: T0 + 100,
    });
    expect(first.timestamp).toBe(String(T0 + 100));
    expect(s.stats).toMatchObject({ mode: 'exactly-once', batches: 4, events: 101, truncated: 0 });

    const offsets = await readTopic(n.offsetsTopic, { minMessages: 4 });
    expect(offsets.every((m) => m.key!.toString() === n.name)).toBe(true);
    expect(JSON.parse(offsets.at(-1)!.value!.toString())).toMatchObject({
      sink: n.name,
      replid: REPLID,
      offset: 260,
      db: 0,
    });
    await s.close();

    const again = sink(n);
    expect(await again.open()).toEqual(position(260));
  });

  it('commits batches handed over while a transaction is in flight together, in order, with the last checkpoint', async () => {
    const n = names();
    // No time to stay open for (maxTransactionMs 0): the batches queued behind a transaction wait for the next one.
    const s = sink(n, { maxTransactionMs: 0 });
    await s.open();
    // Not awaited one by one, as the pipeline hands them over: the first goes alone, the four queued behind its
    // transaction go into the next one.
    const batches = [
      setBatch(100, 30),
      setBatch(130, 30),
      setBatch(160, 30),
      setBatch(190, 30),
      setBatch(220, 30),
    ];
    await Promise.all(batches.map((b) => s.write(b)));
    expect(s.stats).toMatchObject({ batches: 5, transactions: 2, events: 150 });
    const got = await readTopic(`${n.base}.0`, { minMessages: 150 });
    expect(got).toHaveLength(150);
    const perKey = new Map<string, number[]>();
    for (const m of got) {
      const v = JSON.parse(m.value!.toString());
      perKey.set(v.key, [...(perKey.get(v.key) ?? []), v.source.offset]);
    }
    expect([...perKey.values()].flat().sort((a, b) => a - b)).toEqual(
      Array.from({ length: 150 }, (_, i) => 100 + i),
    );
    for (const offsets of perKey.values()) expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    const offsets = await readTopic(n.offsetsTopic, { minMessages: 2 });
    expect(offsets).toHaveLength(2);
    expect(JSON.parse(offsets[1]!.value!.toString())).toMatchObject({ offset: 249 });
    await s.close();
    expect(await sink(n).open()).toEqual(position(249));
  });

  it('sends batches that arrive while a transaction is open in it, within maxTransactionMs; the last checkpoint wins', async () => {
    const n = names();
    const s = sink(n, { maxTransactionMs: 60_000 });
    await s.open();
    // The first batch opens the transaction alone; the four handed over while it sends join it instead of waiting
    // for a transaction of their own.
    const batches = [100, 130, 160, 190, 220].map((from) => setBatch(from, 30));
    await Promise.all(batches.map((b) => s.write(b)));
    expect(s.stats).toMatchObject({ batches: 5, transactions: 1, events: 150 });
    const got = await readTopic(`${n.base}.0`, { minMessages: 150 });
    expect(got.map((m) => JSON.parse(m.value!.toString()).source.offset).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 150 }, (_, i) => 100 + i),
    );
    const perKey = new Map<string, number[]>();
    for (const m of got) {
      const v = JSON.parse(m.value!.toString());
      perKey.set(v.key, [...(perKey.get(v.key) ?? []), v.source.offset]);
    }
    for (const offsets of perKey.values()) expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    // One checkpoint record per part of the transaction, the last one at the last batch's position.
    const offsets = await readTopic(n.offsetsTopic, { minMessages: 2 });
    expect(offsets).toHaveLength(2);
    expect(JSON.parse(offsets[0]!.value!.toString())).toMatchObject({ offset: 129 });
    expect(JSON.parse(offsets[1]!.value!.toString())).toMatchObject({ offset: 249 });
    await s.close();
    expect(await sink(n).open()).toEqual(position(249));
  });

  it('closes a transaction that has been open maxTransactionMs: later batches go into the next one', async () => {
    const n = names();
    // 1 ms: the first batch's sends (topic creation, AddPartitionsToTxn, Produce) take longer than that.
    const s = sink(n, { maxTransactionMs: 1 });
    await s.open();
    const batches = [100, 130, 160].map((from) => setBatch(from, 30));
    await Promise.all(batches.map((b) => s.write(b)));
    expect(s.stats).toMatchObject({ batches: 3, transactions: 2, events: 90 });
    await s.close();
    expect(await sink(n).open()).toEqual(position(189));
  });

  it('fails every batch queued behind one that cannot commit, and every later write', async () => {
    const n = names();
    // createTopics=false and no event topic: the first transaction fails for good (a missing topic is fatal).
    await createTopic(n.offsetsTopic, { configs: { 'cleanup.policy': 'compact' } });
    const s = sink(n, { createTopics: false });
    await s.open();
    const results = await Promise.allSettled([s.write(setBatch(1, 3)), s.write(setBatch(4, 3))]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    await expect(s.write(setBatch(7, 3))).rejects.toBeInstanceOf(KafkaTopicMissingError);
    expect(s.stats.transactions).toBe(0);
  });

  it('keeps the previous checkpoint for batches without one (snapshot loading)', async () => {
    const n = names();
    const s = sink(n);
    await s.open();
    await s.write(setBatch(10, 5));
    await s.write({
      events: [event('snapshot', 'a', 20, { type: 'string', value: Buffer.from('x') })],
      checkpoint: null,
    });
    await s.close();
    const again = sink(n);
    expect(await again.open()).toEqual(position(14));
  });

  it('routes by db, key prefix and type; binary keys stay bytes', async () => {
    const n = names();
    const s = sink(n, {
      routes: [
        { prefix: 'session:', topic: `${n.base}.sessions` },
        { type: 'hash', db: [0, 1], topic: `${n.base}.hashes.<db>` },
      ],
    });
    await s.open();
    const bin = Buffer.from([0xff, 0x00, 0xfe]);
    await s.write({
      events: [
        event('set', 'session:1', 1, { type: 'string', value: Buffer.from('s') }),
        event('hset', 'h', 2, { type: 'hash', fields: [[Buffer.from('f'), Buffer.from('v')]] }, 1),
        event('set', bin, 3, { type: 'string', value: bin }, 2),
        event('flushdb', undefined, 4, {}, 2),
      ],
      checkpoint: position(4, 2),
    });
    expect((await readTopic(`${n.base}.sessions`, { minMessages: 1 }))[0]!.key!.toString()).toBe('session:1');
    const h = await readTopic(`${n.base}.hashes.1`, { minMessages: 1 });
    expect(JSON.parse(h[0]!.value!.toString()).fields).toEqual([['f', 'v']]);
    const db2 = await readTopic(`${n.base}.2`, { minMessages: 2 });
    const binMsg = db2.find((m) => m.key !== null)!;
    expect(binMsg.key).toEqual(bin);
    expect(JSON.parse(binMsg.value!.toString()).key).toEqual({ base64: bin.toString('base64') });
    const flush = db2.find((m) => m.key === null)!;
    expect(flush.partition).toBe(0);
    expect(flush.headers.op).toBe('flushdb');
  });

  it('writes the compacted state topic: values, tombstones for deletes and expiries, markers for inexact ops', async () => {
    const n = names();
    const s = sink(n, { stateTopic: n.stateTopic });
    await s.open();
    await s.write({
      events: [
        event('snapshot', 'a', 1, { type: 'hash', value: { f: Buffer.from('1') } }),
        event('snapshot', 'b', 1, { type: 'string', value: Buffer.from('B') }, 0, 1),
        event('set', 'c', 2, { type: 'string', value: Buffer.from('C') }),
        event('del', 'a', 3),
        event('expired', 'b', 4),
        event('incr', 'c', 5, { type: 'string', by: 1 }),
        event('flushdb', undefined, 6),
      ],
      checkpoint: position(6),
    });
    const state = `${n.base}.state.0`;
    expect((await topicConfig(state))['cleanup.policy']).toBe('compact');
    const got = await readTopic(state, { minMessages: 6 });
    const rows = got.map((m) => [
      m.key!.toString(),
      m.value === null ? null : JSON.parse(m.value.toString()),
    ]);
    expect(
      rows.map(([k, v]) => `${k}:${v === null ? 'tombstone' : v.exact ? 'exact' : 'marker'}`).sort(),
    ).toEqual(['a:exact', 'a:tombstone', 'b:exact', 'b:tombstone', 'c:exact', 'c:marker']);
    const c = rows.filter(([k]) => k === 'c').map(([, v]) => v);
    expect(c[0]).toMatchObject({ exact: true, type: 'string', value: 'C', source: { offset: 2 } });
    expect(c[1]).toMatchObject({ exact: false, op: 'incr', source: { offset: 5 } });
    expect(rows.find(([k, v]) => k === 'a' && v !== null)![1]).toMatchObject({
      type: 'hash',
      value: { f: '1' },
    });
  });

  it('tombstones state-topic keys a full resync snapshot lacks, at its snapshot-end, across batches and a reopen', async () => {
    const n = names();
    const s = sink(n, { stateTopic: n.stateTopic });
    await s.open();
    const snap = (key: string, offset: number, seq: number, db = 0) =>
      event('snapshot', key, offset, { type: 'string', value: Buffer.from(key) }, db, seq);
    const ctl = (op: string, offset: number, fields: Record<string, unknown> = {}) =>
      event(op, undefined, offset, fields);
    await s.write({
      events: [
        ctl('snapshot-begin', 1, { resync: false }),
        snap('a', 1, 0),
        snap('b', 1, 1),
        snap('c', 1, 2),
        snap('x', 1, 3, 1),
        ctl('snapshot-end', 1, { keys: 4 }),
        event('set', 'd', 2, { type: 'string', value: Buffer.from('D') }),
        event('del', 'c', 3),
      ],
      checkpoint: position(3),
    });
    expect(s.stats.resyncTombstones).toBe(0);
    await s.close();
    // A restart whose PSYNC the master refuses: the new snapshot has a and x only, loaded over three batches.
    const again = sink(n, { stateTopic: n.stateTopic });
    expect(await again.open()).toEqual(position(3));
    await again.write({
      events: [
        event('set', 'e', 4, { type: 'string', value: Buffer.from('E') }),
        ctl('resync', 10),
        ctl('snapshot-begin', 10, { resync: true }),
      ],
      checkpoint: null,
    });
    await again.write({ events: [snap('a', 10, 0)], checkpoint: null });
    await again.write({
      events: [
        snap('x', 10, 1, 1),
        ctl('snapshot-end', 10, { keys: 2 }),
        event('set', 'f', 11, { type: 'string', value: Buffer.from('F') }),
      ],
      checkpoint: position(11),
    });
    expect(again.stats.resyncTombstones).toBe(3);
    const latest = async (topic: string) => {
      const out = new Map<string, string | null>();
      for (const m of await readTopic(topic))
        out.set(m.key!.toString(), m.value === null ? null : m.value.toString());
      return out;
    };
    const db0 = await latest(`${n.base}.state.0`);
    expect(
      [...db0]
        .filter(([, v]) => v !== null)
        .map(([k]) => k)
        .sort(),
    ).toEqual(['a', 'f']);
    expect(
      [...db0]
        .filter(([, v]) => v === null)
        .map(([k]) => k)
        .sort(),
    ).toEqual(['b', 'c', 'd', 'e']);
    const db1 = await latest(`${n.base}.state.1`);
    expect([...db1.keys()]).toEqual(['x']);
    expect(db1.get('x')).not.toBeNull();
    // The tombstones are committed with the snapshot-end's checkpoint.
    const tombs = (await readTopic(`${n.base}.state.0`)).filter((m) => m.headers.op === 'resync');
    expect(tombs.map((m) => m.key!.toString()).sort()).toEqual(['b', 'd', 'e']);
  });

  it('splits a batch larger than maxBatchBytes into several sends of one transaction', async () => {
    const n = names();
    const s = sink(n, { maxBatchBytes: 4096 });
    await s.open();
    const big = setBatch(1000, 400, 40);
    await s.write(big);
    const got = await readTopic(`${n.base}.0`, { minMessages: 400 });
    expect(got).toHaveLength(400);
    const again = sink(n);
    expect(await again.open()).toEqual(position(1399));
  });

  it('falls back to an idempotent at-least-once producer when exactlyOnce=false', async () => {
    const n = names();
    const logger = captureLogger();
    const s = sink(n, { exactlyOnce: false, logger });
    await s.open();
    expect(s.mode).toBe('at-least-once');
    expect(logger.lines.some((l) => l.level === 'warn' && /AT-LEAST-ONCE/.test(l.msg ?? ''))).toBe(true);
    await s.write(setBatch(1, 3));
    expect(await readTopic(`${n.base}.0`, { minMessages: 3 })).toHaveLength(3);
    const again = sink(n, { exactlyOnce: false });
    expect(await again.open()).toEqual(position(3));
  });
});
