import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { RdbFormatError } from './RdbFormatError.js';
import type { RdbSummary } from './records.js';

const WORKER = new URL('./crc64Worker.js', import.meta.url);
/**
 * Chunks go to the thread through a ring of shared slots, copied in and acknowledged when CRCed: fixed memory, where
 * messages carrying copies left one ArrayBuffer per chunk in the worker until its (rare) garbage collections. A
 * slot is posted once full (1 MB, four reads): a message per read cost more than the CRC saved on a busy machine.
 */
const SLOT_BYTES = 1 << 20;
const SLOTS = 8;

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
  /** The slot being filled (its offset in the ring, -1 for none) and its bytes so far. */
  private slot = -1;
  private filled = 0;
  private failure: Error | null = null;

  private constructor() {
    for (let i = 0; i < SLOTS; i++) this.free.push(i * SLOT_BYTES);
    // Not the parent's execArgv: flags such as --input-type (bench:rdb runs the command through -e) break a worker.
    this.worker = new Worker(WORKER, { workerData: this.ring.buffer, execArgv: [] });
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
    let p = 0;
    while (p < chunk.length) {
      if (this.slot < 0) this.slot = await this.freeSlot();
      const n = Math.min(chunk.length - p, SLOT_BYTES - this.filled);
      this.ring.set(chunk.subarray(p, p + n), this.slot + this.filled);
      this.filled += n;
      p += n;
      if (this.filled === SLOT_BYTES) this.post();
    }
  }

  private post(): void {
    this.worker.postMessage({ at: this.slot, length: this.filled });
    this.slot = -1;
    this.filled = 0;
  }

  private async freeSlot(): Promise<number> {
    for (;;) {
      const at = this.free.pop();
      if (at !== undefined) return at;
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => {
        this.waiting = resolve;
      });
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
    if (this.filled > 0) this.post();
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
