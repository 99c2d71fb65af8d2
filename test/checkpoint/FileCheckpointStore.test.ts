import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointFileError, FileCheckpointStore } from '../../src/checkpoint/FileCheckpointStore.js';

describe('FileCheckpointStore', () => {
  it('round-trips a checkpoint and leaves no temp file behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redtail-cp-'));
    const store = new FileCheckpointStore(join(dir, 'cp.json'));
    expect(await store.load()).toBeNull();
    await store.save({ replid: 'a'.repeat(40), offset: 123, db: 3, extra: { fileSize: 9 } });
    await store.save({ replid: 'a'.repeat(40), offset: 456, db: 4 });
    expect(await store.load()).toMatchObject({ replid: 'a'.repeat(40), offset: 456, db: 4 });
    expect(readdirSync(dir)).toEqual(['cp.json']);
  });

  it('refuses a damaged checkpoint with a message saying what to do', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redtail-cp-'));
    const path = join(dir, 'cp.json');
    writeFileSync(path, '{"replid":');
    await expect(new FileCheckpointStore(path).load()).rejects.toThrow(CheckpointFileError);
    await expect(new FileCheckpointStore(path).load()).rejects.toThrow(
      /delete it \(deleting forces a full resync\)/,
    );
    writeFileSync(path, '{"offset": 1}');
    await expect(new FileCheckpointStore(path).load()).rejects.toThrow(/lacks replid/);
  });
});
