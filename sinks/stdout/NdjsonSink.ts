import { type FileHandle, open } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { Checkpoint, CheckpointStore } from '../../src/checkpoint/CheckpointStore.js';
import type { ReplicationPosition } from '../../src/events/ChangeEvent.js';
import { hugeValueChunks } from '../../src/events/hugeValue.js';
import { type NdjsonPiece, NdjsonWriter } from '../../src/events/NdjsonEncoder.js';
import type { EventBatch, Sink } from '../../src/pipeline/Sink.js';

export interface NdjsonSinkOptions {
  name: string;
  checkpoints: CheckpointStore;
  /** Append to this file (fsynced before the checkpoint moves); otherwise write to `stream`. */
  path?: string;
  stream?: Writable;
}

interface Pending {
  bytes: Buffer | null;
  /** The writer `bytes` is a view of (file only), given back once the bytes are written. */
  writer: NdjsonWriter | null;
  /** Instead of `bytes`, for a batch with a huge value (src/events/hugeValue.ts): written piece by piece. */
  pieces?: NdjsonPiece[];
  checkpoint: ReplicationPosition | null;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Writers kept for reuse (each holds a buffer the size of the largest batch it encoded). */
const FREE_WRITERS = 16;

/** Checkpoint of a file that holds no resumable position yet (before the first snapshot has completed). */
const NO_POSITION = '';

/**
 * Newline-delimited JSON, one event per line, to stdout or a file.
 *
 * For a file the checkpoint also records the file's length at the last resumable position. Lines written after it
 * (a batch whose checkpoint never landed, or a snapshot that was cut off) are truncated away on the next start,
 * before the stream resumes from the checkpoint, so the file holds every event exactly once. Stdout cannot be
 * taken back: after a crash the events after the last checkpoint may be printed again (at-least-once).
 */
export class NdjsonSink implements Sink {
  readonly name: string;
  /**
   * Batches are appended in call order and resolved in that order (see commitLoop). A file takes several at once, so
   * its fdatasync and checkpoint overlap the next batches' encoding. Stdout does not: it has no fsync to hide, and a
   * reader that stops reading must stop redtail with one batch encoded, not sixteen (test/link/replication.test.ts
   * bounds RSS while stdout is paused).
   */
  readonly pipelined: boolean;
  private file: FileHandle | null = null;
  /** Size of the file after the last batch handed to writeData. */
  private fileSize = 0;
  /**
   * Writers whose buffers are free. A file batch is encoded by a writer of its own and written from that writer's
   * buffer, which goes back here once the bytes are in the file: no copy of every batch into a new Buffer (fresh
   * memory is a page fault per 4 KB, 6 % of redtail's time draining into a file, bench/NOTES.md S3). Stdout copies:
   * a stream may hold a buffer after taking it.
   */
  private readonly writers: NdjsonWriter[] = [];
  /** Encoded batches waiting for the commit loop, oldest first. */
  private pending: Pending[] = [];
  private committing: Promise<void> | null = null;
  private failure: Error | null = null;

  constructor(private readonly opts: NdjsonSinkOptions) {
    this.name = opts.name;
    this.pipelined = Boolean(opts.path);
  }

  async open(): Promise<ReplicationPosition | null> {
    const cp = await this.opts.checkpoints.load();
    if (this.opts.path) {
      this.file = await open(this.opts.path, 'a+');
      const { size } = await this.file.stat();
      if (cp && typeof cp.extra?.fileSize === 'number') {
        if (size > cp.extra.fileSize) await this.file.truncate(cp.extra.fileSize);
        this.fileSize = Math.min(size, cp.extra.fileSize);
      } else {
        // Nothing is known to be half-written and an existing file is the user's: keep it, and remember where
        // redtail's own lines begin, so a first snapshot that is cut off can be taken back.
        this.fileSize = size;
        await this.opts.checkpoints.save({
          replid: NO_POSITION,
          offset: -1,
          db: 0,
          extra: { fileSize: size },
        });
      }
    }
    if (!cp || cp.replid === NO_POSITION) return null;
    return { replid: cp.replid, offset: cp.offset, db: cp.db };
  }

  write(batch: EventBatch): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    let bytes: Buffer | null = null;
    let pieces: NdjsonPiece[] | undefined;
    let writer: NdjsonWriter | null = null;
    if (batch.events.length > 0) {
      // Huge byte strings are left out of the batch's buffer and written to the file in chunks (docs/events.md).
      const w = this.writers.pop() ?? new NdjsonWriter().deferHuge();
      w.reset();
      for (const e of batch.events) w.event(e);
      if (this.file && !w.hasHuge) {
        bytes = w.view();
        writer = w;
      } else {
        // Copies, and the writer is free again at once.
        const p = w.pieces();
        this.writers.push(w);
        if (p.length === 1 && Buffer.isBuffer(p[0])) bytes = p[0];
        else pieces = p;
      }
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ bytes, writer, pieces, checkpoint: batch.checkpoint, resolve, reject });
      if (!this.committing) this.committing = this.commitLoop();
    });
  }

  /**
   * Group commit: every batch that arrived while the previous group was written goes out in one `writev` and one
   * `fdatasync`. Checkpoints are saved by `saveLoop` while the next groups' data is written, only after the data they
   * point at is durable, one save at a time, in order. A batch resolves when its data and a checkpoint at or after it
   * are durable.
   */
  private async commitLoop(): Promise<void> {
    try {
      while (this.pending.length > 0 && !this.failure) {
        const group = this.pending.splice(0);
        let checkpoint: Checkpoint | null = null;
        try {
          const sizes = await this.writeData(group).finally(() => this.freeWriters(group));
          for (let i = group.length - 1; i >= 0; i--) {
            const cp = group[i]!.checkpoint;
            if (cp) {
              checkpoint = this.file ? { ...cp, extra: { fileSize: sizes[i]! } } : { ...cp };
              break;
            }
          }
        } catch (err) {
          this.fail(err as Error, group);
          break;
        }
        this.unsaved.push({ group, checkpoint });
        // Not awaited: the next batches' data goes out while the save runs (close waits for both).
        if (!this.savingNow) {
          this.savingNow = true;
          this.saving = this.saveLoop();
        }
      }
    } finally {
      this.committing = null;
      if (this.pending.length > 0 && !this.failure) this.committing = this.commitLoop();
    }
  }

  /** Groups whose data is durable and whose checkpoint is not saved yet, oldest first. */
  private unsaved: Array<{ group: Pending[]; checkpoint: Checkpoint | null }> = [];
  /** The running saveLoop (for close), and whether it runs: cleared in the same turn as its last look at `unsaved`. */
  private saving: Promise<void> = Promise.resolve();
  private savingNow = false;

  /**
   * Saves the newest checkpoint of the groups that became durable since the last save, then resolves them all. A
   * save (temp file, fsync, rename, directory fsync) can take 100-250 ms while the disk writes back other data (the
   * spool's segments, bench/NOTES.md S3); one save per group queued them behind each other and held every batch in
   * flight for seconds, so the groups written during a save are covered by the next one instead. Lines of a group
   * without a checkpoint (inside a snapshot) are committed by the next one that has one.
   */
  private async saveLoop(): Promise<void> {
    try {
      while (this.unsaved.length > 0 && !this.failure) {
        const done = this.unsaved.splice(0);
        let cp: Checkpoint | null = null;
        for (const d of done) if (d.checkpoint) cp = d.checkpoint;
        try {
          if (cp) await this.opts.checkpoints.save(cp);
        } catch (err) {
          for (const d of done) this.fail(err as Error, d.group);
          return;
        }
        for (const d of done) for (const g of d.group) g.resolve();
      }
    } finally {
      // In the turn that found `unsaved` empty: a group pushed after it starts a new loop (a flag cleared in a later
      // `.finally` turn would leave such a group unsaved and its batches unresolved).
      this.savingNow = false;
    }
  }

  /** Appends the group's lines and makes them durable; returns the file size after each batch. */
  private async writeData(group: Pending[]): Promise<number[]> {
    if (group.some((g) => g.pieces)) return this.writePieces(group);
    const bufs: Buffer[] = [];
    const sizes: number[] = [];
    let size = this.fileSize;
    for (const g of group) {
      if (g.bytes) {
        bufs.push(g.bytes);
        size += g.bytes.length;
      }
      sizes.push(size);
    }
    if (bufs.length > 0) {
      if (this.file) {
        let written = 0;
        const total = size - this.fileSize;
        let rest = bufs;
        // writev may write less than asked (signals, large totals): continue where it stopped.
        while (written < total) {
          const { bytesWritten } = await this.file.writev(rest);
          written += bytesWritten;
          if (written < total) rest = [Buffer.concat(rest).subarray(bytesWritten)];
        }
        await this.file.datasync();
      } else {
        await writeAll(
          this.opts.stream ?? process.stdout,
          bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs),
        );
      }
    }
    this.fileSize = size;
    return sizes;
  }

  /**
   * A group with a huge value: each piece in order, a huge value in chunks of a few MB (each written before the next
   * is encoded), so the value's JSON never exists whole. The file length is counted as the bytes go out; a crash in
   * the middle leaves a partial line past the checkpoint, which the next start truncates.
   */
  private async writePieces(group: Pending[]): Promise<number[]> {
    const sizes: number[] = [];
    let size = this.fileSize;
    const out = async (b: Buffer) => {
      if (this.file) await writeFileAll(this.file, b);
      else await writeAll(this.opts.stream ?? process.stdout, b);
      size += b.length;
    };
    for (const g of group) {
      for (const p of g.pieces ?? (g.bytes ? [g.bytes] : [])) {
        if (Buffer.isBuffer(p)) await out(p);
        else for (const chunk of hugeValueChunks(p)) await out(chunk);
      }
      sizes.push(size);
    }
    await this.file?.datasync();
    this.fileSize = size;
    return sizes;
  }

  /** The group's bytes are in the file (or failed to get there): their writers' buffers may be reused. */
  private freeWriters(group: Pending[]): void {
    for (const g of group) {
      if (g.writer && this.writers.length < FREE_WRITERS) this.writers.push(g.writer);
      g.writer = null;
      g.bytes = null;
    }
  }

  private fail(err: Error, group: Pending[]): void {
    this.failure ??= err;
    for (const g of group) g.reject(err);
    // Durable but not covered by a saved checkpoint: after a restart they are past the checkpoint, truncated away.
    for (const d of this.unsaved.splice(0)) for (const g of d.group) g.reject(err);
    for (const g of this.pending.splice(0)) g.reject(err);
  }

  async close(): Promise<void> {
    while (this.committing || this.savingNow) await (this.committing ?? this.saving);
    await this.file?.close();
    this.file = null;
  }
}

/** Writes all of `data` at the end of the file (append mode), continuing after short writes. */
async function writeFileAll(file: FileHandle, data: Buffer): Promise<void> {
  let at = 0;
  while (at < data.length) {
    const { bytesWritten } = await file.write(data, at, data.length - at);
    at += bytesWritten;
  }
}

/** Resolves once the stream has taken the data, so a slow reader of stdout slows the whole pipeline down. */
function writeAll(stream: Writable, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(data, (err) => (err ? reject(err) : resolve()));
  });
}
