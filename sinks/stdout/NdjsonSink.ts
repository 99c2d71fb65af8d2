import { type FileHandle, open } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { Checkpoint, CheckpointStore } from '../../src/checkpoint/CheckpointStore.js';
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

/**
 * Newline-delimited JSON, one event per line, to stdout or a file.
 *
 * For a file the checkpoint also records the file's length after the batch. A crash between the file write and the
 * checkpoint leaves extra lines; on the next start they are truncated away before the stream resumes from the
 * checkpoint, so the file holds every event exactly once. Stdout cannot be taken back: after a crash the events of
 * the last unacknowledged batch may be printed again (at-least-once), which docs/sinks.md states.
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
      // Without a checkpoint nothing is known to be half-written, and an existing file is the user's: keep it.
      const committed = typeof cp?.extra?.fileSize === 'number' ? cp.extra.fileSize : size;
      if (size > committed) {
        // Lines past the checkpoint were written by a batch whose checkpoint never landed: they will come again.
        await this.file.truncate(committed);
      }
      this.fileSize = Math.min(size, committed);
    }
    return cp ? { replid: cp.replid, offset: cp.offset, db: cp.db } : null;
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
    if (batch.checkpoint) {
      const cp: Checkpoint = { ...batch.checkpoint };
      if (this.file) cp.extra = { fileSize: this.fileSize };
      await this.opts.checkpoints.save(cp);
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
