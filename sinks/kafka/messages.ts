import { createHash } from 'node:crypto';
import type { Message, TopicMessages } from 'kafkajs';
import type { ChangeEvent } from '../../src/events/ChangeEvent.js';
import { encodeEventLine, encodeJsonLine } from '../../src/events/EventEncoder.js';
import { NdjsonWriter, ndjsonEncodes } from '../../src/events/NdjsonEncoder.js';
import { hugeBytesOf, measureEvent, type OversizePolicy, referenceEvent } from './oversize.js';
import { murmur2 } from './partitioner.js';
import { type StateRule, stateEffect, stateValue } from './StateTopic.js';
import type { TopicRouter } from './TopicRouter.js';

/** A record ready for kafkajs plus its estimated size on the wire. */
export interface OutMessage {
  topic: string;
  message: Message;
  size: number;
}

export interface BuiltMessages {
  messages: OutMessage[];
  /** Events replaced by a truncation marker because they exceed maxMessageBytes. */
  truncated: Array<{ topic: string; key: Buffer | null; bytes: number }>;
}

/** Record framing (length, attributes, varints, header counts) beyond key, value and header bytes. */
const RECORD_OVERHEAD = 64;

function sizeOf(key: Buffer | null, value: Buffer | null, headers: Headers): number {
  let n = RECORD_OVERHEAD + (key?.length ?? 0) + (value?.length ?? 0);
  for (const k in headers) n += k.length + (headers[k]?.length ?? 0) + 4;
  return n;
}

/** Header values as bytes (kafkajs sends a Buffer as is and would `Buffer.from` a string for every record). */
type Headers = Record<string, Buffer>;

/**
 * Header values that repeat (op names, dbs, replication ids, small seq numbers) as one Buffer each, made once: five
 * `Buffer.from` per record were a visible share of the kafkajs encoding profile (bench/NOTES.md, K1).
 */
const headerBytes = new Map<string, Buffer>();
function constant(s: string): Buffer {
  let b = headerBytes.get(s);
  if (b === undefined) {
    if (headerBytes.size > 10_000) headerBytes.clear();
    b = Buffer.from(s, 'utf8');
    headerBytes.set(s, b);
  }
  return b;
}

function headersOf(ev: ChangeEvent): Headers {
  return {
    op: constant(ev.op),
    db: constant(String(ev.db)),
    replid: constant(ev.source.replid),
    offset: Buffer.from(String(ev.source.offset), 'latin1'),
    seq: ev.source.seq < 64 ? constant(String(ev.source.seq)) : Buffer.from(String(ev.source.seq), 'latin1'),
  };
}

/**
 * The oversize policy (docs/kafka.md): the event keeps its place (same topic, key and so partition) but loses its
 * payload, replaced by `truncated: {bytes, limit, sha256}`; consumers see that the key changed and can read the
 * value from Redis. A dead-letter topic would not help: it has the same size limit, and moving the event elsewhere
 * would break per-key order. A key alone too large for a record is replaced by its SHA-256.
 */
function truncatedEvent(
  ev: ChangeEvent,
  original: { bytes: number; sha256: string },
  limit: number,
): { key: Buffer | null; value: Buffer } {
  // Not an event of the union: the payload is replaced by `truncated` (and the key perhaps by `keySha256`).
  const marker: Record<string, unknown> = { v: 1, op: ev.op, db: ev.db, source: ev.source, ts: ev.ts };
  let key = ev.key ?? null;
  if (ev.key !== undefined) marker.key = ev.key;
  if (typeof ev.type === 'string') marker.type = ev.type;
  marker.truncated = { bytes: original.bytes, limit, sha256: original.sha256 };
  let value = Buffer.from(encodeJsonLine(reorder(marker)), 'utf8');
  if (key !== null && value.length + key.length * 2 + RECORD_OVERHEAD > limit) {
    const digest = createHash('sha256').update(key).digest('hex');
    delete marker.key;
    marker.keySha256 = digest;
    key = Buffer.from(`sha256:${digest}`, 'utf8');
    value = Buffer.from(encodeJsonLine(reorder(marker)), 'utf8');
  }
  return { key, value };
}

const EMPTY = Buffer.alloc(0);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Keeps the JSON field order of real events: envelope and payload first, source and ts last. */
function reorder(ev: Record<string, unknown>): Record<string, unknown> {
  const { source, ts, ...rest } = ev;
  return { ...rest, source, ts };
}

export interface BuildOptions {
  maxMessageBytes: number;
  /** What becomes of an event with a huge byte string (sinks/kafka/oversize.ts); default `truncate`. */
  oversize?: OversizePolicy;
  stateRules?: Record<string, StateRule>;
}

/**
 * Turns events into records: the event topic gets every event (key = Redis key bytes so a key's events share a
 * partition and keep their order; keyless events such as FLUSHDB go to partition 0), the state topic the records
 * the op table in StateTopic.ts asks for.
 */
export function buildMessages(
  events: ChangeEvent[],
  router: TopicRouter,
  options: BuildOptions,
): BuiltMessages {
  const limit = options.maxMessageBytes;
  const messages: OutMessage[] = [];
  const truncated: BuiltMessages['truncated'] = [];
  // An event whose huge byte strings alone exceed the limit is never encoded whole (issue 16): a 512 MB value's
  // JSON does not fit in one string. It is referenced or measured in chunks (sinks/kafka/oversize.ts).
  const { values, tooBigAt } = encodeValues(events, limit);
  for (let i = 0; i < events.length; i++) {
    const ev = events[i] as ChangeEvent;
    const topic = router.topicFor(ev);
    const headers = headersOf(ev);
    let key: Buffer | null = ev.key ?? null;
    const tooBig = tooBigAt[i] === true;
    let value: Buffer = values[i] ?? EMPTY;
    let size = tooBig ? Number.POSITIVE_INFINITY : sizeOf(key, value, headers);
    let cut = false;
    if (size > limit && options.oversize === 'reference') {
      const ref = referenceEvent(ev);
      const refHeaders = { ...headers, oversize: constant('reference') };
      if (sizeOf(key, ref, refHeaders) <= limit) {
        value = ref;
        headers.oversize = constant('reference');
        size = sizeOf(key, value, headers);
        cut = true;
      }
    }
    if (size > limit) {
      const measured = tooBig ? measureEvent(ev) : { bytes: value.length, sha256: sha256(value) };
      truncated.push({ topic, key, bytes: measured.bytes });
      ({ key, value } = truncatedEvent(ev, measured, limit));
      headers.truncated = constant('1');
      size = sizeOf(key, value, headers);
      cut = true;
    }
    const message: Message = { key, value, headers, timestamp: String(ev.ts) };
    if (key === null) message.partition = 0;
    messages.push({ topic, message, size });

    const stateTopic = router.stateTopicFor(ev);
    if (stateTopic === null) continue;
    let effect = stateEffect(ev, options.stateRules);
    if (effect === 'ignore') continue;
    if (cut && effect === 'value') effect = 'unknown';
    let stateVal = effect === 'tombstone' ? null : Buffer.from(stateValue(ev, effect), 'utf8');
    const stateHeaders = { op: constant(ev.op), db: constant(String(ev.db)) };
    if (stateVal !== null && sizeOf(key, stateVal, stateHeaders) > limit) {
      stateVal = Buffer.from(stateValue(ev, 'unknown'), 'utf8');
    }
    if (sizeOf(key, stateVal, stateHeaders) > limit) continue;
    messages.push({
      topic: stateTopic,
      message: { key, value: stateVal, headers: stateHeaders, timestamp: String(ev.ts) },
      size: sizeOf(key, stateVal, stateHeaders),
    });
  }
  return { messages, truncated };
}

/**
 * One writer per process: buildMessages is synchronous, so no two batches share it at once. It leaves byte strings of
 * HUGE_VALUE_BYTES or more out of its lines and counts them (`deferredBytes`), which is how an event's huge values are
 * found: while it is encoded, not by a second walk over its fields (bench/NOTES.md, "Kafka huge values").
 */
const writer = new NdjsonWriter(1 << 20).deferHuge();
/**
 * Every event's NDJSON line (the shared encoder, byte for byte what the file sink writes, without the newline) as
 * views into one Buffer per batch: one encoding and one copy for the batch instead of a JSON string and a
 * `Buffer.from` per event. `tooBigAt[i]`: event i's huge byte strings alone reach `limit`; its value is left empty
 * for the caller to reference or measure.
 */
function encodeValues(events: ChangeEvent[], limit: number): { values: Buffer[]; tooBigAt: boolean[] } {
  writer.reset();
  const ends = new Array<number>(events.length);
  const tooBigAt = new Array<boolean>(events.length).fill(false);
  let foreign: Map<number, Buffer> | null = null;
  for (let i = 0; i < events.length; i++) {
    const ev = events[i] as ChangeEvent;
    let own: Buffer | null = null;
    if (ndjsonEncodes(ev.op)) {
      const start = writer.length;
      const deferred = writer.deferredBytes;
      writer.event(ev);
      const huge = writer.deferredBytes - deferred;
      if (huge > 0) {
        // The line lacks its huge values: drop it, and either leave the event to the oversize policy or encode it
        // whole (it fits).
        writer.truncate(start);
        if (huge >= limit) tooBigAt[i] = true;
        else {
          // Rare (maxMessageBytes above 1 MiB): a writer of its own, dropped with the record, so no buffer the
          // size of a huge line stays allocated after it.
          const whole = new NdjsonWriter(huge + (1 << 16));
          whole.event(ev);
          own = whole.view().subarray(0, whole.length - 1);
        }
      }
    } else if (hugeBytesOf(ev) >= limit) tooBigAt[i] = true;
    else own = Buffer.from(encodeEventLine(ev), 'utf8');
    if (own !== null || tooBigAt[i]) {
      // An empty line for an event too big keeps the views' positions in step.
      foreign ??= new Map();
      foreign.set(i, own ?? EMPTY);
    }
    ends[i] = writer.length - 1;
  }
  const all = Buffer.from(writer.view());
  const values = new Array<Buffer>(events.length);
  let start = 0;
  for (let i = 0; i < events.length; i++) {
    const end = ends[i] as number;
    const own = foreign?.get(i);
    if (own !== undefined) {
      values[i] = own;
      continue;
    }
    values[i] = all.subarray(start, end);
    start = end + 1;
  }
  return { values, tooBigAt };
}

/**
 * Upper bound of one Produce request when the partition of each record is known. The broker's limits are per record
 * batch, i.e. per partition (`max.message.bytes`, ~1 MB by default), and per request only at
 * `socket.request.max.bytes` (100 MB by default); this stays far below the latter.
 */
export const MAX_REQUEST_BYTES = 16_000_000;

/** The partition count of a topic, when known (TopicManager), to bound requests per partition batch. */
export type PartitionCount = (topic: string) => number | undefined;

/**
 * Splits records into produce requests, keeping record order within each topic. Each chunk becomes one `sendBatch`
 * inside the same transaction, and the sends of a transaction go one after the other (kafkajs holds a per-broker
 * lock around each Produce), so fewer, larger requests save round trips. A record's partition is computed as the
 * producer will (partitioner.ts) when its topic's partition count is known: then `maxBytes` (estimated, before
 * compression) bounds each partition's batch, which is what the broker limits, and MAX_REQUEST_BYTES the request.
 * Otherwise `maxBytes` bounds all of that topic's records in the request, as one batch would be.
 */
export function chunkMessages(
  messages: OutMessage[],
  maxBytes: number,
  partitionCount: PartitionCount = () => undefined,
): TopicMessages[][] {
  const chunks: TopicMessages[][] = [];
  let current = new Map<string, Message[]>();
  /** Bytes per topic and partition in the current chunk; partition -1: the topic as a whole. */
  let batches = new Map<string, Map<number, number>>();
  let bytes = 0;
  const flush = () => {
    if (current.size === 0) return;
    chunks.push([...current].map(([topic, msgs]) => ({ topic, messages: msgs })));
    current = new Map();
    batches = new Map();
    bytes = 0;
  };
  for (const m of messages) {
    const partition = partitionOf(m, partitionCount(m.topic));
    let batch = batches.get(m.topic)?.get(partition) ?? 0;
    if (bytes > 0 && (batch + m.size > maxBytes || bytes + m.size > MAX_REQUEST_BYTES)) {
      flush();
      batch = 0;
    }
    let list = current.get(m.topic);
    if (!list) {
      list = [];
      current.set(m.topic, list);
    }
    list.push(m.message);
    let perPartition = batches.get(m.topic);
    if (!perPartition) {
      perPartition = new Map();
      batches.set(m.topic, perPartition);
    }
    perPartition.set(partition, batch + m.size);
    bytes += m.size;
  }
  flush();
  return chunks;
}

/** The record's partition as createJavaCompatiblePartitioner picks it, or -1 when it cannot be known here. */
function partitionOf(m: OutMessage, count: number | undefined): number {
  if (count === undefined || count < 1) return -1;
  const { partition, key } = m.message;
  if (partition !== undefined && partition !== null) return partition;
  // Round-robin (no key, no partition; the sink always sets one or the other): sized with the topic's -1 bucket.
  if (key === null || key === undefined) return -1;
  const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : key;
  return (murmur2(bytes) & 0x7fffffff) % count;
}
