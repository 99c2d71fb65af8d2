import { open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { RedtailError } from '../errors.js';
import type { Checkpoint, CheckpointStore } from './CheckpointStore.js';

/** The checkpoint file cannot be read, parsed or replaced: a human must look at the file or its directory. */
export class CheckpointFileError extends RedtailError {
  override readonly name = 'CheckpointFileError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { fatal: true, cause: options?.cause });
  }
}

/**
 * A checkpoint in a small JSON file, replaced atomically: write a temp file, fsync it, rename it over the old one,
 * fsync the directory. After a crash the file holds either the old or the new checkpoint, never a torn one.
 */
export class FileCheckpointStore implements CheckpointStore {
  constructor(readonly path: string) {}

  async load(): Promise<Checkpoint | null> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new CheckpointFileError(`cannot read checkpoint ${this.path}: ${(err as Error).message}`);
    }
    let cp: Checkpoint;
    try {
      cp = JSON.parse(text) as Checkpoint;
    } catch {
      throw new CheckpointFileError(
        `checkpoint ${this.path} is not valid JSON; fix or delete it (deleting forces a full resync)`,
      );
    }
    if (typeof cp.replid !== 'string' || !Number.isSafeInteger(cp.offset) || !Number.isSafeInteger(cp.db))
      throw new CheckpointFileError(
        `checkpoint ${this.path} lacks replid/offset/db; fix or delete it (deleting forces a full resync)`,
      );
    return cp;
  }

  async save(checkpoint: Checkpoint): Promise<void> {
    const tmp = `${this.path}.tmp`;
    const body = `${JSON.stringify({ ...checkpoint, updatedAt: new Date().toISOString() })}\n`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(body);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.path);
    const dir = await open(dirname(this.path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
