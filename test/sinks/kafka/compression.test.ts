import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ExtraCodec, registerCodec } from '../../../sinks/kafka/codecs.js';
import {
  jsonValues,
  kafkaBrokers,
  type ReadMessage,
  readTopic,
  readTopicWithJava,
  storedCodecs,
  uniqueName,
} from '../../harness/kafka.js';
import { useTestScope } from '../../harness/TestScope.js';

/**
 * Compression codecs against the real broker. The broker decompresses every compressed batch it accepts to
 * validate it, Kafka's Java client must read back what kafkajs wrote, and the broker's log segments show the codec
 * the batches are stored with, so a codec that only round-trips with itself cannot pass.
 */
const scope = useTestScope();

const key = (m: ReadMessage) => `${m.partition}/${m.offset}`;

describe.each(['lz4', 'snappy', 'zstd', 'gzip'] as const)('kafka sink with compression=%s', (codec) => {
  it('stores batches with that codec that the Java client and kafkajs both read as the events redtail wrote', async () => {
    const master = await scope.server();
    const c = master.client();
    // Compressible values bigger than one snappy block (32 KiB) and binary ones.
    const pipe = c.pipeline();
    for (let i = 0; i < 200; i++) pipe.set(`text:${i}`, `value ${i} `.repeat(i === 0 ? 5000 : 50));
    for (let i = 0; i < 50; i++)
      pipe.set(`bin:${i}`, Buffer.from(Array.from({ length: 300 }, (_, j) => (i * j) % 256)));
    await pipe.exec();

    const base = uniqueName(`codec-${codec}`);
    const dir = mkdtempSync(join(tmpdir(), 'redtail-codec-'));
    scope.defer(() => rmSync(dir, { recursive: true, force: true }));
    const config = join(dir, 'redtail.json');
    writeFileSync(
      config,
      JSON.stringify({
        sinkOptions: {
          kafka: {
            topic: `${base}.<db>`,
            offsetsTopic: `${base}.offsets`,
            transactionalId: `txn-${base}`,
            compression: codec,
            partitions: 3,
          },
        },
      }),
    );
    const p = scope.redtail([
      'run',
      '--master',
      master.url(),
      '--sink',
      `kafka://${kafkaBrokers().join(',')}`,
      '--config',
      config,
    ]);
    await p.waitFor(() => p.logs().some((l) => l.msg === 'snapshot loaded'), 'the snapshot');
    for (let i = 0; i < 100; i++) await c.append(`text:${i}`, ` more ${i}`);
    await c.del('bin:0');
    // ack: durable, so WAIT returning 1 means redtail committed everything in Kafka.
    expect(await c.call('WAIT', '1', '60000')).toBe(1);

    const topic = `${base}.0`;
    if (codec !== 'gzip') await registerCodec(codec as ExtraCodec);
    const viaKafkajs = await readTopic(topic, { minMessages: 250 + 100 + 1 });
    const viaJava = readTopicWithJava(topic);
    expect(viaJava.map(key)).toEqual(viaKafkajs.map(key));
    expect(viaJava.map((m) => m.value?.toString('base64'))).toEqual(
      viaKafkajs.map((m) => m.value?.toString('base64')),
    );

    // The events are the dataset: every snapshot value, then the live appends and the delete.
    const events = jsonValues(viaJava);
    const snap = events.filter((e) => e.op === 'snapshot');
    expect(snap).toHaveLength(250);
    const text0 = snap.find((e) => e.key === 'text:0')!;
    expect(text0.value).toBe('value 0 '.repeat(5000));
    expect(events.filter((e) => e.op === 'append')).toHaveLength(100);
    expect(events.filter((e) => e.op === 'del').map((e) => e.key)).toEqual(['bin:0']);

    const stored = storedCodecs(topic);
    if (stored !== undefined) expect([...stored]).toEqual([codec]);
    expect((await p.stop('SIGTERM')).code).toBe(0);
  });
});
