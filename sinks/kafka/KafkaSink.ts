import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, Kafka, KafkaConfig, LogEntry, Producer, ProducerConfig } from 'kafkajs';
import { pino } from 'pino';
import { fixed } from '../../src/config/defaults.js';
import type { ReplicationPosition } from '../../src/events/ChangeEvent.js';
import { scrub } from '../../src/observe/redact.js';
import type { EventBatch, Sink } from '../../src/pipeline/Sink.js';
import { backoffDelay } from '../../src/retry.js';
import { registerCodec, registerGzipLevel } from './codecs.js';
import {
  type Compression,
  type KafkaSinkOptions,
  type ResolvedKafkaSinkConfig,
  resolveKafkaSinkConfig,
  type SinkLogger,
} from './config.js';
import {
  classifyKafkaError,
  errorChain,
  KafkaMessageTooLargeError,
  KafkaProducerFencedError,
  KafkaSinkError,
  KafkaTransientError,
  KafkaUnreachableError,
  kafkaCodes,
} from './errors.js';
import { assertKafkajsSeam, kafkajs, seamActive } from './kafkajsSeam.js';
import { type BuiltMessages, buildMessages, chunkMessages, type OutMessage } from './messages.js';
import { type CheckpointRecord, checkpointMessage, positionOf, readLastCheckpoint } from './OffsetsTopic.js';
import { createJavaCompatiblePartitioner } from './partitioner.js';
import { readToEnd } from './readToEnd.js';
import { type LiveState, type ReconcilePlan, StateReconciler, stateTopicPattern } from './StateReconciler.js';
import type { StateRule } from './StateTopic.js';
import { type TopicKind, TopicManager } from './TopicManager.js';
import { TopicRouter } from './TopicRouter.js';

const { CompressionTypes, Kafka: KafkaClient, logLevel } = kafkajs;

const CODEC_TYPES: Record<Compression, number> = {
  gzip: CompressionTypes.GZIP,
  lz4: CompressionTypes.LZ4,
  snappy: CompressionTypes.Snappy,
  zstd: CompressionTypes.ZSTD,
  none: CompressionTypes.None,
};

/** A batch encoded and waiting for its transaction; settled when that transaction commits or fails for good. */
interface PendingBatch {
  batch: EventBatch;
  built: BuiltMessages;
  /** Estimated record bytes, for the transaction size bound. */
  bytes: number;
  /** performance.now() when `write` took it: how long batches wait for their transaction (debug log). */
  queuedAt: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export type DeliveryMode = 'exactly-once' | 'at-least-once';

/** Counters for metrics; `mode` says whether the exactly-once guarantee holds. */
export interface KafkaSinkStats {
  mode: DeliveryMode;
  batches: number;
  /** Committed transactions (or, at-least-once, sends of a group): several batches share one under load. */
  transactions: number;
  events: number;
  records: number;
  bytes: number;
  /** Failed transaction attempts that were retried. */
  retries: number;
  /** Events replaced by a truncation marker (oversize policy). */
  truncated: number;
  /** Tombstones written to the state topic for keys a full resync's snapshot no longer had. */
  resyncTombstones: number;
  lastError: string | null;
}

function defaultLogger(name: string): SinkLogger {
  return pino(
    { level: 'info', base: { name: 'redtail', sink: name }, hooks: { streamWrite: scrub } },
    pino.destination({ fd: 2, sync: true }),
  );
}

/**
 * kafkajs logs every failed attempt of its internal retries at ERROR; the sink logs one classified line per failed
 * transaction instead, so kafkajs' own lines go to debug.
 */
function kafkajsLogCreator(logger: SinkLogger) {
  return () =>
    ({ namespace, log }: LogEntry) => {
      const { message, timestamp: _t, logger: _l, ...extra } = log;
      logger.debug({ kafkajs: namespace, ...extra }, message);
    };
}

/** What commitGroup carries from one attempt at a transaction to the next. */
interface CommitAttempts {
  /** Written in the checkpoint record: tells an ambiguous commit's outcome. */
  readonly batchId: string;
  readonly started: number;
  /** Request and record limits, halved each time the broker finds a batch too large. */
  limits: { maxMessageBytes: number; maxBatchBytes: number };
  /** Kafka was unreachable at an attempt: fencing afterwards is most likely our own transaction's timeout. */
  outage: boolean;
  /** The producer is restarted before the next attempt. */
  restart: boolean;
  /** The last attempt failed while committing (exactly-once): the checkpoint record tells whether it committed. */
  ambiguous: boolean;
  /** The state topic's keys read by the reconciler, kept across attempts. */
  readonly loaded: { base?: LiveState };
}

/**
 * Writes change events to Kafka with exactly-once delivery to read_committed consumers: each Kafka transaction holds
 * the event records and state records of one or more consecutive batches and the sink's checkpoint record in the
 * offsets topic, so the events and the position they lead to become visible together or not at all (docs/kafka.md).
 */
export class KafkaSink implements Sink {
  readonly name: string;
  /** Batches may be handed over while earlier ones commit: they are encoded at once and grouped (see `write`). */
  readonly pipelined = true;
  private pending: PendingBatch[] = [];
  private pumping = false;
  /** The error a write failed with for good; every later write fails with it (none may commit past it). */
  private failure: Error | null = null;
  readonly stats: KafkaSinkStats;
  /** Op → state-topic effect table; replace entries to teach the sink new exact ops. */
  stateRules: Record<string, StateRule> | undefined;
  private readonly kafka: Kafka;
  private readonly clientConfig: KafkaConfig;
  private readonly logger: SinkLogger;
  private readonly router: TopicRouter;
  private admin: Admin | undefined;
  private producer: Producer | undefined;
  private topics: TopicManager | undefined;
  private lastPosition: ReplicationPosition | null = null;
  private state: 'new' | 'opening' | 'open' | 'closed' = 'new';
  /** Reconciles the state topic with full resyncs' snapshots; null when the state topic is off. */
  private readonly reconciler: StateReconciler | null;

  constructor(readonly config: ResolvedKafkaSinkConfig) {
    this.name = config.name;
    this.logger = config.logger ?? defaultLogger(config.name);
    this.router = new TopicRouter(config.topic, config.routes, config.stateTopic);
    this.reconciler =
      config.stateTopic === null ? null : new StateReconciler(this.router, () => this.stateRules);
    this.stats = {
      mode: config.exactlyOnce ? 'exactly-once' : 'at-least-once',
      batches: 0,
      transactions: 0,
      events: 0,
      records: 0,
      bytes: 0,
      retries: 0,
      truncated: 0,
      resyncTombstones: 0,
      lastError: null,
    };
    const client: KafkaConfig = {
      clientId: config.clientId,
      brokers: config.brokers,
      connectionTimeout: Math.min(5000, config.connectTimeoutMs),
      requestTimeout: config.requestTimeoutMs,
      retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
      logLevel: logLevel.WARN,
      logCreator: kafkajsLogCreator(this.logger),
    };
    if (config.ssl !== undefined) client.ssl = config.ssl;
    if (config.sasl !== undefined) client.sasl = config.sasl;
    this.clientConfig = client;
    this.kafka = new KafkaClient(client);
  }

  get mode(): DeliveryMode {
    return this.stats.mode;
  }

  private ctx(what: string) {
    return {
      brokers: this.config.brokers,
      what,
      transactionalId: this.mode === 'exactly-once' ? this.config.transactionalId : undefined,
    };
  }

  private backoff(attempt: number): number {
    return backoffDelay(attempt, this.config.retryInitialMs, this.config.retryMaxMs);
  }

  private topicKind = (topic: string): TopicKind =>
    topic === this.config.offsetsTopic ? 'offsets' : this.isStateTopic(topic) ? 'state' : 'events';

  private readonly stateTopics = new Set<string>();
  private isStateTopic(topic: string): boolean {
    return this.stateTopics.has(topic);
  }

  /**
   * Connects, prepares the offsets topic, fences any previous producer with this transactionalId (which aborts
   * its unfinished transaction) and only then reads the checkpoint, so nothing can commit behind it.
   */
  async open(): Promise<ReplicationPosition | null> {
    if (this.state !== 'new') throw new KafkaSinkError(`kafka sink ${this.name}: open() called twice`);
    assertKafkajsSeam();
    this.state = 'opening';
    const deadline = Date.now() + this.config.connectTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        const position = await this.openOnce();
        this.state = 'open';
        return position;
      } catch (raw) {
        await this.disconnectAll();
        const err = classifyKafkaError(raw, this.ctx('open'));
        if (
          err.fatal ||
          // A broker that just restarted answers "coordinator is loading" for a while: as retryable as no broker.
          !(err instanceof KafkaUnreachableError || err instanceof KafkaTransientError) ||
          Date.now() + this.backoff(attempt) > deadline
        ) {
          this.state = 'closed';
          throw err;
        }
        this.logger.warn({ err: err.message, attempt }, 'kafka sink: brokers not ready; retrying');
        await sleep(this.backoff(attempt));
      }
    }
  }

  private async openOnce(): Promise<ReplicationPosition | null> {
    const codec = this.config.compression;
    if (codec === 'lz4' || codec === 'snappy' || codec === 'zstd') await registerCodec(codec);
    if (this.config.compression === 'gzip') registerGzipLevel(this.config.gzipLevel);
    const admin = this.kafka.admin({ retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 } });
    this.admin = admin;
    await admin.connect();
    this.topics = new TopicManager(admin, {
      brokers: this.config.brokers,
      create: this.config.createTopics,
      partitions: this.config.partitions,
      replicationFactor: this.config.replicationFactor,
      eventTopicConfig: this.config.topicConfig,
      logger: this.logger,
    });
    await this.topics.ensure([this.config.offsetsTopic], this.topicKind);
    await this.topics.verifyCompacted(this.config.offsetsTopic);
    await this.startProducer();
    const record = await this.readCheckpoint();
    this.lastPosition = positionOf(record);
    this.logger.info(
      {
        mode: this.mode,
        checkpoint: this.lastPosition,
        offsetsTopic: this.config.offsetsTopic,
        // Which code turns records into Produce requests (kafkajsSeam.ts): 'redtail', or kafkajs' own if the
        // replacements did not take.
        encoder: seamActive() ? 'redtail' : 'kafkajs',
      },
      'kafka sink: open',
    );
    return this.lastPosition;
  }

  private readCheckpoint(): Promise<CheckpointRecord | null> {
    return readLastCheckpoint(this.kafka, this.admin!, this.config.offsetsTopic, this.name, {
      groupIdPrefix: this.config.groupIdPrefix,
      timeoutMs: this.config.connectTimeoutMs,
    });
  }

  private producerConfig(kind: 'transactional' | 'idempotent' | 'plain'): ProducerConfig {
    const cfg: ProducerConfig = {
      allowAutoTopicCreation: false,
      // Java-compatible murmur2, so other Kafka clients map a key to the same partition (kafkajs' DefaultPartitioner's
      // rules without its BigInt arithmetic: partitioner.ts).
      createPartitioner: createJavaCompatiblePartitioner,
      maxInFlightRequests: 1,
      idempotent: kind !== 'plain',
      retry: { ...fixed.kafka.producerRetry },
    };
    if (kind === 'transactional') {
      cfg.transactionalId = this.config.transactionalId;
      cfg.transactionTimeout = this.config.transactionTimeoutMs;
    }
    return cfg;
  }

  /**
   * Transactional when allowed. A TransactionalId ACL refusal (or exactlyOnce=false) downgrades to an idempotent
   * producer: at-least-once, duplicates possible after a crash; said loudly in the log and in `stats.mode`.
   */
  private async startProducer(): Promise<void> {
    if (this.stats.mode === 'exactly-once') {
      const producer = this.kafka.producer(this.producerConfig('transactional'));
      this.producer = producer;
      try {
        await producer.connect();
        // kafkajs sends the transactional InitProducerId at the first transaction(); an empty one fences a zombie
        // and makes the coordinator finish (abort) whatever the previous incarnation left open.
        const txn = await producer.transaction();
        await txn.abort();
        return;
      } catch (err) {
        await producer.disconnect().catch(() => {});
        const forbidden =
          kafkaCodes(err).includes('TRANSACTIONAL_ID_AUTHORIZATION_FAILED') ||
          (errorChain(err).some((e) => e.name === 'KafkaJSGroupCoordinatorNotFound') &&
            (await this.transactionalIdForbidden()));
        if (!forbidden) throw err;
        this.stats.mode = 'at-least-once';
        this.logger.warn(
          { transactionalId: this.config.transactionalId },
          'kafka sink: transactions are not authorized for this transactionalId; falling back to an idempotent ' +
            'AT-LEAST-ONCE producer (events may be duplicated after a crash). Grant Write/Describe on the ' +
            'TransactionalId to restore exactly-once.',
        );
      }
    } else if (this.state === 'opening') {
      this.logger.warn({}, 'kafka sink: exactlyOnce=false; using an idempotent AT-LEAST-ONCE producer');
    }
    let producer = this.kafka.producer(this.producerConfig('idempotent'));
    this.producer = producer;
    try {
      await producer.connect();
    } catch (err) {
      if (!kafkaCodes(err).includes('CLUSTER_AUTHORIZATION_FAILED')) throw err;
      await producer.disconnect().catch(() => {});
      this.logger.warn({}, 'kafka sink: IdempotentWrite is not authorized; using a plain acks=all producer');
      producer = this.kafka.producer(this.producerConfig('plain'));
      this.producer = producer;
      await producer.connect();
    }
  }

  /**
   * kafkajs turns a FindCoordinator refusal into a bare KafkaJSGroupCoordinatorNotFound (its broker pool swallows
   * the per-broker error), so a missing TransactionalId ACL looks like an unavailable coordinator. A one-shot
   * probe client at debug level sees the protocol error kafkajs only logs.
   */
  private async transactionalIdForbidden(): Promise<boolean> {
    const codes = new Set<string>();
    const probe = new KafkaClient({
      ...this.clientConfig,
      retry: { retries: 1, initialRetryTime: 50 },
      logLevel: logLevel.DEBUG,
      logCreator: () => (entry: LogEntry) => {
        const e = (entry.log as { error?: { type?: unknown } }).error;
        if (e && typeof e.type === 'string') codes.add(e.type);
      },
    });
    const producer = probe.producer({ ...this.producerConfig('transactional'), retry: { retries: 1 } });
    try {
      await producer.connect();
      const txn = await producer.transaction();
      await txn.abort();
    } catch {
      // The outcome is in `codes`.
    } finally {
      await producer.disconnect().catch(() => {});
    }
    return codes.has('TRANSACTIONAL_ID_AUTHORIZATION_FAILED');
  }

  private async restartProducer(): Promise<void> {
    const old = this.producer;
    this.producer = undefined;
    await old?.disconnect().catch(() => {});
    await this.startProducer();
  }

  /**
   * The keys the existing state topics hold (newest record not a tombstone), read_committed to their end. Called at
   * a snapshot-begin, when no transaction of ours is open. Memory: one string per live key while the snapshot loads.
   */
  private async readStateKeys(): Promise<LiveState> {
    const pattern = stateTopicPattern(this.config.stateTopic!);
    let all: string[];
    try {
      all = await this.admin!.listTopics();
    } catch (err) {
      throw classifyKafkaError(err, this.ctx('list state topics'));
    }
    const state: LiveState = new Map();
    for (const topic of all) {
      const m = pattern.exec(topic);
      if (!m) continue;
      state.set(topic, { db: m[1] === undefined ? null : Number(m[1]), keys: new Set() });
      this.stateTopics.add(topic);
    }
    const started = Date.now();
    if (state.size > 0) {
      await readToEnd(
        this.kafka,
        this.admin!,
        [...state.keys()],
        (topic, _partition, message) => {
          if (message.key === null) return;
          const key = message.key.toString('latin1');
          const live = state.get(topic)!;
          if (message.value === null) live.keys.delete(key);
          else live.keys.add(key);
        },
        {
          groupId: `${this.config.groupIdPrefix}${this.name}.state.${randomBytes(4).toString('hex')}`,
          timeoutMs: this.config.connectTimeoutMs,
        },
      );
    }
    let keys = 0;
    for (const live of state.values()) keys += live.keys.size;
    this.logger.info(
      { topics: [...state.keys()], keys, ms: Date.now() - started },
      'kafka sink: snapshot begins; read the state topics to tombstone keys the snapshot lacks',
    );
    return state;
  }

  private build(events: EventBatch['events'], maxMessageBytes: number) {
    const built = buildMessages(events, this.router, {
      maxMessageBytes,
      stateRules: this.stateRules,
      oversize: this.config.oversize,
    });
    for (const ev of events) {
      const st = this.router.stateTopicFor(ev);
      if (st !== null) this.stateTopics.add(st);
    }
    return built;
  }

  /**
   * Resolves only once the batch is committed. Batches are encoded as they arrive and committed in call order by
   * one loop; batches that arrive while a transaction is in flight go together into the next one (group commit,
   * bounded by `maxTransactionBytes`), with the checkpoint of the last of them. The events of a group and the
   * position they lead to become visible together or not at all, so a group is as exactly-once as one batch, and
   * the encoding of the next batches overlaps the current transaction's round trips. Failures abort the
   * transaction and retry it whole with backoff (an aborted transaction is invisible to read_committed consumers,
   * so a retry cannot duplicate); while the brokers are down `write` keeps waiting, which stalls the pipeline
   * instead of dropping or buffering events. A batch that fails for good fails every batch queued behind it: none
   * may commit ahead of it.
   */
  write(batch: EventBatch): Promise<void> {
    if (this.state !== 'open')
      return Promise.reject(new KafkaSinkError(`kafka sink ${this.name}: write() on a ${this.state} sink`));
    if (this.failure) return Promise.reject(this.failure);
    if (batch.events.length === 0 && batch.checkpoint === null) return Promise.resolve();
    const built = this.build(batch.events, this.config.maxMessageBytes);
    let bytes = 0;
    for (const m of built.messages) bytes += m.size;
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ batch, built, bytes, queuedAt: performance.now(), resolve, reject });
      if (!this.pumping) {
        this.pumping = true;
        void this.pump();
      }
    });
  }

  private async pump(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const group = this.takeGroup();
        try {
          await this.commitGroup(group);
        } catch (err) {
          this.failure = err as Error;
          for (const p of group) p.reject(err);
          for (const p of this.pending.splice(0)) p.reject(err);
          return;
        }
        for (const p of group) p.resolve();
      }
    } finally {
      // Synchronous with the loop's last check: a write arriving after it starts a new pump.
      this.pumping = false;
    }
  }

  /** The oldest pending batches up to `maxTransactionBytes` (at least one). */
  private takeGroup(): PendingBatch[] {
    return this.pending.splice(0, Math.max(1, this.fits(this.pending[0]?.bytes ?? 0, 1)));
  }

  /** How many pending batches from index `from` on fit beside `bytes` already in the transaction. */
  private fits(bytes: number, from: number): number {
    let n = from;
    for (; n < this.pending.length; n++) {
      const next = this.pending[n] as PendingBatch;
      if (bytes + next.bytes > this.config.maxTransactionBytes) break;
      bytes += next.bytes;
    }
    return n;
  }

  /**
   * Batches that arrived while the open transaction sent its records, to send in it as well: while it has been open
   * less than `maxTransactionMs` and holds less than `maxTransactionBytes`. A batch joining the open transaction is
   * committed with its EndTxn instead of waiting for the next transaction's AddPartitionsToTxn, Produce and EndTxn
   * round trips. Not with a state topic: its reconciler plans a transaction's tombstones from the whole group's
   * events before the first send.
   */
  private takeMore(group: PendingBatch[], openedAt: number): PendingBatch[] {
    if (this.reconciler !== null || this.pending.length === 0) return [];
    if (performance.now() - openedAt >= this.config.maxTransactionMs) return [];
    let bytes = 0;
    for (const p of group) bytes += p.bytes;
    return this.pending.splice(0, this.fits(bytes, 0));
  }

  /**
   * Commits `group` in one transaction (see `write`), retrying it whole until it commits or fails for good. The
   * open transaction may take further pending batches (`takeMore`): they are appended to `group`, so a retry and
   * the caller's settling cover them too.
   */
  private async commitGroup(group: PendingBatch[]): Promise<void> {
    const t: CommitAttempts = {
      batchId: randomUUID(),
      started: Date.now(),
      limits: { maxMessageBytes: this.config.maxMessageBytes, maxBatchBytes: this.config.maxBatchBytes },
      outage: false,
      restart: false,
      ambiguous: false,
      loaded: {},
    };
    for (let attempt = 0; ; attempt++) {
      const state = { committing: false };
      try {
        await this.attemptCommit(group, t, state);
        return;
      } catch (raw) {
        await this.afterFailedAttempt(group, t, raw, state.committing, attempt);
      }
    }
  }

  /** One attempt at committing `group`: restarts the producer after a failure, plans the state topic, sends. */
  private async attemptCommit(
    group: PendingBatch[],
    t: CommitAttempts,
    state: { committing: boolean },
  ): Promise<void> {
    if (t.restart) {
      await this.restartProducer();
      t.restart = false;
    }
    const plan: ReconcilePlan = this.reconciler
      ? await this.reconciler.plan(eventsOf(group), () => this.readStateKeys(), t.loaded)
      : { next: null, tombstones: [], completed: false };
    if (t.ambiguous) {
      // The commit's outcome was unknown. The restart above finished it either way (InitProducerId waits for
      // the coordinator), and the checkpoint record tells which way.
      t.ambiguous = false;
      const record = await this.readCheckpoint();
      if (record?.batch === t.batchId) {
        this.committed(group, plan);
        return;
      }
    }
    await this.sendGroup(group, plan, t.batchId, t.limits.maxBatchBytes, state);
    this.committed(group, plan);
  }

  /**
   * After a failed attempt (`committing`: it failed during the commit): throws when the failure is final, else
   * prepares the next attempt, with smaller requests or after a backoff.
   */
  private async afterFailedAttempt(
    group: PendingBatch[],
    t: CommitAttempts,
    raw: unknown,
    committing: boolean,
    attempt: number,
  ): Promise<void> {
    const err = classifyKafkaError(raw, this.ctx(`write ${countEvents(group)} events`));
    this.stats.retries++;
    this.stats.lastError = err.message;
    t.restart = true;
    t.ambiguous = committing && this.mode === 'exactly-once';
    if (err instanceof KafkaMessageTooLargeError) {
      this.shrinkRequests(group, t.limits, err);
      return;
    }
    if (err instanceof KafkaUnreachableError) t.outage = true;
    // Fencing after our own outage is most likely the coordinator aborting our transaction on
    // transaction.timeout.ms; a fresh InitProducerId recovers. Without an outage it means a second instance.
    const selfFenced = err instanceof KafkaProducerFencedError && t.outage;
    if (err.fatal && !selfFenced) {
      await this.producer?.disconnect().catch(() => {});
      throw err;
    }
    if (this.config.writeTimeoutMs > 0 && Date.now() - t.started > this.config.writeTimeoutMs) throw err;
    const delay = this.backoff(attempt);
    this.logger.warn(
      {
        err: err.message,
        errorClass: err.name,
        attempt,
        retryInMs: Math.round(delay),
        events: countEvents(group),
      },
      'kafka sink: write failed; retrying the whole transaction',
    );
    await sleep(delay);
  }

  /**
   * The topic's max.message.bytes is below our estimate: halves the request and the per-record limit and rebuilds
   * the group's records with them; throws `err` when the requests are as small as they go.
   */
  private shrinkRequests(group: PendingBatch[], limits: CommitAttempts['limits'], err: KafkaSinkError): void {
    if (limits.maxBatchBytes <= 4096) throw err;
    limits.maxBatchBytes = Math.max(4096, Math.floor(limits.maxBatchBytes / 2));
    limits.maxMessageBytes = Math.min(limits.maxMessageBytes, limits.maxBatchBytes);
    for (const p of group) p.built = this.build(p.batch.events, limits.maxMessageBytes);
    this.logger.warn(
      limits,
      'kafka sink: broker rejected a batch as too large; retrying with smaller requests',
    );
  }

  /** Records of `parts` in requests (chunkMessages), topics created first, the checkpoint record last. */
  private async requests(parts: OutMessage[][], checkpoint: OutMessage, maxBatchBytes: number) {
    const records =
      parts.length === 1 ? [...(parts[0] as OutMessage[]), checkpoint] : [...parts.flat(), checkpoint];
    await this.topics!.ensure(
      records.map((r) => r.topic),
      this.topicKind,
    );
    return chunkMessages(records, maxBatchBytes, this.topics!.partitionCount);
  }

  /**
   * One attempt: the group's records, the plan's tombstones and the checkpoint record in one transaction (or, at
   * least once, events before the checkpoint: a crash in between re-sends events, never skips them). Exactly-once,
   * the open transaction goes on taking batches (`takeMore`), each part with a checkpoint record of the position
   * it reaches: the transaction's last one is the one readers see (the offsets topic is compacted by key).
   */
  private async sendGroup(
    group: PendingBatch[],
    plan: ReconcilePlan,
    batchId: string,
    maxBatchBytes: number,
    state: { committing: boolean },
  ): Promise<void> {
    const checkpoint = (): OutMessage => ({
      topic: this.config.offsetsTopic,
      message: checkpointMessage(this.name, positionAfter(group, this.lastPosition), batchId),
      size: 256,
    });
    const send = {
      acks: -1,
      compression: CODEC_TYPES[this.config.compression],
      timeout: this.config.requestTimeoutMs,
    };
    const parts = [...group.map((p) => p.built.messages), plan.tombstones];
    const producer = this.producer!;
    const t0 = performance.now();
    let requests = 0;
    if (this.mode !== 'exactly-once') {
      for (const topicMessages of await this.requests(parts, checkpoint(), maxBatchBytes)) {
        requests++;
        await producer.sendBatch({ topicMessages, ...send });
      }
      this.traceCommit(group, requests, t0, performance.now());
      return;
    }
    const txn = await producer.transaction();
    try {
      let chunks = await this.requests(parts, checkpoint(), maxBatchBytes);
      while (chunks.length > 0) {
        for (const topicMessages of chunks) {
          requests++;
          await txn.sendBatch({ topicMessages, ...send });
        }
        const more = this.takeMore(group, t0);
        group.push(...more);
        chunks =
          more.length === 0
            ? []
            : await this.requests(
                more.map((p) => p.built.messages),
                checkpoint(),
                maxBatchBytes,
              );
      }
      state.committing = true;
      const tCommit = performance.now();
      await txn.commit();
      this.traceCommit(group, requests, t0, tCommit);
    } catch (err) {
      if (!state.committing && txn.isActive()) await txn.abort().catch(() => {});
      throw err;
    }
  }

  /** Per transaction at debug level: where its time went (bench/NOTES.md, K9). */
  private traceCommit(group: PendingBatch[], requests: number, t0: number, tCommit: number): void {
    const t1 = performance.now();
    const first = group[0] as PendingBatch;
    this.logger.debug(
      {
        events: countEvents(group),
        batches: group.length,
        requests,
        waitedMs: Math.round(t0 - first.queuedAt),
        produceMs: Math.round(tCommit - t0),
        commitMs: Math.round(t1 - tCommit),
      },
      'kafka sink: transaction committed',
    );
  }

  private committed(group: PendingBatch[], plan: ReconcilePlan): void {
    this.lastPosition = positionAfter(group, this.lastPosition);
    this.reconciler?.committed(plan);
    if (plan.completed) {
      this.stats.resyncTombstones += plan.tombstones.length;
      this.logger.info(
        { tombstones: plan.tombstones.length },
        'kafka sink: state topics reconciled with the snapshot (tombstones for keys it no longer has)',
      );
    }
    this.stats.batches += group.length;
    this.stats.transactions++;
    for (const p of group) {
      this.stats.events += p.batch.events.length;
      this.stats.records += p.built.messages.length;
      for (const m of p.built.messages) this.stats.bytes += m.size;
      this.stats.truncated += p.built.truncated.length;
      for (const t of p.built.truncated) {
        this.logger.warn(
          {
            topic: t.topic,
            key: t.key?.subarray(0, 200).toString('utf8'),
            bytes: t.bytes,
            limit: this.config.maxMessageBytes,
          },
          'kafka sink: event larger than maxMessageBytes was written as a truncation marker',
        );
      }
    }
    this.stats.records += plan.tombstones.length + 1;
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    await this.disconnectAll();
  }

  private async disconnectAll(): Promise<void> {
    const producer = this.producer;
    const admin = this.admin;
    this.producer = undefined;
    this.admin = undefined;
    await producer?.disconnect().catch(() => {});
    await admin?.disconnect().catch(() => {});
  }
}

function countEvents(group: PendingBatch[]): number {
  let n = 0;
  for (const p of group) n += p.batch.events.length;
  return n;
}

function eventsOf(group: PendingBatch[]): EventBatch['events'] {
  return group.length === 1 ? (group[0] as PendingBatch).batch.events : group.flatMap((p) => p.batch.events);
}

/** The last batch's checkpoint, or the one before it while a snapshot loads (a batch's checkpoint is then null). */
function positionAfter(
  group: PendingBatch[],
  previous: ReplicationPosition | null,
): ReplicationPosition | null {
  let position = previous;
  for (const p of group) if (p.batch.checkpoint !== null) position = p.batch.checkpoint;
  return position;
}

/** `kafka://host:port[,host:port][?topic=...&transactionalId=...]` plus options (routes, TLS, SASL, logger). */
export function createKafkaSink(spec: string, options?: KafkaSinkOptions): KafkaSink {
  return new KafkaSink(resolveKafkaSinkConfig(spec, options));
}
