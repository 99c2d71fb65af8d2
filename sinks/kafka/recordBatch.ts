/**
 * Kafka's produce wire format, encoded straight into Buffers: no I/O here, and nothing but the bytes (the seam that
 * hands these bytes to kafkajs is kafkajsSeam.ts). The grammar, as Kafka's DefaultRecordBatch/DefaultRecord (KIP-98)
 * and the Produce request v3–v7 define it; all integers big-endian, varints are zigzag LEB128 as in protobuf:
 *
 *   ProduceRequest v3..v7 => transactional_id acks timeout [topic_data]
 *     transactional_id => NULLABLE_STRING (int16 length, -1 = null)     acks => INT16     timeout => INT32
 *     topic_data => topic:STRING [partition:INT32 record_set:RECORDS (int32 size + one RecordBatch)]   (arrays: int32 count)
 *
 *   RecordBatch (magic 2) =>
 *     baseOffset INT64 (0 from producers) | batchLength INT32 (bytes after this field) | partitionLeaderEpoch INT32
 *     magic INT8 = 2 | crc UINT32 = CRC-32C of every byte from attributes to the end of the batch
 *     attributes INT16 (bits 0-2 compression: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd; bit 3 timestamp type;
 *       bit 4 transactional; bit 5 control) | lastOffsetDelta INT32 | baseTimestamp INT64 | maxTimestamp INT64
 *     producerId INT64 | producerEpoch INT16 | baseSequence INT32 | records count INT32
 *     records: the concatenated Records below, compressed as one block when attributes say so
 *
 *   Record => length VARINT (of the rest of the record) | attributes INT8 (unused, 0)
 *     timestampDelta VARLONG (from baseTimestamp) | offsetDelta VARINT (index in the batch)
 *     keyLength VARINT (-1 = null) key | valueLength VARINT (-1 = null) value
 *     headers count VARINT, then per header: keyLength VARINT key (UTF-8) | valueLength VARINT (-1 = null) value
 *
 * Byte for byte what kafkajs 2.2.4 writes for the same records (test/sinks/kafka/recordBatch.test.ts compares them):
 * partitionLeaderEpoch 0, baseTimestamp the smallest record timestamp and maxTimestamp the largest, records without
 * a timestamp stamped with one `now` per request. What differs is the cost: kafkajs allocates an Encoder per record
 * and per header and emulates 64-bit varints with `Long`; here every record is sized once and written once into one
 * Buffer per partition (bench/NOTES.md, K1 and K5).
 */
import { crc32c } from './crc32c.js';

/** A record as kafkajs' `Message` carries it (the sink passes Buffers; strings are encoded as UTF-8, as kafkajs does). */
export interface WireRecord {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: Record<string, WireHeaderValue | WireHeaderValue[] | undefined>;
  /** Milliseconds since the epoch, as a number or a decimal string (kafkajs' `Message.timestamp`). */
  timestamp?: string | number | null;
}
export type WireHeaderValue = Buffer | string | null;

/** Bytes of a RecordBatch before its records. */
export const BATCH_HEADER_BYTES = 61;
const MAGIC = 2;
const TRANSACTIONAL = 0x10;
const CODEC_MASK = 0x07;

/** The fields of a RecordBatch header that come from the producer (kafkajs' eos manager) and the request. */
export interface BatchHeader {
  /** Compression codec id (the attributes' low three bits). */
  codec: number;
  transactional: boolean;
  producerId: bigint;
  producerEpoch: number;
  baseSequence: number;
}

/** Records laid out for one partition: the records section, written after `headroom` bytes left free. */
export interface EncodedRecords {
  buffer: Buffer;
  count: number;
  baseTimestamp: number;
  maxTimestamp: number;
}

const zigzag = (n: number): number => ((n << 1) ^ (n >> 31)) >>> 0;

function uvarintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}
const varintSize = (n: number): number => uvarintSize(zigzag(n));

function writeUvarint(buf: Buffer, o: number, v: number): number {
  while (v >= 0x80) {
    buf[o++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[o++] = v;
  return o;
}
const writeVarint = (buf: Buffer, o: number, n: number): number => writeUvarint(buf, o, zigzag(n));

/** A VARLONG's zigzag value as a Number: exact for |n| < 2^52 (timestamps deltas are far below that). */
const zigzag64 = (n: number): number => (n >= 0 ? n * 2 : -n * 2 - 1);

function varlongSize(n: number): number {
  let z = zigzag64(n);
  if (z < 0x1_0000_0000) return uvarintSize(z);
  let size = 1;
  for (; z >= 0x80; size++) z = Math.floor(z / 0x80);
  return size;
}

function writeVarlong(buf: Buffer, o: number, n: number): number {
  let z = zigzag64(n);
  if (z < 0x1_0000_0000) return writeUvarint(buf, o, z);
  while (z >= 0x80) {
    buf[o++] = (z % 0x80) | 0x80;
    z = Math.floor(z / 0x80);
  }
  buf[o++] = z;
  return o;
}

/**
 * Copies `src` to `buf[o]`. TypedArray `set` costs ~16 ns whatever the size up to a few hundred bytes (`Buffer.copy`
 * ~35 ns, a byte loop ~0.8 ns a byte), so only the tiny header values (op, db, seq) are copied byte by byte.
 */
function put(buf: Buffer, o: number, src: Buffer): number {
  const n = src.length;
  if (n < 8) for (let i = 0; i < n; i++) buf[o + i] = src[i] as number;
  else buf.set(src, o);
  return o + n;
}

function bytesOf(v: Buffer | string | number | null | undefined): Buffer | null {
  if (v === null || v === undefined) return null;
  return v instanceof Buffer ? v : Buffer.from(String(v), 'utf8');
}

/** Header names repeat in every record: their UTF-8 bytes are made once. */
const headerNames = new Map<string, Buffer>();
function nameBytes(s: string): Buffer {
  let b = headerNames.get(s);
  if (b === undefined) {
    if (headerNames.size > 1000) headerNames.clear();
    b = Buffer.from(s, 'utf8');
    headerNames.set(s, b);
  }
  return b;
}

const fieldSize = (b: Buffer | null): number => (b === null ? 1 : varintSize(b.length) + b.length);

function writeField(buf: Buffer, o: number, b: Buffer | null): number {
  if (b === null) return writeVarint(buf, o, -1);
  return put(buf, writeUvarint(buf, o, zigzag(b.length)), b);
}

/** Bytes of a record's headers section (count included). */
function headersSize(headers: WireRecord['headers']): number {
  if (headers === undefined) return 1;
  let count = 0;
  let size = 0;
  for (const name in headers) {
    const v = headers[name];
    const n = nameBytes(name).length;
    if (Array.isArray(v)) {
      for (const one of v) size += varintSize(n) + n + fieldSize(bytesOf(one));
      count += v.length;
    } else {
      size += varintSize(n) + n + fieldSize(bytesOf(v));
      count++;
    }
  }
  return varintSize(count) + size;
}

function writeHeaders(buf: Buffer, o: number, headers: WireRecord['headers']): number {
  if (headers === undefined) return writeVarint(buf, o, 0);
  let count = 0;
  for (const name in headers) {
    const v = headers[name];
    count += Array.isArray(v) ? v.length : 1;
  }
  o = writeVarint(buf, o, count);
  for (const name in headers) {
    const v = headers[name];
    const key = nameBytes(name);
    if (Array.isArray(v)) for (const one of v) o = writeField(buf, writeField(buf, o, key), bytesOf(one));
    else o = writeField(buf, writeField(buf, o, key), bytesOf(v));
  }
  return o;
}

/** Record timestamps as numbers (records without one count as `now`, as kafkajs stamps them), parsed once. */
function timestampsOf(
  records: readonly WireRecord[],
  now: number,
): { ts: Float64Array; base: number; max: number } {
  const ts = new Float64Array(records.length);
  let base = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  let stamped = false;
  for (let i = 0; i < records.length; i++) {
    const t = (records[i] as WireRecord).timestamp;
    if (t === null || t === undefined) {
      ts[i] = now;
      continue;
    }
    const n = Number(t);
    ts[i] = n;
    if (n < base) base = n;
    if (n > max) max = n;
    stamped = true;
  }
  // kafkajs takes base and max from the stamped records only (and `now` when none is): deltas may then be
  // negative for unstamped records, which a zigzag varlong carries.
  return stamped ? { ts, base, max } : { ts, base: now, max: now };
}

/**
 * The records section of one partition's batch, after `headroom` free bytes (BATCH_HEADER_BYTES when the section
 * goes out uncompressed, so the batch header is written in front of it without a copy). Two passes: sizes first
 * (each record starts with its own length), then one write per field into a Buffer of the exact size.
 */
export function encodeRecords(records: readonly WireRecord[], now: number, headroom: number): EncodedRecords {
  const n = records.length;
  const { ts, base, max } = timestampsOf(records, now);
  const keys = new Array<Buffer | null>(n);
  const values = new Array<Buffer | null>(n);
  const bodies = new Int32Array(n);
  let total = headroom;
  for (let i = 0; i < n; i++) {
    const r = records[i] as WireRecord;
    const key = bytesOf(r.key);
    const value = bytesOf(r.value);
    keys[i] = key;
    values[i] = value;
    const body =
      1 +
      varlongSize((ts[i] as number) - base) +
      varintSize(i) +
      fieldSize(key) +
      fieldSize(value) +
      headersSize(r.headers);
    bodies[i] = body;
    total += varintSize(body) + body;
  }
  const buf = Buffer.allocUnsafe(total);
  let o = headroom;
  for (let i = 0; i < n; i++) {
    o = writeVarint(buf, o, bodies[i] as number);
    buf[o++] = 0;
    o = writeVarlong(buf, o, (ts[i] as number) - base);
    o = writeVarint(buf, o, i);
    o = writeField(buf, o, keys[i] as Buffer | null);
    o = writeField(buf, o, values[i] as Buffer | null);
    o = writeHeaders(buf, o, (records[i] as WireRecord).headers);
  }
  if (o !== total)
    throw new Error(`record batch encoder: wrote ${o - headroom} bytes of ${total - headroom} sized`);
  return { buffer: buf, count: n, baseTimestamp: base, maxTimestamp: max };
}

/**
 * Writes the 61-byte batch header into `batch[0, 61)` (the records section follows it) and the CRC-32C over
 * attributes..end, which the broker verifies (DefaultRecordBatch.ensureValid) before appending.
 */
export function sealBatch(batch: Buffer, records: EncodedRecords, header: BatchHeader): Buffer {
  batch.writeBigInt64BE(0n, 0);
  batch.writeInt32BE(batch.length - 12, 8);
  batch.writeInt32BE(0, 12);
  batch.writeInt8(MAGIC, 16);
  batch.writeInt16BE((header.codec & CODEC_MASK) | (header.transactional ? TRANSACTIONAL : 0), 21);
  batch.writeInt32BE(records.count - 1, 23);
  batch.writeBigInt64BE(BigInt(records.baseTimestamp), 27);
  batch.writeBigInt64BE(BigInt(records.maxTimestamp), 35);
  batch.writeBigInt64BE(header.producerId, 43);
  batch.writeInt16BE(header.producerEpoch, 51);
  batch.writeInt32BE(header.baseSequence, 53);
  batch.writeInt32BE(records.count, 57);
  batch.writeUInt32BE(crc32c(batch, 21, batch.length), 17);
  return batch;
}

/** Compresses a records section (the codec's promise; zlib and the Node-API codecs run off the main thread). */
export type Compress = (records: Buffer) => Promise<Buffer>;

/**
 * One partition's RecordBatch. Uncompressed, the records are written behind the header's room and sealed in
 * place; compressed, the records section is compressed whole (as Kafka requires) and framed behind a new header.
 */
export async function encodeBatch(
  records: readonly WireRecord[],
  header: BatchHeader,
  now: number,
  compress: Compress | null,
): Promise<Buffer> {
  if (compress === null) {
    const encoded = encodeRecords(records, now, BATCH_HEADER_BYTES);
    return sealBatch(encoded.buffer, encoded, header);
  }
  const encoded = encodeRecords(records, now, 0);
  const packed = await compress(encoded.buffer);
  const batch = Buffer.allocUnsafe(BATCH_HEADER_BYTES + packed.length);
  batch.set(packed, BATCH_HEADER_BYTES);
  return sealBatch(batch, encoded, header);
}

export interface ProduceTopic {
  topic: string;
  partitions: Array<{ partition: number; batch: Buffer }>;
}

/** The body of a Produce request v3..v7 (the same fields; kafkajs' request header goes in front of it). */
export function encodeProduceBody(
  transactionalId: string | null,
  acks: number,
  timeoutMs: number,
  topics: readonly ProduceTopic[],
): Buffer {
  const txn = transactionalId === null ? null : Buffer.from(transactionalId, 'utf8');
  const names = topics.map((t) => Buffer.from(t.topic, 'utf8'));
  let size = 2 + (txn?.length ?? 0) + 2 + 4 + 4;
  topics.forEach((t, i) => {
    size += 2 + (names[i] as Buffer).length + 4;
    for (const p of t.partitions) size += 4 + 4 + p.batch.length;
  });
  const buf = Buffer.allocUnsafe(size);
  let o = buf.writeInt16BE(txn === null ? -1 : txn.length, 0);
  if (txn !== null) o += txn.copy(buf, o);
  o = buf.writeInt16BE(acks, o);
  o = buf.writeInt32BE(timeoutMs, o);
  o = buf.writeInt32BE(topics.length, o);
  topics.forEach((t, i) => {
    const name = names[i] as Buffer;
    o = buf.writeInt16BE(name.length, o);
    o += name.copy(buf, o);
    o = buf.writeInt32BE(t.partitions.length, o);
    for (const p of t.partitions) {
      o = buf.writeInt32BE(p.partition, o);
      o = buf.writeInt32BE(p.batch.length, o);
      o += p.batch.copy(buf, o);
    }
  });
  return buf;
}
