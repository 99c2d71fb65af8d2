import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { RdbFormatError } from './RdbFormatError.js';
import type { RdbSummary } from './records.js';

const WORKER = new URL('./crc64Worker.js', import.meta.url);
/**
 * Chunks go to the thread through a ring of shared slots, copied in and acknowledged when CRCed: fixed memory, where
 * messages carrying copies left one ArrayBuffer per chunk in the worker until its (rare) garbage collections.
 */
const SLOT_BYTES = 256 * 1024;
const SLOTS = 16;

interface Reply {
  covered: number;
  lo: number;
  hi: number;
  trailer: Uint8Array;
}

/**
 * The RDB file's CRC64 computed on a second thread (`redtail rdb`): a tenth to a quarter of a single-threaded
 * parse is the CRC's byte loop, and nothing else needs it before the end. The caller posts every chunk it gives the
 * parser (which then runs with `checksum: false`) and finally checks the trailer with `verify`, which behaves like
 * the parser's own check (same error, same `ignoreChecksum` rule).
 */
export class Crc64Thread {
  private readonly worker: Worker;
  private readonly ring = new Uint8Array(new SharedArrayBuffer(SLOT_BYTES * SLOTS));
  private readonly free: number[] = [];
  private waiting: (() => void) | null = null;
  private failure: Error | null = null;

  private constructor() {
    for (let i = 0; i < SLOTS; i++) this.free.push(i * SLOT_BYTES);
    this.worker = new Worker(WORKER, { workerData: this.ring.buffer });
    // It must not keep the process alive once the output is written (e.g. after an early EPIPE).
    this.worker.unref();
    this.worker.on('message', (msg: unknown) => {
      if (typeof msg !== 'number') return;
      this.free.push(msg);
      this.wake();
    });
    this.worker.on('error', (err: Error) => {
      this.failure = err;
      this.wake();
    });
  }

  /** A thread, or null where the compiled worker is missing (sources run under a TypeScript loader). */
  static start(): Crc64Thread | null {
    return existsSync(fileURLToPath(WORKER)) ? new Crc64Thread() : null;
  }

  /** Copies the chunk into the ring for the thread (the parser keeps views into the original). */
  async update(chunk: Uint8Array): Promise<void> {
    for (let p = 0; p < chunk.length; p += SLOT_BYTES) {
      const part = chunk.subarray(p, Math.min(chunk.length, p + SLOT_BYTES));
      let at = this.free.pop();
      while (at === undefined) {
        if (this.failure) throw this.failure;
        await new Promise<void>((resolve) => {
          this.waiting = resolve;
        });
        at = this.free.pop();
      }
      this.ring.set(part, at);
      this.worker.postMessage({ at, length: part.length });
    }
  }

  private wake(): void {
    const d = this.waiting;
    this.waiting = null;
    d?.();
  }

  /** The summary with the verified checksum state; throws the parser's RdbFormatError on a mismatch. */
  async verify(summary: RdbSummary, ignoreChecksum: boolean): Promise<RdbSummary> {
    if (summary.checksum !== 'unchecked') {
      await this.worker.terminate();
      return summary;
    }
    if (this.failure) throw this.failure;
    const reply = new Promise<Reply>((resolve, reject) => {
      const onMessage = (msg: unknown) => {
        if (typeof msg === 'number') return;
        this.worker.off('message', onMessage);
        resolve(msg as Reply);
      };
      this.worker.on('message', onMessage);
      this.worker.once('error', reject);
    });
    this.worker.postMessage({ end: true });
    const r = await reply;
    await this.worker.terminate();
    if (r.covered !== summary.bytes - 8 || r.trailer.length !== 8)
      throw new Error(`internal: the CRC thread covered ${r.covered} of ${summary.bytes - 8} bytes`);
    const t = r.trailer;
    const lo = (t[0]! | (t[1]! << 8) | (t[2]! << 16) | (t[3]! << 24)) >>> 0;
    const hi = (t[4]! | (t[5]! << 8) | (t[6]! << 16) | (t[7]! << 24)) >>> 0;
    if (lo === r.lo && hi === r.hi) return { ...summary, checksum: 'ok' };
    if (ignoreChecksum) return { ...summary, checksum: 'skipped' };
    const hex = (h: number, l: number) => ((BigInt(h) << 32n) | BigInt(l)).toString(16).padStart(16, '0');
    throw new RdbFormatError(
      summary.bytes - 8,
      `CRC64 mismatch: file says ${hex(hi, lo)}, computed ${hex(r.hi, r.lo)}`,
    );
  }

  /** Stops the thread without a result (errors, early exit). */
  stop(): void {
    void this.worker.terminate();
  }
}
