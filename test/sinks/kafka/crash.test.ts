import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { createKafkaSink } from '../../../sinks/kafka/index.js';
import { kafkaBrokers, readTopic, uniqueName } from '../../harness/kafka.js';
import { captureLogger, position, REPLID } from './fixtures/events.js';

// Plain JavaScript importing the compiled sink from dist/ (globalSetup builds it before the tests run).
const childScript = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'crashChild.mjs');

interface ChildRun {
  lines: string[];
  killedMidTransaction: boolean;
  committed: number;
  begin: number;
}

/** Runs the child until it starts its big transaction, lets it send part of it, then kill -9. */
function runChild(args: object, killAfterMs: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [childScript, JSON.stringify(args)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let stderr = '';
    let buf = '';
    let killed = false;
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.stdout.on('data', (d) => {
      buf += d;
      let i = buf.indexOf('\n');
      while (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        if (line.startsWith('begin ')) {
          setTimeout(() => {
            killed = child.kill('SIGKILL');
          }, killAfterMs);
        }
        i = buf.indexOf('\n');
      }
    });
    child.on('exit', (code, signal) => {
      const begin = Number(lines.find((l) => l.startsWith('begin '))?.slice(6) ?? Number.NaN);
      if (!killed || signal !== 'SIGKILL')
        return reject(
          new Error(`child exited (${code ?? signal}) before the kill: ${lines.join(' | ')} ${stderr}`),
        );
      resolve({
        lines,
        killedMidTransaction: !lines.includes('finished'),
        committed: begin - 1,
        begin,
      });
    });
  });
}

describe('crash in the middle of a Kafka transaction', () => {
  beforeAll(() => {
    kafkaBrokers();
  });

  it('kill -9 mid-transaction, repeatedly: read_committed output has no gap, no duplicate, no partial batch', async () => {
    const base = uniqueName('rt-crash');
    const args = {
      brokers: kafkaBrokers(),
      replid: REPLID,
      topic: `${base}.<db>`,
      offsetsTopic: `${base}.offsets`,
      name: `sink-${base}`,
      transactionalId: `txn-${base}`,
      batches: 3,
      batchSize: 40,
      bigBatch: 3000,
    };
    const rounds = Number(process.env.KAFKA_CRASH_ROUNDS ?? 4);
    let expectedLast = 0;
    let partialSeen = 0;
    for (let round = 0; round < rounds; round++) {
      const run = await runChild(args, 150 + round * 50);
      expect(run.killedMidTransaction).toBe(true);
      expect(run.lines[0]).toBe(`open ${JSON.stringify(expectedLast === 0 ? null : position(expectedLast))}`);
      expectedLast = run.committed;
      // The killed transaction's records reached the log (visible to read_uncommitted) but stay invisible to
      // read_committed until the next open() fences the producer and the coordinator aborts them.
      const raw = await readTopic(`${base}.0`, { isolation: 'read_uncommitted', idleMs: 800 });
      if (raw.some((m) => JSON.parse(m.value!.toString()).source.offset >= run.begin)) partialSeen++;
    }
    const s = createKafkaSink(`kafka://${kafkaBrokers().join(',')}`, { ...args, logger: captureLogger() });
    expect(await s.open()).toEqual(position(expectedLast));
    await s.close();

    const got = await readTopic(`${base}.0`, { minMessages: expectedLast });
    const offsets = got
      .map((m) => JSON.parse(m.value!.toString()).source.offset as number)
      .sort((a, b) => a - b);
    expect(offsets).toEqual(Array.from({ length: expectedLast }, (_, i) => i + 1));
    expect(expectedLast).toBe(rounds * args.batches * args.batchSize);
    // At least one kill must have landed after records of the big transaction were written, or the test proved
    // nothing about partial transactions.
    expect(partialSeen).toBeGreaterThan(0);
  }, 180_000);
});
