import { type FileHandle, open } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { CheckpointStore } from '../../src/checkpoint/CheckpointStore.js';
import type { ReplicationPosition } from '../../src/events/ChangeEvent.js';
import { encodeEventLine } from '../../src/events/EventEncoder.js';
import type { EventBatch, Sink } from '../../src/pipeline/Sink.js';

export interface NdjsonSinkOptions {
  name: string;
  checkpoints: CheckpointStore;
  /** Append to this file (fsynced before the checkpoint moves); otherwise write to `stream`. */
  path?: string;
  stream?: Writable;
}

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
  private file: FileHandle | null = null;
  private fileSize = 0;

  constructor(private readonly opts: NdjsonSinkOptions) {
    this.name = opts.name;
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

  async write(batch: EventBatch): Promise<void> {
    if (batch.events.length > 0) {
      let text = '';
      for (const e of batch.events) text += `${encodeEventLine(e)}\n`;
      if (this.file) {
        const buf = Buffer.from(text);
        await this.file.write(buf, 0, buf.length, null);
        await this.file.sync();
        this.fileSize += buf.length;
      } else {
        await writeAll(this.opts.stream ?? process.stdout, text);
      }
    }
    // Lines of a batch without a checkpoint (inside a snapshot) are committed by the next batch that has one.
    if (batch.checkpoint) {
      const extra = this.file ? { fileSize: this.fileSize } : undefined;
      await this.opts.checkpoints.save(extra ? { ...batch.checkpoint, extra } : { ...batch.checkpoint });
    }
  }

  async close(): Promise<void> {
    await this.file?.close();
    this.file = null;
  }
}

/** Resolves once the stream has taken the data, so a slow reader of stdout slows the whole pipeline down. */
function writeAll(stream: Writable, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(text, (err) => (err ? reject(err) : resolve()));
  });
}
