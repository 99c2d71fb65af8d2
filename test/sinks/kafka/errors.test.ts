import { randomBytes } from 'node:crypto';
import kafkajs from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createKafkaSink,
  KafkaAuthorizationError,
  KafkaConfigError,
  KafkaOffsetsTopicError,
  type KafkaSink,
  type KafkaSinkOptions,
  KafkaTopicMissingError,
  KafkaUnreachableError,
  parseKafkaSpec,
} from '../../../sinks/kafka/index.js';
import {
  createTopic,
  kafkaBrokers,
  kafkaSaslBrokers,
  readTopic,
  uniqueName,
  withAdmin,
} from '../../harness/kafka.js';
import { freePort } from '../../harness/ports.js';
import { captureLogger, event, position, setBatch } from './fixtures/events.js';

const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;

const open: KafkaSink[] = [];
afterAll(async () => {
  for (const s of open) await s.close();
});

function names() {
  const base = uniqueName('rt');
  return {
    base,
    topic: `${base}.<db>`,
    offsetsTopic: `${base}.offsets`,
    name: `sink-${base}`,
    transactionalId: `txn-${base}`,
  };
}

function sink(
  n: ReturnType<typeof names>,
  extra: KafkaSinkOptions = {},
  brokers = kafkaBrokers(),
): KafkaSink {
  const s = createKafkaSink(`kafka://${brokers.join(',')}`, {
    topic: n.topic,
    offsetsTopic: n.offsetsTopic,
    name: n.name,
    transactionalId: n.transactionalId,
    partitions: 1,
    logger: captureLogger(),
    ...extra,
  });
  open.push(s);
  return s;
}

describe('KafkaSink errors and policies', () => {
  beforeAll(() => {
    kafkaBrokers();
  });

  it('fails open() with KafkaUnreachableError naming the brokers when nothing listens', async () => {
    const port = await freePort();
    const s = createKafkaSink(`kafka://127.0.0.1:${port}`, {
      connectTimeoutMs: 2000,
      logger: captureLogger(),
    });
    const started = Date.now();
    const err = await s.open().catch((e) => e);
    expect(err).toBeInstanceOf(KafkaUnreachableError);
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.fatal).toBe(false);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('refuses an offsets topic that is not compacted', async () => {
    const n = names();
    await createTopic(n.offsetsTopic, { configs: { 'cleanup.policy': 'delete' } });
    const err = await sink(n)
      .open()
      .catch((e) => e);
    expect(err).toBeInstanceOf(KafkaOffsetsTopicError);
    expect(err.message).toMatch(/cleanup\.policy=delete/);
  });

  it('refuses a missing topic when createTopics is disabled', async () => {
    const n = names();
    const err = await sink(n, { createTopics: false })
      .open()
      .catch((e) => e);
    expect(err).toBeInstanceOf(KafkaTopicMissingError);
    expect(err.message).toContain(n.offsetsTopic);

    await createTopic(n.offsetsTopic, { configs: { 'cleanup.policy': 'compact' } });
    const s = sink(n, { createTopics: false });
    await s.open();
    const werr = await s.write(setBatch(1, 1)).catch((e) => e);
    expect(werr).toBeInstanceOf(KafkaTopicMissingError);
    expect(werr.message).toContain(`${n.base}.0`);
  });

  it('replaces an event larger than maxMessageBytes by a truncation marker in its place', async () => {
    const n = names();
    const logger = captureLogger();
    const s = sink(n, { maxMessageBytes: 10_000, stateTopic: `${n.base}.state.<db>`, logger });
    await s.open();
    const huge = Buffer.from('y'.repeat(50_000));
    await s.write({
      events: [
        event('set', 'k', 1, { type: 'string', value: Buffer.from('small') }),
        event('set', 'k', 2, { type: 'string', value: huge }),
        event('set', 'k', 3, { type: 'string', value: Buffer.from('after') }),
      ],
      checkpoint: position(3),
    });
    const got = await readTopic(`${n.base}.0`, { minMessages: 3 });
    const values = got.map((m) => JSON.parse(m.value!.toString()));
    expect(values.map((v) => v.source.offset)).toEqual([1, 2, 3]);
    expect(values[1]).toMatchObject({
      op: 'set',
      key: 'k',
      type: 'string',
      truncated: { bytes: expect.any(Number), limit: 10_000 },
    });
    expect(values[1].value).toBeUndefined();
    expect(got[1]!.headers.truncated).toBe('1');
    expect(s.stats.truncated).toBe(1);
    expect(logger.lines.some((l) => l.level === 'warn' && /truncation marker/.test(l.msg ?? ''))).toBe(true);
    const state = (await readTopic(`${n.base}.state.0`, { minMessages: 3 })).map((m) =>
      JSON.parse(m.value!.toString()),
    );
    expect(state.map((v) => v.exact)).toEqual([true, false, true]);
  });

  it('shrinks requests when the broker rejects a batch as too large (topic max.message.bytes below the config)', async () => {
    const n = names();
    await createTopic(`${n.base}.0`, { configs: { 'max.message.bytes': '8000' } });
    const logger = captureLogger();
    const s = sink(n, { logger });
    await s.open();
    const random = randomBytes(20_000);
    await s.write({
      events: [
        event('set', 'a', 1, { type: 'string', value: Buffer.from('ok') }),
        event('set', 'b', 2, { type: 'string', value: random }),
      ],
      checkpoint: position(2),
    });
    const values = (await readTopic(`${n.base}.0`, { minMessages: 2 })).map((m) =>
      JSON.parse(m.value!.toString()),
    );
    expect(values[0].value).toBe('ok');
    expect(values[1].truncated.bytes).toBeGreaterThan(20_000);
    expect(logger.lines.some((l) => /too large; retrying with smaller requests/.test(l.msg ?? ''))).toBe(
      true,
    );
    const again = sink(n);
    expect(await again.open()).toEqual(position(2));
  });

  it('parses specs: broker lists, TLS, SASL credentials and parameters', () => {
    expect(
      parseKafkaSpec(
        'kafkas://u%40x:p%3Aw@a:9093,b:9093?sasl=scram-sha-512&topic=x.<db>&exactlyOnce=false&partitions=6',
      ),
    ).toEqual({
      ssl: true,
      brokers: ['a:9093', 'b:9093'],
      sasl: { mechanism: 'scram-sha-512', username: 'u@x', password: 'p:w' },
      topic: 'x.<db>',
      exactlyOnce: false,
      partitions: 6,
    });
    expect(() => parseKafkaSpec('kafka://a:1?bogus=1')).toThrow(KafkaConfigError);
    expect(() => parseKafkaSpec('http://a:1')).toThrow(KafkaConfigError);
    expect(() => createKafkaSink('kafka://a:1', { topic: 'bad topic <db>' })).toThrow(
      /not a valid Kafka topic/,
    );
    expect(() => createKafkaSink('kafka://a:1', { stateTopic: 's.<op>' })).toThrow(/may only use <db>/);
  });

  it('parses every kind of spec parameter and names the one it rejects', () => {
    expect(
      parseKafkaSpec(
        'kafka://[::1]:9092?name=n&clientId=c&offsetsTopic=o&transactionalId=t&groupIdPrefix=g.&stateTopic=s.<db>' +
          '&createTopics=no&tls=1&oversize=reference&compression=zstd&gzipLevel=9&replicationFactor=2' +
          '&maxBatchBytes=2048&maxMessageBytes=4096&maxTransactionBytes=8192&transactionTimeoutMs=5&connectTimeoutMs=6' +
          '&requestTimeoutMs=7&retryInitialMs=8&retryMaxMs=9&writeTimeoutMs=0&maxTransactionMs=0',
      ),
    ).toEqual({
      brokers: ['[::1]:9092'],
      name: 'n',
      clientId: 'c',
      offsetsTopic: 'o',
      transactionalId: 't',
      groupIdPrefix: 'g.',
      stateTopic: 's.<db>',
      createTopics: false,
      ssl: true,
      oversize: 'reference',
      compression: 'zstd',
      gzipLevel: 9,
      replicationFactor: 2,
      maxBatchBytes: 2048,
      maxMessageBytes: 4096,
      maxTransactionBytes: 8192,
      transactionTimeoutMs: 5,
      connectTimeoutMs: 6,
      requestTimeoutMs: 7,
      retryInitialMs: 8,
      retryMaxMs: 9,
      writeTimeoutMs: 0,
      maxTransactionMs: 0,
    });
    expect(parseKafkaSpec('kafka://a:1?stateTopic=off').stateTopic).toBe(false);
    expect(parseKafkaSpec('kafka://u@a:1').sasl).toEqual({ mechanism: 'plain', username: 'u', password: '' });
    const rejects: [string, RegExp][] = [
      ['kafka://a:1?maxBatchBytes=1023', /maxBatchBytes=1023 must be an integer >= 1024/],
      ['kafka://a:1?partitions=0', /partitions=0 must be an integer >= 1/],
      ['kafka://a:1?retryMaxMs=1.5', /retryMaxMs=1.5 must be an integer/],
      ['kafka://a:1?exactlyOnce=maybe', /exactlyOnce=maybe is not a boolean/],
      ['kafka://a:1?gzipLevel=10', /gzipLevel=10 must be an integer from 1/],
      ['kafka://a:1?compression=brotli', /compression=brotli is not supported/],
      ['kafka://a:1?oversize=drop', /oversize=drop is not a policy/],
      ['kafka://a:1?sasl=gssapi', /sasl=gssapi is not one of/],
      ['kafka://a:1?sasl=plain', /sasl=plain needs user:password@/],
      // An Object.prototype name is no parameter either.
      ['kafka://a:1?toString=1', /unknown parameter toString/],
      ['kafka://,?topic=x', /names no broker/],
      ['kafka://a?topic=x', /broker "a" is not host:port/],
    ];
    for (const [spec, message] of rejects) expect(() => parseKafkaSpec(spec), spec).toThrow(message);
  });
});

describe('KafkaSink with SASL and ACLs', () => {
  const sasl = kafkaSaslBrokers();

  it.skipIf(!sasl)('authenticates with SASL/PLAIN from the spec', async () => {
    const n = names();
    const s = createKafkaSink(`kafka://redtail:redtail-secret@${sasl!.join(',')}?sasl=plain`, {
      topic: n.topic,
      offsetsTopic: n.offsetsTopic,
      name: n.name,
      transactionalId: n.transactionalId,
      logger: captureLogger(),
    });
    open.push(s);
    await s.open();
    await s.write(setBatch(1, 2));
    expect(await readTopic(`${n.base}.0`, { minMessages: 2 })).toHaveLength(2);
  });

  it.skipIf(!sasl)('fails with KafkaAuthorizationError on a wrong password', async () => {
    const s = createKafkaSink(`kafka://redtail:wrong@${sasl!.join(',')}`, {
      logger: captureLogger(),
      connectTimeoutMs: 5000,
    });
    const err = await s.open().catch((e) => e);
    expect(err).toBeInstanceOf(KafkaAuthorizationError);
    expect(err.fatal).toBe(true);
    expect(err.message).toMatch(/SASL/);
  });

  it.skipIf(!sasl)(
    'falls back to at-least-once when the TransactionalId is not authorized; topic ACLs are enforced',
    async () => {
      const n = names();
      const allow = (resourceType: number, resourceName: string) => ({
        resourceType,
        resourceName,
        resourcePatternType: ResourcePatternTypes.PREFIXED,
        principal: 'User:limited',
        host: '*',
        operation: AclOperationTypes.ALL,
        permissionType: AclPermissionTypes.ALLOW,
      });
      await withAdmin((a) =>
        a.createAcls({
          acl: [
            allow(AclResourceTypes.TOPIC, n.base),
            allow(AclResourceTypes.GROUP, 'redtail.offsets-reader.'),
          ],
        }),
      );
      const logger = captureLogger();
      const limited = (extra: KafkaSinkOptions = {}) => {
        const s = createKafkaSink(`kafka://limited:limited-secret@${sasl!.join(',')}`, {
          topic: n.topic,
          offsetsTopic: n.offsetsTopic,
          name: n.name,
          transactionalId: n.transactionalId,
          logger,
          ...extra,
        });
        open.push(s);
        return s;
      };
      // ACLs propagate through the metadata log; give the authorizer a moment.
      await new Promise((r) => setTimeout(r, 500));
      const s = limited();
      await s.open();
      expect(s.mode).toBe('at-least-once');
      expect(
        logger.lines.some((l) => l.level === 'warn' && /not authorized.*AT-LEAST-ONCE/s.test(l.msg ?? '')),
      ).toBe(true);
      await s.write(setBatch(1, 3));
      expect(await readTopic(`${n.base}.0`, { minMessages: 3 })).toHaveLength(3);
      expect(await limited().open()).toEqual(position(3));

      const forbidden = limited({ routes: [{ prefix: 'x', topic: uniqueName('forbidden') }] });
      await forbidden.open();
      const err = await forbidden
        .write({
          events: [event('set', 'x1', 5, { type: 'string', value: Buffer.from('v') })],
          checkpoint: position(5),
        })
        .catch((e) => e);
      expect(err).toBeInstanceOf(KafkaAuthorizationError);
    },
  );
});
