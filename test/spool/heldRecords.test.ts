import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep, setImmediate as tick } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { normalizeCommand } from '../../src/commands/normalize.js';
import type { ChangeEvent, ReplicationPosition } from '../../src/events/ChangeEvent.js';
import type { StreamTarget } from '../../src/link/ReplicationProtocol.js';
import { silentLogger } from '../../src/observe/logger.js';
import { Pipeline } from '../../src/pipeline/Pipeline.js';
import { Replicator } from '../../src/pipeline/Replicator.js';
import type { EventBatch, Sink } from '../../src/pipeline/Sink.js';
import { Kind } from '../../src/spool/records.js';
import { Spool } from '../../src/spool/Spool.js';
import { SpooledStream } from '../../src/spool/SpooledStream.js';
import { OWN_BUFFER_BYTES, SpoolReplayer } from '../../src/spool/SpoolReplayer.js';

/**
 * Issue 16, branch hugestream: a big COMMANDS record is read into a buffer of its own, and that buffer's memory is
 * given back (detached) once a durable checkpoint passes the record, instead of waiting for the GC.
 */
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'redtail-held-'));
  dirs.push(dir);
  return dir;
}

const REPLID = 'r'.repeat(40);
const MB = 1024 * 1024;

function setCommand(key: string, value: Buffer): Buffer {
  const head = `*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${value.length}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), value, Buffer.from('\r\n')]);
}

function bytesOf(seed: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 11)) & 0xff;
  return b;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('SpoolReplayer: big records read into buffers of their own', () => {
  function replayerOver(spool: Spool, got: Buffer[]): SpoolReplayer {
    const target: StreamTarget = {
      resumePosition: () => null,
      fullResync: () => {},
      partialResync: () => {},
      snapshotData: () => {},
      snapshotEnd: () => {},
      commands: (bytes) => got.push(bytes),
      ackOffset: () => 0,
    };
    return new SpoolReplayer(spool, {
      target,
      logger: silentLogger(),
      onError: (e) => got.push(Buffer.from(e.message)),
    });
  }

  it('keeps a big record readable until a durable checkpoint passes its end, then frees it; small records are not touched', async () => {
    const spool = Spool.open({
      dir: tempDir(),
      maxBytes: 1 << 30,
      segmentBytes: 64 * MB,
      logger: silentLogger(),
    });
    spool.append(Kind.Continue, Buffer.from(REPLID, 'latin1'), 100, REPLID);
    const small = Buffer.from('*1\r\n$4\r\nPING\r\n');
    const big = setCommand('k', bytesOf(1, OWN_BUFFER_BYTES + 5));
    spool.append(Kind.Commands, small, 114);
    spool.append(Kind.Commands, big, 114 + big.length);
    const got: Buffer[] = [];
    const replayer = replayerOver(spool, got);
    replayer.start({ seq: spool.segments[0]!.seq, pos: 0, skip: 0 }, null);
    for (let i = 0; i < 10 && !replayer.isCaughtUp; i++) await tick();
    expect(got.map((b) => b.length)).toEqual([small.length, big.length]);
    expect(replayer.heldBytes).toBe(big.length);
    // A checkpoint before the record's end, or of another history, leaves it alone.
    replayer.durable({ replid: REPLID, offset: 113 + big.length, db: 0 });
    replayer.durable({ replid: 'x'.repeat(40), offset: 1e9, db: 0 });
    expect(replayer.heldBytes).toBe(big.length);
    expect(Buffer.compare(got[1]!, big)).toBe(0);
    replayer.durable({ replid: REPLID, offset: 114 + big.length, db: 0 });
    expect(replayer.heldBytes).toBe(0);
    expect(replayer.stats.releasedBytes).toBe(big.length);
    // Detached: every view of it is empty now; the small record's window is intact.
    expect(got[1]!.length).toBe(0);
    expect(Buffer.compare(got[0]!, small)).toBe(0);
    replayer.stop();
    spool.close();
  });

  it('a record just under the threshold shares the windows and is never detached', async () => {
    const spool = Spool.open({
      dir: tempDir(),
      maxBytes: 1 << 30,
      segmentBytes: 64 * MB,
      logger: silentLogger(),
    });
    spool.append(Kind.Continue, Buffer.from(REPLID, 'latin1'), 0, REPLID);
    const cmd = setCommand('k', bytesOf(2, OWN_BUFFER_BYTES - 40));
    expect(cmd.length).toBeLessThan(OWN_BUFFER_BYTES);
    spool.append(Kind.Commands, cmd, cmd.length);
    const got: Buffer[] = [];
    const replayer = replayerOver(spool, got);
    replayer.start({ seq: spool.segments[0]!.seq, pos: 0, skip: 0 }, null);
    for (let i = 0; i < 10 && !replayer.isCaughtUp; i++) await tick();
    expect(replayer.heldBytes).toBe(0);
    replayer.durable({ replid: REPLID, offset: cmd.length, db: 0 });
    expect(Buffer.compare(got[0]!, cmd)).toBe(0);
    replayer.stop();
    spool.close();
  });
});

/** Keeps what each write saw: the value's hash, and the big-record bytes the replayer held at that moment. */
class RecordingSink implements Sink {
  readonly name = 'recording';
  readonly seen: Array<{ key: string; sha: string; bytes: number; held: number }> = [];
  readonly kept: Buffer[] = [];
  constructor(private readonly held: () => number) {}
  async open(): Promise<ReplicationPosition | null> {
    return { replid: REPLID, offset: 0, db: 0 };
  }
  async write(batch: EventBatch): Promise<void> {
    for (const ev of batch.events) this.record(ev);
    // Written "durably" a turn later, as a real sink's I/O would.
    await tick();
  }
  private record(ev: ChangeEvent): void {
    if (ev.op !== 'set') return;
    const key = ev.key.toString('latin1');
    this.seen.push({ key, sha: sha(ev.value), bytes: ev.value.length, held: this.held() });
    // What a sink must not do (Sink.write's contract): keep the value past write. Kept here to see it detached.
    this.kept.push(ev.value);
  }
  async close(): Promise<void> {}
}

describe('big records through the spool, the replicator and the pipeline', () => {
  it('every value arrives exact, and no two big records are held at once (each is freed before the next is read)', async () => {
    const values = [bytesOf(3, 3 * MB), bytesOf(4, 2 * MB + 17), bytesOf(5, 70 * MB)];
    const from: ReplicationPosition = { replid: REPLID, offset: 0, db: 0 };
    let stream: SpooledStream | null = null;
    const sink = new RecordingSink(() => stream?.replayer.heldBytes ?? -1);
    let replicator: Replicator | null = null;
    // Each big value above the pipeline's byte bound: it pauses replay until the value's batch is durable.
    const pipeline = new Pipeline([sink], {
      logger: silentLogger(),
      highWaterBytes: 1 * MB,
      onBackpressure: (paused) => stream?.sinkBackpressure(paused),
      onDurable: (p) => stream?.durable(p),
    });
    expect(await pipeline.open()).toEqual(from);
    replicator = new Replicator({
      pipeline,
      normalize: normalizeCommand,
      snapshot: () => {
        throw new Error('no snapshot in this test');
      },
      logger: silentLogger(),
      start: from,
    });
    stream = new SpooledStream({
      dir: tempDir(),
      maxBytes: 1 << 30,
      segmentBytes: 256 * MB,
      fsyncIntervalMs: 1000,
      ack: 'durable',
      from,
      replicator,
      durableOffset: () => pipeline.durableOffset,
      linkBackpressure: () => {},
      ackAdvanced: () => {},
      logger: silentLogger(),
    });
    // What the link does: +CONTINUE, then each big command in parts as it arrives, with a small one between.
    stream.target.partialResync(REPLID, 0);
    let offset = 0;
    const sizes: number[] = [];
    for (const [i, v] of values.entries()) {
      const cmd = setCommand(`big${i}`, v);
      for (let at = 0; at < cmd.length - 100; at += 1 << 16)
        stream.target.commandPart(cmd.subarray(at, Math.min(at + (1 << 16), cmd.length - 100)));
      offset += cmd.length;
      stream.target.commands(cmd.subarray(cmd.length - 100), offset);
      sizes.push(cmd.length);
      const small = setCommand(`small${i}`, Buffer.from('v'));
      offset += small.length;
      stream.target.commands(small, offset);
    }
    // Until everything is durable: reading and hashing 78 MB takes a varying number of turns (2,000 immediates were
    // not always enough), so wait on the condition, with a generous limit instead of a count.
    const deadline = Date.now() + 60_000;
    while (pipeline.durableOffset < offset && Date.now() < deadline) await sleep(5);
    await pipeline.flush();
    expect(pipeline.durableOffset).toBe(offset);
    const bigSeen = sink.seen.filter((s) => s.key.startsWith('big'));
    expect(bigSeen.map((s) => s.sha)).toEqual(values.map(sha));
    // While a big value was written, the replayer held its record's buffer and no other.
    expect(bigSeen.map((s) => s.held)).toEqual(sizes);
    expect(sink.seen.filter((s) => s.key.startsWith('small')).map((s) => s.bytes)).toEqual([1, 1, 1]);
    expect(stream.replayer.heldBytes).toBe(0);
    expect(stream.replayer.stats.releasedBytes).toBe(sizes.reduce((a, b) => a + b, 0));
    expect(sink.kept.map((b) => b.length).filter((n) => n > 1)).toEqual([]);
    stream.close();
    await pipeline.close();
  });
});
