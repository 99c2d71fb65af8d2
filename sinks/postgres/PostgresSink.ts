import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { ChangeEvent, ReplicationPosition } from '../../src/events/ChangeEvent.js';
import type { MasterTls } from '../../src/link/tls.js';
import { createLogger, type Logger } from '../../src/observe/logger.js';
import type { EventBatch, Sink } from '../../src/pipeline/Sink.js';
import { backoffDelay } from '../../src/retry.js';
import { type PostgresSinkConfig, pgConnectionString } from './config.js';
import { describePgError, isTransient, PostgresSinkError } from './errors.js';
import { type CurrentMaster, type Fetcher, fixedMaster, MasterFetcher } from './MasterFetcher.js';
import { MirrorApplier } from './MirrorApplier.js';
import { ident, migrate } from './migrations.js';
import { toJsonb } from './model/encoding.js';

export interface PostgresSinkDeps {
  logger?: Logger;
  /** Replaces the master connection used for exact fetches (tests). */
  fetcher?: Fetcher | null;
  /**
   * Where exact values are fetched from when the config names no fixed `master`: in `redtail run`, the master the
   * replication link is connected to, so fetches follow it across failovers.
   */
  currentMaster?: CurrentMaster;
  /** With `currentMaster`: asks the replication link to find the master now (a fetch found the old one gone). */
  masterStale?: (reason: string) => void;
  /** TLS settings for a rediss:// `master` option (default: system CAs, verification on). */
  masterTls?: MasterTls;
  /** Called after every committed batch with where its time went (benchmarks, diagnostics). */
  onWrite?: (timing: WriteTiming) => void;
}

/** Milliseconds spent in each phase of one committed `write` (the last attempt when it was retried). */
export interface WriteTiming {
  events: number;
  /** Waiting for a pooled connection. */
  connectMs: number;
  /** BEGIN and the `sink_state` row lock. */
  lockMs: number;
  /** Applying the events to `keys` (reads, fetches from the master, writes, COPY). */
  applyMs: number;
  /** The `changes` rows. */
  changesMs: number;
  /** Checkpoint, sink state and retention statements. */
  checkpointMs: number;
  /** COMMIT (the WAL flush). */
  commitMs: number;
  totalMs: number;
}

export interface PostgresSinkStats {
  batches: number;
  events: number;
  changeRows: number;
  retries: number;
  /** Total ms per phase of the committed writes (see WriteTiming): where the sink's time goes. */
  ms: { connect: number; lock: number; apply: number; changes: number; checkpoint: number; commit: number };
}

/** Fields of an event that are not its payload (they have their own `changes` columns). */
const ENVELOPE = new Set(['v', 'op', 'db', 'key', 'source', 'ts']);

/**
 * The Postgres sink: a change log (`changes`) and an exact mirror of the dataset (`keys`), written with the
 * checkpoint in one transaction per batch, so what Postgres holds always corresponds to one stream position.
 */
export class PostgresSink implements Sink {
  readonly name: string;
  readonly stats: PostgresSinkStats = {
    batches: 0,
    events: 0,
    changeRows: 0,
    retries: 0,
    ms: { connect: 0, lock: 0, apply: 0, changes: 0, checkpoint: 0, commit: 0 },
  };
  private readonly pool: pg.Pool;
  private readonly s: string;
  private readonly logger: Logger;
  private readonly fetcher: Fetcher | null;
  readonly applier: MirrorApplier;
  /** Set when a transaction failed: the applier's in-memory pending values must be reloaded. */
  private stale = true;
  private lastRetention = 0;
  private readonly onWrite: ((timing: WriteTiming) => void) | undefined;

  constructor(
    readonly config: PostgresSinkConfig,
    deps: PostgresSinkDeps = {},
  ) {
    this.name = config.name;
    this.s = ident(config.schema);
    this.logger = deps.logger ?? createLogger(process.env.REDTAIL_LOG_LEVEL ?? 'info');
    this.pool = new pg.Pool({
      connectionString: pgConnectionString(config),
      max: 2,
      application_name: 'redtail',
    });
    // Idle clients that lose their connection emit here; the next query reports it and is retried.
    this.pool.on('error', (err) => this.logger.warn({ err: err.message }, 'postgres connection lost'));
    const master = config.master ? fixedMaster(config.master, deps.masterTls) : deps.currentMaster;
    this.fetcher =
      deps.fetcher !== undefined
        ? deps.fetcher
        : master
          ? new MasterFetcher(master, {
              retryMaxDelayMs: config.retryMaxDelayMs,
              logger: this.logger,
              ...(config.master ? {} : { onStale: deps.masterStale }),
            })
          : null;
    this.onWrite = deps.onWrite;
    this.applier = new MirrorApplier(config.schema, this.fetcher, this.logger, config.snapshotChunkRows);
  }

  async open(): Promise<ReplicationPosition | null> {
    return this.withRetry('open', async (client) => {
      await migrate(client, this.config.schema);
      await client.query(
        `INSERT INTO ${this.s}.sink_state (sink) VALUES ($1) ON CONFLICT (sink) DO NOTHING`,
        [this.name],
      );
      await this.loadState(client);
      const { rows } = await client.query<{ replid: string; offset: string; db: number }>(
        `SELECT replid, "offset", db FROM ${this.s}.checkpoints WHERE sink = $1`,
        [this.name],
      );
      if (this.applier.state.loading) {
        // Keys of an unfinished snapshot are newer than the checkpoint: continuing the stream from it would apply
        // changes twice. Only a new full resync makes the mirror exact again.
        this.logger.warn({ sink: this.name }, 'a snapshot load was interrupted; asking for a full resync');
        return null;
      }
      const r = rows[0];
      return r ? { replid: r.replid, offset: Number(r.offset), db: r.db } : null;
    });
  }

  async write(batch: EventBatch): Promise<void> {
    const t0 = performance.now();
    let timing: WriteTiming | undefined;
    await this.withRetry('write', async (client) => {
      const t1 = performance.now();
      await client.query('BEGIN');
      try {
        if (this.stale) await this.applier.loadPendings(client);
        await this.loadState(client, true);
        const t2 = performance.now();
        const applied = await this.applier.apply(client, batch.events, batch.checkpoint?.offset ?? null);
        const t3 = performance.now();
        if (this.config.changes) await this.insertChanges(client, applied);
        const t4 = performance.now();
        const st = this.applier.state;
        await client.query(
          `UPDATE ${this.s}.sink_state SET snapshot_gen = $2, snapshot_loading = $3, applied_offset = $4 WHERE sink = $1`,
          [this.name, st.gen, st.loading, st.appliedOffset],
        );
        if (batch.checkpoint)
          await client.query(
            `INSERT INTO ${this.s}.checkpoints (sink, replid, "offset", db, updated_at) VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (sink) DO UPDATE SET replid = EXCLUDED.replid, "offset" = EXCLUDED."offset", db = EXCLUDED.db, updated_at = now()`,
            [this.name, batch.checkpoint.replid, batch.checkpoint.offset, batch.checkpoint.db],
          );
        await this.retention(client);
        const t5 = performance.now();
        await client.query('COMMIT');
        const t6 = performance.now();
        this.stale = false;
        timing = {
          events: batch.events.length,
          connectMs: t1 - t0,
          lockMs: t2 - t1,
          applyMs: t3 - t2,
          changesMs: t4 - t3,
          checkpointMs: t5 - t4,
          commitMs: t6 - t5,
          totalMs: t6 - t0,
        };
      } catch (err) {
        this.stale = true;
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
    });
    this.stats.batches++;
    this.stats.events += batch.events.length;
    if (timing) {
      const m = this.stats.ms;
      m.connect += timing.connectMs;
      m.lock += timing.lockMs;
      m.apply += timing.applyMs;
      m.changes += timing.changesMs;
      m.checkpoint += timing.checkpointMs;
      m.commit += timing.commitMs;
      this.onWrite?.(timing);
    }
  }

  async close(): Promise<void> {
    await this.fetcher?.close();
    await this.pool.end();
  }

  private async loadState(client: pg.PoolClient, lock = false): Promise<void> {
    const { rows } = await client.query<{
      snapshot_gen: string;
      snapshot_loading: boolean;
      applied_offset: string;
    }>(
      `SELECT snapshot_gen, snapshot_loading, applied_offset FROM ${this.s}.sink_state WHERE sink = $1${lock ? ' FOR UPDATE' : ''}`,
      [this.name],
    );
    const r = rows[0];
    if (!r)
      throw new PostgresSinkError(`sink_state has no row for sink ${this.name}; was the schema modified?`);
    this.applier.state = {
      gen: Number(r.snapshot_gen),
      loading: r.snapshot_loading,
      appliedOffset: Number(r.applied_offset),
    };
  }

  /** One row per event; the primary key (replid, offset, seq) makes a replayed batch insert nothing. */
  private async insertChanges(client: pg.PoolClient, events: ChangeEvent[]): Promise<void> {
    const rows = events.filter(
      (e) => !e.op.startsWith('snapshot') || (e.op === 'snapshot' && this.config.changesSnapshot),
    );
    for (let i = 0; i < rows.length; i += 5_000) {
      const chunk = rows.slice(i, i + 5_000);
      const payloads = chunk.map((e) => {
        const p: Record<string, unknown> = {};
        const fields = e as unknown as Record<string, unknown>;
        for (const k of Object.keys(e)) if (!ENVELOPE.has(k)) p[k] = fields[k];
        return JSON.stringify(toJsonb(p));
      });
      const r = await client.query(
        `INSERT INTO ${this.s}.changes (replid, "offset", seq, db, key, op, payload, txn, received_at)
         SELECT r, o, s, d, k, op, p::jsonb, t, timestamptz 'epoch' + ts * interval '1 millisecond'
         FROM unnest($1::text[], $2::bigint[], $3::int[], $4::int[], $5::bytea[], $6::text[], $7::text[], $8::text[], $9::bigint[])
           AS u(r, o, s, d, k, op, p, t, ts)
         ON CONFLICT DO NOTHING`,
        [
          chunk.map((e) => e.source.replid),
          chunk.map((e) => e.source.offset),
          chunk.map((e) => e.source.seq),
          chunk.map((e) => e.db),
          chunk.map((e) => e.key ?? null),
          chunk.map((e) => e.op),
          payloads,
          chunk.map((e) => e.source.txn ?? null),
          chunk.map((e) => e.ts),
        ],
      );
      this.stats.changeRows += r.rowCount ?? 0;
    }
  }

  /** Retention runs inside a write transaction at most once a minute. */
  private async retention(client: pg.PoolClient): Promise<void> {
    const ms = this.config.changesRetentionMs;
    if (!this.config.changes || ms <= 0 || Date.now() - this.lastRetention < 60_000) return;
    this.lastRetention = Date.now();
    await client.query(
      `DELETE FROM ${this.s}.changes WHERE received_at < now() - $1 * interval '1 millisecond'`,
      [ms],
    );
  }

  /**
   * Runs `fn` on a pooled connection. Transient failures (Postgres down, restarting, connection lost) are retried
   * with capped exponential backoff, for ever unless `retryTimeoutMs` is set: `write` resolves only once the batch
   * is committed, so the pipeline waits and no event is lost. Anything else becomes a typed fatal error.
   */
  private async withRetry<T>(what: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      let client: pg.PoolClient | undefined;
      try {
        client = await this.pool.connect();
        const out = await fn(client);
        client.release();
        return out;
      } catch (err) {
        client?.release(true);
        if (err instanceof PostgresSinkError) throw err;
        const timedOut = this.config.retryTimeoutMs > 0 && Date.now() - started > this.config.retryTimeoutMs;
        if (!isTransient(err) || timedOut) throw describePgError(err, `postgres sink ${what} failed`);
        this.stats.retries++;
        this.stale = true;
        if (attempt === 0 || attempt % 10 === 0)
          this.logger.warn(
            { err: (err as Error).message, attempt },
            `postgres unavailable during ${what}; retrying`,
          );
        await sleep(backoffDelay(attempt, 100, this.config.retryMaxDelayMs));
      }
    }
  }
}
