import type { ChangeEvent } from '../events/ChangeEvent.js';
import { HUGE_VALUE_BYTES } from '../events/hugeValue.js';
import { RdbParser } from '../rdb/RdbParser.js';
import { snapshotEvent } from '../rdb/snapshotEvent.js';
import type { SnapshotDecoderFactory } from './SnapshotDecoder.js';

export interface RdbSnapshotOptions {
  /**
   * Values larger than this many encoded bytes come out as several `snapshot` events with `part`/`last`, so one
   * huge key never has to be materialised whole (docs/rdb.md). Large by default: most consumers want whole values.
   */
  streamThreshold?: number;
}

/**
 * Decodes the master's snapshot with the RDB parser, one `snapshot` event per key. Events of one socket chunk are
 * handed to the pipeline together, which then applies backpressure to the link like for the command stream.
 */
export function rdbSnapshot(options: RdbSnapshotOptions = {}): SnapshotDecoderFactory {
  return (ctx) => {
    let pending: ChangeEvent[] = [];
    let seq = 0;
    const ts = Date.now();
    const parser = new RdbParser({
      streamThreshold: options.streamThreshold ?? 64 * 1024 * 1024,
      onKey(rec) {
        seq++;
        bytes += hugeBytes(rec.value);
        pending.push(snapshotEvent(rec, { replid: ctx.replid, offset: ctx.offset, seq }, ts));
      },
    });
    let bytes = 0;
    const flush = () => {
      if (pending.length === 0) return;
      const out = pending;
      pending = [];
      ctx.emit(out, bytes);
      bytes = 0;
    };
    return {
      write(chunk) {
        bytes += chunk.length;
        parser.write(chunk);
        flush();
      },
      end() {
        const summary = parser.end();
        flush();
        return {
          keys: summary.keys,
          bytes: summary.bytes,
          keysPerDb: Object.fromEntries(Object.entries(summary.keysPerDb)),
          rdbVersion: summary.version,
          checksum: summary.checksum,
          functions: summary.functions,
        };
      },
    };
  };
}

/**
 * The bytes of the huge byte strings (HUGE_VALUE_BYTES or more) of a decoded value: counted with the RDB bytes the
 * events are pushed with, because the pipeline's byte bound stands for memory, and an LZF-compressed value (a 300 MB
 * text, 200 MB of one letter) is only a few MB of RDB: without this, the next value was decoded while a decompressed
 * one was still being written by the sinks (issue 16).
 */
function hugeBytes(v: unknown): number {
  if (Buffer.isBuffer(v)) return v.length >= HUGE_VALUE_BYTES ? v.length : 0;
  if (!Array.isArray(v)) return 0;
  let n = 0;
  for (const x of v)
    n += Array.isArray(x) ? hugeBytes(x) : Buffer.isBuffer(x) && x.length >= HUGE_VALUE_BYTES ? x.length : 0;
  return n;
}
