import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectedFrom, fingerprint } from '../../harness/expectedEvents.js';
import { kafkaBrokers, readTopic, uniqueName } from '../../harness/kafka.js';
import type { RedisServer } from '../../harness/RedisServer.js';
import type { JsonEvent, RedtailProcess } from '../../harness/RedtailProcess.js';
import { useTestScope } from '../../harness/TestScope.js';
import { Workload } from '../../harness/Workload.js';

/**
 * Two `redtail run --sink kafka://...` with one transactionalId (a rolling update, or a second copy started by
 * hand): Kafka fences the older producer when the newer one initializes, and the older redtail must stop with a
 * clear message instead of retrying, which would fence the newer one back and write every event twice.
 */

const scope = useTestScope();
const offsetOf = async (s: RedisServer) => Number((await s.info('replication')).master_repl_offset);

function handshakeReplies(p: RedtailProcess): string[] {
  return p
    .logs()
    .filter((l) => l.msg === 'replication handshake done')
    .map((l) => String(l.reply));
}

/** Waits until the replica redtail acknowledged `offset`, i.e. (ack: durable) committed it in Kafka. */
async function waitAcked(master: RedisServer, p: RedtailProcess, offset: number): Promise<void> {
  for (;;) {
    const info = await master.info('replication');
    const acked = Object.values(info)
      .filter((v) => /ip=.*offset=/.test(String(v)))
      .map((v) => Number(/offset=(\d+)/.exec(String(v))?.[1] ?? -1));
    if (acked.filter((o) => o >= offset).length >= 2) return; // the recorder and redtail
    if (p.proc.exitCode !== null) throw new Error(`redtail exited: ${p.stderr.slice(-2000)}`);
    await sleep(100);
  }
}

describe('two redtails on one Kafka transactionalId', () => {
  beforeAll(() => {
    kafkaBrokers();
  });

  it('the older one is fenced and exits with a clear message; read_committed sees every event once', async () => {
    const brokers = kafkaBrokers();
    const master = await scope.server({ config: { 'repl-backlog-size': '16mb' } });
    const recorder = await scope.tap(master);
    const base = uniqueName('rt-fence');
    const transactionalId = `txn-${base}`;
    const dir = mkdtempSync(join(tmpdir(), 'redtail-fence-'));
    scope.defer(() => rmSync(dir, { recursive: true, force: true }));
    const config = join(dir, 'redtail.json');
    writeFileSync(
      config,
      JSON.stringify({
        sinkOptions: { kafka: { topic: `${base}.events`, offsetsTopic: `${base}.offsets`, transactionalId } },
      }),
    );
    // Two instances on one transactionalId are two hosts in production, each with its own spool (on one host the
    // spool's lock would refuse the second before Kafka could fence anything).
    let instance = 0;
    const start = () =>
      scope.redtail(
        [
          'run',
          '--master',
          master.url(),
          '--sink',
          `kafka://${brokers.join(',')}`,
          '--config',
          config,
          '--log-level',
          'info',
        ],
        { REDTAIL_SPOOL: join(tmpdir(), `redtail-fencing-${transactionalId}-${instance++}.spool`) },
      );

    const older = start();
    await older.waitFor(() => handshakeReplies(older).length === 1, 'the first sync', 60_000);
    const workload = new Workload(master.client(), 31);
    workload.start();
    scope.defer(() => workload.stop());
    await sleep(1500);

    const newer = start();
    await newer.waitFor(() => handshakeReplies(newer).length === 1, "the newer one's sync", 60_000);
    // The newer one resumed from what the older one had committed when it was fenced.
    expect(handshakeReplies(newer)[0]).toMatch(/^\+CONTINUE/);
    const ended = await Promise.race([older.exited, sleep(60_000).then(() => null)]);
    expect(ended, `the older redtail is still running: ${older.stderr.slice(-2000)}`).not.toBeNull();
    expect(ended!.code).toBe(1);
    const fenced = new RegExp(
      `^redtail: producer with transactionalId ${transactionalId} was fenced: another redtail instance uses ` +
        'the same transactionalId',
      'm',
    );
    expect(older.stderr).toMatch(fenced);
    // Fatal at once: the fenced one did not retry (which would fence the newer one in turn).
    expect(older.logs().filter((l) => l.errorClass === 'KafkaProducerFencedError')).toEqual([]);
    expect(older.logs().filter((l) => l.msg === 'fatal')).toHaveLength(1);

    await sleep(1000);
    await workload.stop();
    expect(workload.commands).toBeGreaterThan(200);
    const end = await offsetOf(master);
    await recorder.waitForOffset(end);
    await waitAcked(master, newer, end);
    expect((await newer.stop('SIGTERM')).code).toBe(0);
    expect(newer.logs().some((l) => /fenced/.test(String(l.err ?? l.msg)))).toBe(false);

    const tapped = recorder.drain();
    const events = (await readTopic(`${base}.events`, { minMessages: expectedFrom(tapped, 0).length })).map(
      (m) => JSON.parse(m.value!.toString('utf8')) as JsonEvent,
    );
    const begins = events.filter((e) => e.op === 'snapshot-begin');
    expect(begins).toHaveLength(1);
    const stream = events
      .filter((e) => !e.source.snapshot)
      .sort((a, b) => a.source.offset - b.source.offset || a.source.seq - b.source.seq);
    const positions = stream.map((e) => `${e.source.offset}/${e.source.seq}`);
    expect(new Set(positions).size).toBe(positions.length);
    expect(stream.map(fingerprint)).toEqual(expectedFrom(tapped, begins[0]!.source.offset));
  }, 240_000);
});
