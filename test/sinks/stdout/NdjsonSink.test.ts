import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { NdjsonSink } from '../../../sinks/stdout/NdjsonSink.js';
import type { Checkpoint } from '../../../src/checkpoint/CheckpointStore.js';
import { FileCheckpointStore } from '../../../src/checkpoint/FileCheckpointStore.js';
import type { ChangeEvent } from '../../../src/events/ChangeEvent.js';

function ev(offset: number, key: Buffer | string): ChangeEvent {
  return {
    v: 1,
    op: 'set',
    db: 0,
    key: Buffer.isBuffer(key) ? key : Buffer.from(key),
    value: Buffer.from('v'),
    source: { replid: 'r', offset, seq: 0, snapshot: false },
    ts: 1,
  } as ChangeEvent;
}

describe('NdjsonSink', () => {
  it('writes one JSON line per event, base64 for bytes that are not UTF-8', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redtail-sink-'));
    const out = new PassThrough();
    let text = '';
    out.on('data', (d) => {
      text += d;
    });
    const sink = new NdjsonSink({
      name: 'stdout',
      stream: out,
      checkpoints: new FileCheckpointStore(join(dir, 'cp')),
    });
    expect(await sink.open()).toBeNull();
    await sink.write({ events: [ev(10, 'plain'), ev(20, Buffer.from([0xff, 0x00]))], checkpoint: null });
    const lines = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines[0].key).toBe('plain');
    expect(lines[1].key).toEqual({ base64: Buffer.from([0xff, 0x00]).toString('base64') });
  });

  it('truncates a file back to the checkpoint after a crash between the write and the checkpoint', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redtail-sink-'));
    const path = join(dir, 'events.ndjson');
    const cp = new FileCheckpointStore(join(dir, 'cp.json'));
    const sink = new NdjsonSink({ name: 'file', path, checkpoints: cp });
    await sink.open();
    await sink.write({ events: [ev(10, 'a')], checkpoint: { replid: 'r', offset: 10, db: 0 } });
    await sink.close();
    const committed = readFileSync(path, 'utf8');
    // A batch whose lines reached the file but whose checkpoint never did.
    writeFileSync(path, `${committed}{"half":"written"}\n`);
    const again = new NdjsonSink({ name: 'file', path, checkpoints: cp });
    expect(await again.open()).toEqual({ replid: 'r', offset: 10, db: 0 });
    expect(readFileSync(path, 'utf8')).toBe(committed);
    await again.write({ events: [ev(20, 'b')], checkpoint: { replid: 'r', offset: 20, db: 0 } });
    await again.close();
    const keys = readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).key);
    expect(keys).toEqual(['a', 'b']);
  });

  it('takes back a snapshot that was cut off before it completed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redtail-sink-'));
    const path = join(dir, 'events.ndjson');
    writeFileSync(path, 'earlier content\n');
    const cp = new FileCheckpointStore(join(dir, 'cp.json'));
    const sink = new NdjsonSink({ name: 'file', path, checkpoints: cp });
    expect(await sink.open()).toBeNull();
    // Snapshot batches carry no checkpoint until the snapshot ends; the process dies before that.
    await sink.write({ events: [ev(0, 'snap1'), ev(0, 'snap2')], checkpoint: null });
    await sink.close();
    const again = new NdjsonSink({ name: 'file', path, checkpoints: cp });
    expect(await again.open()).toBeNull();
    expect(readFileSync(path, 'utf8')).toBe('earlier content\n');
    await again.close();
  });

  it('commits batches written before the previous one resolved in order, with a checkpoint that matches the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redtail-sink-'));
    const path = join(dir, 'events.ndjson');
    const cp = new FileCheckpointStore(join(dir, 'cp.json'));
    const sink = new NdjsonSink({ name: 'file', path, checkpoints: cp });
    await sink.open();
    const done: number[] = [];
    const writes = Array.from({ length: 50 }, (_, i) =>
      sink
        .write({
          events: [ev(i + 1, `k${i}`)],
          // Every fifth batch carries no checkpoint (as inside a snapshot).
          checkpoint: i % 5 === 4 ? null : { replid: 'r', offset: i + 1, db: 0 },
        })
        .then(() => done.push(i)),
    );
    await Promise.all(writes);
    expect(done).toEqual(Array.from({ length: 50 }, (_, i) => i));
    const lines = readFileSync(path, 'utf8').trim().split('\n');
    expect(lines.map((l) => JSON.parse(l).key)).toEqual(Array.from({ length: 50 }, (_, i) => `k${i}`));
    const saved = await cp.load();
    expect(saved!.offset).toBe(49);
    // The newest checkpoint is batch 49's (batch 50 has none): its file size ends at batch 49's line, so a restart
    // truncates the uncommitted line of batch 50.
    const upTo49 = lines.slice(0, 49).join('\n').length + 1;
    expect(saved!.extra!.fileSize).toBe(upTo49);
    await sink.close();
  });

  it('covers the groups written during a slow checkpoint save with the next save, never ahead of the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redtail-sink-'));
    const path = join(dir, 'events.ndjson');
    const file = new FileCheckpointStore(join(dir, 'cp.json'));
    const saves: Array<{ offset: number; fileSize: number; onDisk: number }> = [];
    let saved = -1;
    let release!: () => void;
    const firstSaveHeld = new Promise<void>((r) => {
      release = r;
    });
    // The first save hangs (its fsyncs wait behind other writeback) while later groups reach the file.
    const slow = {
      load: () => file.load(),
      async save(c: Checkpoint) {
        if (!opened) return file.save(c);
        saves.push({ offset: c.offset, fileSize: c.extra!.fileSize as number, onDisk: statSync(path).size });
        if (saves.length === 1) await firstSaveHeld;
        await file.save(c);
        saved = c.offset;
      },
    };
    let opened = false;
    const sink = new NdjsonSink({ name: 'file', path, checkpoints: slow });
    await sink.open();
    opened = true;
    const early: number[] = [];
    const writes: Promise<void>[] = [];
    const lines = () => readFileSync(path, 'utf8').split('\n').length - 1;
    for (let i = 1; i <= 10; i++) {
      writes.push(
        sink.write({ events: [ev(i, `k${i}`)], checkpoint: { replid: 'r', offset: i, db: 0 } }).then(() => {
          if (saved < i) early.push(i);
        }),
      );
      // Each batch is its own group: the next one is handed over once this one is in the file (a bound, so that a
      // sink that stops writing while a save runs fails the expectation below instead of hanging).
      for (let n = 0; n < 2_000 && lines() < i; n++) await new Promise((r) => setTimeout(r, 1));
    }
    // The data went on while the first save was held.
    expect(lines()).toBe(10);
    release();
    await Promise.all(writes);
    await sink.close();
    // No batch resolved before a saved checkpoint covered it.
    expect(early).toEqual([]);
    // The nine groups written during the held save are covered by one save (one save per group: 1, 2, ..., 10).
    expect(saves.map((x) => x.offset)).toEqual([1, 10]);
    // Each checkpoint points at data already in the file when its save began.
    for (const x of saves) expect(x.fileSize).toBeLessThanOrEqual(x.onDisk);
    expect((await file.load())!.extra!.fileSize).toBe(statSync(path).size);
  });
});
