import { open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Checkpoint, CheckpointStore } from './CheckpointStore.js';

export class CheckpointFileError extends Error {
  override readonly name = 'CheckpointFileError';
  readonly fatal = true;
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
