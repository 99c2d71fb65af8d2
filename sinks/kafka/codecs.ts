import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { KafkaConfigError } from './errors.js';
import { kafkajs } from './kafkajsSeam.js';

/**
 * LZ4 and Snappy for kafkajs, which ships gzip only. Both codec packages are Node-API builds published per
 * platform on npm (no compiler needed) and are loaded only when a sink asks for them.
 *
 * Wire formats, as the Java client writes and reads them (Kafka's KafkaLZ4BlockOutputStream and xerial's
 * SnappyOutputStream):
 * - lz4: the standard LZ4 frame format (magic 0x184D2204). Since KIP-57 (Kafka 0.10) the frame header checksum
 *   is computed as the LZ4 specification says, which is what any standard frame encoder produces.
 * - snappy: xerial's stream framing: an 8-byte magic (0x82 "SNAPPY" 0x00), a version and a minimum compatible
 *   version (int32 big-endian each), then blocks of [int32 big-endian length][raw snappy block]. A batch without
 *   the magic is one raw snappy block; Java reads both, and so do we.
 * - zstd: one standard zstd frame (magic 0x28B52FFD), what zstd-jni's ZstdOutputStream writes for the Java client
 *   (KIP-110). Node's own zlib has it (22.15+), so no package at all. Brokers accept zstd batches only in Produce
 *   v7+ (KIP-110); kafkajs speaks v7 to any broker since 2.1, so Kafka 2.1+ takes them.
 */
export type ExtraCodec = 'lz4' | 'snappy' | 'zstd';

interface Codec {
  compress(encoder: { buffer: Buffer }): Promise<Buffer>;
  decompress(buffer: Buffer): Promise<Buffer>;
}

const XERIAL_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
const XERIAL_HEADER = 16;
/** xerial's default block: 32 KiB of input per snappy block. */
const XERIAL_BLOCK = 32 * 1024;

const registered = new Set<ExtraCodec>();

const gzipAt = promisify(zlib.gzip);
const unzip = promisify(zlib.unzip);
let gzipLevelRegistered = 6;

/**
 * Makes kafkajs' gzip codec compress at zlib `level` (kafkajs' own uses zlib's default, 6), process-wide: the last
 * sink to open sets it. Decompression is unchanged (any level reads the same).
 */
export function registerGzipLevel(level: number): void {
  if (level === gzipLevelRegistered) return;
  const { CompressionCodecs, CompressionTypes } = kafkajs;
  CompressionCodecs[CompressionTypes.GZIP] = () => ({
    compress: (encoder: { buffer: Buffer }) => gzipAt(encoder.buffer, { level }),
    decompress: (buffer: Buffer) => unzip(buffer),
  });
  gzipLevelRegistered = level;
}

/**
 * Makes kafkajs able to produce and consume `codec` batches, process-wide (kafkajs keeps its codecs in a module
 * table). Throws a KafkaConfigError naming the package when this platform has no build of it.
 */
export async function registerCodec(codec: ExtraCodec): Promise<void> {
  if (registered.has(codec)) return;
  const impl = codec === 'lz4' ? await lz4Codec() : codec === 'snappy' ? await snappyCodec() : zstdCodec();
  const { CompressionCodecs, CompressionTypes } = kafkajs;
  const type =
    codec === 'lz4'
      ? CompressionTypes.LZ4
      : codec === 'snappy'
        ? CompressionTypes.Snappy
        : CompressionTypes.ZSTD;
  CompressionCodecs[type] = () => impl;
  registered.add(codec);
}

async function load<T>(pkg: string, codec: ExtraCodec): Promise<T> {
  try {
    return (await import(pkg)) as T;
  } catch (err) {
    throw new KafkaConfigError(
      `kafka sink: compression=${codec} needs the ${pkg} package, which did not load on ${process.platform}/${process.arch} (${(err as Error).message.split('\n')[0]}); reinstall redtail's dependencies or use compression=gzip`,
    );
  }
}

async function lz4Codec(): Promise<Codec> {
  type Lz4 = {
    compressFrame(data: Buffer): Promise<Buffer>;
    decompressFrame(data: Buffer): Promise<Buffer>;
  };
  const mod = await load<Lz4 & { default?: Lz4 }>('lz4-napi', 'lz4');
  const lz4 = mod.default ?? mod;
  return {
    compress: (encoder) => lz4.compressFrame(encoder.buffer),
    decompress: (buffer) => lz4.decompressFrame(buffer),
  };
}

function zstdCodec(): Codec {
  // Typed loosely: @types/node may predate zlib's zstd, and the check below is what matters at run time.
  const z = zlib as unknown as {
    zstdCompress?: (b: Buffer, cb: (e: Error | null, r: Buffer) => void) => void;
    zstdDecompress?: (b: Buffer, cb: (e: Error | null, r: Buffer) => void) => void;
  };
  const { zstdCompress, zstdDecompress } = z;
  if (!zstdCompress || !zstdDecompress)
    throw new KafkaConfigError(
      `kafka sink: compression=zstd needs Node's built-in zstd (Node 22.15 or later; this is ${process.version}); use lz4, snappy or gzip`,
    );
  const compress = promisify(zstdCompress);
  const decompress = promisify(zstdDecompress);
  return {
    compress: (encoder) => compress(encoder.buffer),
    decompress: (buffer) => decompress(buffer),
  };
}

async function snappyCodec(): Promise<Codec> {
  type Snappy = {
    compress(data: Buffer): Promise<Buffer>;
    uncompress(data: Buffer, opts: { asBuffer: true }): Promise<Buffer | string>;
  };
  const mod = await load<Snappy & { default?: Snappy }>('snappy', 'snappy');
  const snappy = mod.default ?? mod;
  const uncompress = async (b: Buffer) => (await snappy.uncompress(b, { asBuffer: true })) as Buffer;
  return {
    async compress(encoder) {
      const input = encoder.buffer;
      const parts: Buffer[] = [];
      const header = Buffer.alloc(XERIAL_HEADER);
      XERIAL_MAGIC.copy(header, 0);
      header.writeInt32BE(1, 8);
      header.writeInt32BE(1, 12);
      parts.push(header);
      for (let at = 0; at < input.length; at += XERIAL_BLOCK) {
        const block = await snappy.compress(input.subarray(at, at + XERIAL_BLOCK));
        const len = Buffer.alloc(4);
        len.writeInt32BE(block.length, 0);
        parts.push(len, block);
      }
      return Buffer.concat(parts);
    },
    async decompress(buffer) {
      if (buffer.length < XERIAL_HEADER || !buffer.subarray(0, 8).equals(XERIAL_MAGIC))
        return uncompress(buffer);
      const parts: Buffer[] = [];
      let at = XERIAL_HEADER;
      while (at < buffer.length) {
        if (at + 4 > buffer.length) throw new Error(`snappy batch: truncated block length at byte ${at}`);
        const len = buffer.readInt32BE(at);
        at += 4;
        if (len < 0 || at + len > buffer.length)
          throw new Error(`snappy batch: block of ${len} bytes at byte ${at} overruns the batch`);
        parts.push(await uncompress(buffer.subarray(at, at + len)));
        at += len;
      }
      return Buffer.concat(parts);
    },
  };
}
