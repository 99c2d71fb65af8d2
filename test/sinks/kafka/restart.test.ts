import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafkaSink, type KafkaSink } from '../../../sinks/kafka/index.js';
import { PrivateKafka, readTopic, uniqueName } from '../../harness/kafka.js';
import { captureLogger, position, setBatch } from './fixtures/events.js';

describe('broker restart while streaming', () => {
  let kafka: PrivateKafka;
  const sinks: KafkaSink[] = [];
  beforeAll(() => {
    kafka = PrivateKafka.start();
  });
  afterAll(async () => {
    for (const s of sinks) await s.close();
    kafka?.stop();
  });

  it('write waits through the restart, retries the transaction, and nothing is lost or duplicated', async () => {
    const base = uniqueName('rt-restart');
    const options = {
      topic: `${base}.<db>`,
      offsetsTopic: `${base}.offsets`,
      name: `sink-${base}`,
      transactionalId: `txn-${base}`,
      requestTimeoutMs: 5000,
      retryMaxMs: 1000,
    };
    const logger = captureLogger();
    const s = createKafkaSink(`kafka://${kafka.brokers.join(',')}`, { ...options, logger });
    sinks.push(s);
    await s.open();
    await s.write(setBatch(1, 20));
    const restarted = kafka.restartAsync();
    let next = 21;
    let done = false;
    void restarted.then(() => {
      done = true;
    });
    // Keep streaming while the broker goes down and comes back; every write must resolve, only once committed.
    while (!done) {
      await s.write(setBatch(next, 20));
      next += 20;
    }
    await restarted;
    await s.write(setBatch(next, 20));
    next += 20;
    const last = next - 1;
    expect(s.stats.retries).toBeGreaterThan(0);
    expect(
      logger.lines.some((l) => l.level === 'warn' && /retrying the whole transaction/.test(l.msg ?? '')),
    ).toBe(true);

    const again = createKafkaSink(`kafka://${kafka.brokers.join(',')}`, {
      ...options,
      logger: captureLogger(),
    });
    sinks.push(again);
    expect(await again.open()).toEqual(position(last));
    const got = await readTopic(`${base}.0`, { brokers: kafka.brokers, minMessages: last });
    const offsets = got
      .map((m) => JSON.parse(m.value!.toString()).source.offset as number)
      .sort((a, b) => a - b);
    expect(offsets).toEqual(Array.from({ length: last }, (_, i) => i + 1));
  }, 180_000);
});
