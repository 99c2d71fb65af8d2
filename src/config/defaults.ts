import type { RedtailConfig } from './Config.js';

/**
 * Every default of redtail in one place. `defaults` is what `redtail run` uses for a setting no flag, environment
 * variable or config file gives (config/config.schema.json documents the same values); the parts built from it
 * (the link, the pipeline, the HTTP endpoint) fall back to these same objects when used on their own (tests,
 * benches), so a part never has a default of its own that disagrees with the configuration's.
 */
export const defaults: RedtailConfig = {
  master: 'redis://127.0.0.1:6379',
  sinks: ['stdout'],
  checkpoint: './redtail.checkpoint.json',
  logLevel: 'info',
  ack: 'durable',
  snapshot: 'decode',
  pipeline: {
    maxBatchEvents: 2_000,
    lingerMs: 10,
    highWaterEvents: 50_000,
    highWaterBytes: 64 * 1024 * 1024,
    maxInFlightBatches: 16,
  },
  link: { listeningPort: 0, readTimeoutMs: 60_000, minFullSyncIntervalMs: 30_000, connectTimeoutMs: 10_000 },
  spool: { enabled: true, maxBytes: 4 * 1024 ** 3, segmentBytes: 64 * 1024 ** 2, fsyncIntervalMs: 1_000 },
  tls: {},
  sinkOptions: {},
  statsIntervalMs: 60_000,
  waitForLock: false,
  readiness: { duringSnapshot: false, sinkStallMs: 60_000 },
  logFormat: 'auto',
  shutdownTimeoutMs: 30_000,
};

/** Settings that are not configurable, with the reason for each value. */
export const fixed = {
  link: {
    /** Reconnect backoff (src/retry.ts): first retry after 50–100 ms, at most 2.5–5 s apart. */
    backoffInitialMs: 100,
    backoffMaxMs: 5_000,
    /**
     * REPLCONF ACK every second, as a real replica does (replicationCron calls replicationSendAck once a second): the
     * master's INFO shows the replica's lag from it, and WAIT counts it.
     */
    ackIntervalMs: 1_000,
  },
  http: {
    /** /healthz fails when the event loop's 1 s ticker has not run for this long (blocked or starved). */
    loopStallMs: 10_000,
  },
  kafka: {
    /**
     * kafkajs' own retries of a send inside a transaction (the sink retries a failed transaction whole on top). The
     * common one is CONCURRENT_TRANSACTIONS on the first AddPartitionsToTxn of a transaction: the coordinator is
     * still writing the previous one's commit markers. Java's producer retries that after 20 ms
     * (TransactionManager's ADD_PARTITIONS_RETRY_BACKOFF_MS, KAFKA-5482) where kafkajs waited 100 ms, tens of times
     * a second at a few thousand events/s (bench/NOTES.md, K9). Five tries span about as long as the three of
     * 100 ms before (≈ 0.6 s), so a short outage still ends in the sink's own retry at the same time.
     */
    producerRetry: { retries: 5, initialRetryTime: 20, maxRetryTime: 1000 },
  },
} as const;

/**
 * Defaults of the sinks' own options (their spec parameters and `sinkOptions`; docs/kafka.md and docs/postgres.md
 * list them). The sinks resolve their options against these objects and nothing else.
 */
export const sinkDefaults = {
  kafka: {
    name: 'kafka',
    clientId: 'redtail',
    topic: 'redtail.<db>',
    offsetsTopic: 'redtail.offsets',
    exactlyOnce: true,
    compression: 'gzip' as 'gzip' | 'lz4' | 'snappy' | 'zstd' | 'none',
    gzipLevel: 6,
    partitions: 3,
    createTopics: true,
    maxBatchBytes: 900_000,
    maxTransactionBytes: 16_000_000,
    maxTransactionMs: 100,
    maxMessageBytes: 1_000_000,
    oversize: 'truncate' as 'truncate' | 'reference',
    transactionTimeoutMs: 60_000,
    connectTimeoutMs: 30_000,
    requestTimeoutMs: 30_000,
    retryInitialMs: 200,
    retryMaxMs: 10_000,
    writeTimeoutMs: 0,
    groupIdPrefix: 'redtail.offsets-reader.',
  },
  postgres: {
    schema: 'redtail',
    name: 'postgres',
    changes: true,
    changesRetentionMs: 0,
    changesSnapshot: false,
    master: null as string | null,
    snapshotChunkRows: 5_000,
    maxGroupEvents: 20_000,
    /**
     * Members from which a collection is stored one row per member (docs/postgres.md, "Big collections", where the
     * measurement behind the figure is).
     */
    bigCollectionMembers: 2_000,
    retryMaxDelayMs: 5_000,
    retryTimeoutMs: 0,
  },
};
