import { createRequire, Module } from 'node:module';
import { dirname, join } from 'node:path';
import { KafkaConfigError } from './errors.js';
import { type Compress, encodeBatch, encodeProduceBody, type WireRecord } from './recordBatch.js';

/**
 * The one place redtail reaches inside kafkajs. Every module of the Kafka sink takes kafkajs from here, never from
 * 'kafkajs' directly, so the two replacements below are in place before kafkajs' producer modules load.
 *
 * Why: kafkajs 2.2.4 is frozen upstream (no release since 2023), and two thirds of the Kafka sink's CPU per event
 * went into kafkajs turning records into bytes (bench/NOTES.md, K1: an Encoder and a Buffer per record and header,
 * 64-bit varints through its `Long` emulation, CRC-32C a byte at a time) and grouping them by partition (quadratic:
 * `[...current, message]` per message). kafkajs keeps everything else: metadata, connections, SASL, InitProducerId,
 * AddPartitionsToTxn, EndTxn, retries, and the producer id, epoch and per-partition sequence numbers, which its
 * sendMessages.js puts on each partition's entry (`firstSequence`) before calling the Produce request we replace, so
 * idempotence and fencing behave exactly as with its own encoder.
 *
 * Both replacements go through Node's CommonJS module cache, keyed by kafkajs' own file names, so they are tied to
 * one exact kafkajs version (package.json pins it): with any other version nothing is replaced, and the sink refuses
 * to open (`assertKafkajsSeam`) rather than run on internals nobody checked.
 */
export const KAFKAJS_VERSION = '2.2.4';

type KafkaJs = typeof import('kafkajs');
const require = createRequire(import.meta.url);
const root = dirname(require.resolve('kafkajs/package.json'));
const file = (rel: string) => join(root, rel);
const installed = (require(file('package.json')) as { version: string }).version;

/** Modules that captured groupMessagesPerPartition (or a module that did) when they loaded, outermost first. */
const PRODUCER_CHAIN = [
  'index.js',
  'src/index.js',
  'src/producer/index.js',
  'src/producer/messageProducer.js',
  'src/producer/sendMessages.js',
  'src/producer/groupMessagesPerPartition.js',
];
/** v4..v7 wrap v3's request (they only change apiVersion); v3 is the one we provide. */
const PRODUCE_REQUESTS = [3, 4, 5, 6, 7].map((v) => `src/protocol/requests/produce/v${v}/request.js`);

export interface PartitionEntry {
  partition: number;
  messages: WireRecord[];
  firstSequence?: number;
}
export interface ProduceArgs {
  acks: number;
  timeout: number;
  transactionalId?: string | null;
  producerId?: unknown;
  producerEpoch?: number;
  compression?: number;
  topicData: Array<{ topic: string; partitions: PartitionEntry[] }>;
}
type Partitioner = (args: { topic: string; partitionMetadata: unknown[]; message: WireRecord }) => number;

/**
 * kafkajs' groupMessagesPerPartition with the same result (partition → its messages, in order) in linear time: its
 * own copies the partition's array for every message.
 */
export function groupMessagesPerPartition(args: {
  topic: string;
  partitionMetadata: unknown[];
  messages: WireRecord[];
  partitioner: Partitioner;
}): Record<number, WireRecord[]> {
  const { topic, partitionMetadata, messages, partitioner } = args;
  const result: Record<number, WireRecord[]> = {};
  if (partitionMetadata.length === 0) return result;
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message });
    const list = result[partition];
    if (list === undefined) result[partition] = [message];
    else list.push(message);
  }
  return result;
}

/** kafkajs passes the producer id as its BigInt-backed `Long` (or -1 as a number before InitProducerId). */
function toBigInt(id: unknown): bigint {
  if (typeof id === 'bigint') return id;
  if (typeof id === 'number') return BigInt(id);
  const value = (id as { value?: unknown } | null)?.value;
  if (typeof value === 'bigint') return value;
  return BigInt(String(id));
}

type Codec = { compress(encoder: { buffer: Buffer }): Promise<Buffer> };
/** kafkajs' codec table (codecs.ts registers lz4 and snappy into it), loaded once. */
let lookupCodec: ((type: number) => Codec | null) | undefined;

function codecFor(compression: number): Compress | null {
  if (compression === 0) return null;
  lookupCodec ??= (
    require(file('src/protocol/message/compression/index.js')) as { lookupCodec(type: number): Codec | null }
  ).lookupCodec;
  const codec = lookupCodec(compression);
  if (codec === null)
    throw new KafkaConfigError(
      `kafka sink: no codec for compression type ${compression} is registered in kafkajs`,
    );
  return (records) => codec.compress({ buffer: records });
}

type EncoderClass = new (size?: number) => { buf: Buffer; offset: number };
let KafkajsEncoder: EncoderClass | undefined;

/**
 * The Produce request v3 as kafkajs' request modules describe one ({apiKey, apiVersion, encode, ...}), its body
 * from recordBatch.ts. All partitions' batches are encoded (and compressed, on the libuv pool) in parallel.
 */
export function produceRequestV3(args: ProduceArgs) {
  const { acks, timeout, transactionalId = null, producerEpoch = 0, compression = 0, topicData } = args;
  return {
    apiKey: 0,
    apiVersion: 3,
    apiName: 'Produce',
    expectResponse: () => acks !== 0,
    encode: async () => {
      const producerId = toBigInt(args.producerId ?? -1);
      const compress = codecFor(compression);
      const now = Date.now();
      const topics = await Promise.all(
        topicData.map(async ({ topic, partitions }) => ({
          topic,
          partitions: await Promise.all(
            partitions.map(async (p) => {
              const header = {
                codec: compression,
                transactional: transactionalId !== null,
                producerId,
                producerEpoch,
                baseSequence: p.firstSequence ?? 0,
              };
              return { partition: p.partition, batch: await encodeBatch(p.messages, header, now, compress) };
            }),
          ),
        })),
      );
      const body = encodeProduceBody(transactionalId, acks, timeout, topics);
      // kafkajs' request framing copies `encoder.buffer` (buf[0, offset)) behind its request header.
      KafkajsEncoder ??= require(file('src/protocol/encoder.js')) as EncoderClass;
      const encoder = new KafkajsEncoder(1);
      encoder.buf = body;
      encoder.offset = body.length;
      return encoder;
    },
  };
}

function provide(rel: string, exports: unknown): void {
  const filename = file(rel);
  const m = new Module(filename);
  m.filename = filename;
  m.loaded = true;
  m.exports = exports;
  require.cache[filename] = m;
}

/**
 * Installs the replacements and returns kafkajs. Modules that captured the originals because something loaded
 * kafkajs before this module (a test importing 'kafkajs' first) are dropped from the cache and load again around
 * the replacements: that gives a second `Kafka` class, but the protocol, network and error modules stay shared.
 * `seamActive` tells whether kafkajs' producer really runs on them.
 */
function install(): KafkaJs {
  if (installed !== KAFKAJS_VERSION) return require('kafkajs') as KafkaJs;
  for (const rel of [...PRODUCER_CHAIN, ...PRODUCE_REQUESTS]) {
    // Only modules that ran: an entry not loaded yet is the ESM loader's placeholder for an `import 'kafkajs'`
    // linked but not evaluated (Node hands that very object to its evaluation and asserts it is still cached);
    // it loads later, after the replacements, and so picks them up.
    if (require.cache[file(rel)]?.loaded === true) delete require.cache[file(rel)];
  }
  provide('src/producer/groupMessagesPerPartition.js', groupMessagesPerPartition);
  provide(PRODUCE_REQUESTS[0] as string, produceRequestV3);
  quietThrottleCheck();
  return require('kafkajs') as KafkaJs;
}

/** kafkajs' RequestQueue fields that its pending-request check reads (src/network/requestQueue/index.js). */
interface RequestQueueInternals {
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  pending: unknown[];
  checkPendingRequests(): void;
}

/** kafkajs' CHECK_PENDING_REQUESTS_INTERVAL. */
const CHECK_PENDING_MS = 10;

/**
 * kafkajs' RequestQueue schedules its pending-request check at `throttledUntil - Date.now()` even when nothing is
 * throttled (`throttledUntil` is -1): a delay of minus the current time, which Node runs after 1 ms but, since Node
 * 24, also reports on stderr as a TimeoutNegativeWarning, once per process, from every redtail with a Kafka sink.
 * The same schedule, with the delay clamped to Node's own 1 ms. The class is shared whatever loaded kafkajs first,
 * so patching its prototype reaches every queue; like the rest of the seam, only on kafkajs 2.2.4.
 */
function quietThrottleCheck(): void {
  const RequestQueue = require(file('src/network/requestQueue/index.js')) as {
    prototype: { scheduleCheckPendingRequests(this: RequestQueueInternals): void };
  };
  RequestQueue.prototype.scheduleCheckPendingRequests = function (this: RequestQueueInternals) {
    if (this.throttleCheckTimeoutId) return;
    let delay = this.throttledUntil - Date.now();
    if (this.pending.length > 0 && delay <= 0) delay = CHECK_PENDING_MS;
    this.throttleCheckTimeoutId = setTimeout(
      () => {
        this.throttleCheckTimeoutId = null;
        this.checkPendingRequests();
      },
      Math.max(1, delay),
    );
  };
}

/** Whether the loaded kafkajs producer path uses the replacements (its sendMessages module required ours). */
export function seamActive(): boolean {
  const grouping = require.cache[file('src/producer/groupMessagesPerPartition.js')];
  const sendMessages = require.cache[file('src/producer/sendMessages.js')];
  return (
    grouping?.exports === groupMessagesPerPartition &&
    sendMessages?.loaded === true &&
    sendMessages.children.includes(grouping) &&
    require.cache[file(PRODUCE_REQUESTS[0] as string)]?.exports === produceRequestV3
  );
}

/** kafkajs, with redtail's record encoding and partition grouping under its producer. */
export const kafkajs: KafkaJs = install();

/** Throws at the sink's start when the installed kafkajs is not the one the replacements were written against. */
export function assertKafkajsSeam(): void {
  if (installed === KAFKAJS_VERSION) return;
  throw new KafkaConfigError(
    `kafka sink: kafkajs ${installed} is installed, but redtail's record encoder replaces internals of kafkajs ` +
      `${KAFKAJS_VERSION} (sinks/kafka/kafkajsSeam.ts); reinstall redtail's dependencies (npm ci) to get ` +
      `kafkajs ${KAFKAJS_VERSION}`,
  );
}
