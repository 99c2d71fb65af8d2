import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { NdjsonSink } from '../../../sinks/stdout/NdjsonSink.js';
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
});
