import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { ChangeEvent, ReplicationPosition } from '../../src/events/ChangeEvent.js';
import type { MasterTls } from '../../src/link/tls.js';
import { createLogger, type Logger } from '../../src/observe/logger.js';
import type { EventBatch, Sink } from '../../src/pipeline/Sink.js';
import { backoffDelay } from '../../src/retry.js';
import { writeChanges } from './changes.js';
import { type PostgresSinkConfig, pgConnectionString } from './config.js';
import { describePgError, isTransient, PostgresSinkError } from './errors.js';
import { type CurrentMaster, type Fetcher, fixedMaster, MasterFetcher } from './MasterFetcher.js';
import { MirrorApplier } from './MirrorApplier.js';
import type { MemberRowStats } from './memberRows.js';
import { ident, migrate } from './migrations.js';

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
  /** Transactions committed (several batches share one when they queue up behind a commit). */
  transactions: number;
  events: number;
  changeRows: number;
  retries: number;
  /** Total ms per phase of the committed writes (see WriteTiming): where the sink's time goes. */
  ms: { connect: number; lock: number; apply: number; changes: number; checkpoint: number; commit: number };
  /** Big collections in member rows (memberRows.ts): loads, rows written, ms loading and writing them (part of apply). */
  memberRows?: MemberRowStats;
}

interface StateRow {
  snapshot_gen: string;
  snapshot_loading: boolean;
  applied_offset: string;
}

interface Queued {
  batch: EventBatch;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Batches of one group as one: their events in order, the last one's checkpoint (all have one or none has). */
function merged(batches: EventBatch[]): EventBatch {
  const events: ChangeEvent[] = [];
  for (const b of batches) for (const e of b.events) events.push(e);
  return { events, checkpoint: batches[batches.length - 1]!.checkpoint };
}

/**
 * The Postgres sink: a change log (`changes`) and an exact mirror of the dataset (`keys`), written with the
 * checkpoint in one transaction per batch, so what Postgres holds always corresponds to one stream position.
 */
export class PostgresSink implements Sink {
  readonly name: string;
  /** write() may be called before the previous one resolved: queued batches are group-committed, in order. */
  readonly pipelined = true;
  /** ...also behind `redtail run`'s sink monitor (src/observe/SinkMonitor.ts). */
  readonly stats: PostgresSinkStats = {
    batches: 0,
    transactions: 0,
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
  private readonly queue: Queued[] = [];
  private draining: Promise<void> | null = null;
  private failed: Error | null = null;
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
    this.applier = new MirrorApplier(
      config.schema,
      this.fetcher,
      this.logger,
      config.snapshotChunkRows,
      config.bigCollectionMembers,
    );
    this.stats.memberRows = this.applier.rows.stats;
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

  /**
   * Queues the batch and resolves once it is committed. Batches that arrive while a transaction runs are committed
   * together in the next one (group commit): one transaction, one lock of `sink_state`, one checkpoint row (the last
   * batch's) and one WAL flush for all of them, and a key they all touch is read and written once. Each batch still
   * resolves only when its events and a checkpoint at or after it are durable, in the order of the calls.
   */
  write(batch: EventBatch): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.queue.push({ batch, resolve, reject });
      if (!this.draining) this.draining = this.drain();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const group = this.takeGroup();
      try {
        await this.commit(group.length === 1 ? group[0]!.batch : merged(group.map((q) => q.batch)));
        for (const q of group) q.resolve();
      } catch (err) {
        // Nothing after a failed batch may commit: that would leave a gap behind the checkpoint.
        this.failed = err as Error;
        for (const q of [...group, ...this.queue.splice(0)]) q.reject(err);
      }
    }
    this.draining = null;
  }

  /**
   * The queued batches that go in one transaction: consecutive, up to `maxGroupEvents`, and all with a checkpoint or
   * all without (a snapshot's batches have none; one transaction must not end a load and hold stream events of the
   * same group without the checkpoint that goes with them).
   */
  private takeGroup(): Queued[] {
    const first = this.queue.shift()!;
    const group = [first];
    let events = first.batch.events.length;
    const withCheckpoint = first.batch.checkpoint !== null;
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      if ((next.batch.checkpoint !== null) !== withCheckpoint) break;
      if (events + next.batch.events.length > this.config.maxGroupEvents) break;
      events += next.batch.events.length;
      group.push(this.queue.shift()!);
    }
    this.stats.batches += group.length;
    return group;
  }

  private async commit(batch: EventBatch): Promise<void> {
    const t0 = performance.now();
    let timing: WriteTiming | undefined;
    await this.withRetry('write', async (client) => {
      const t1 = performance.now();
      let begun = false;
      try {
        await this.beginLocked(client);
        begun = true;
        if (this.stale) await this.applier.loadPendings(client);
        const t2 = performance.now();
        const applied = await this.applier.apply(client, batch.events, batch.checkpoint?.offset ?? null);
        const t3 = performance.now();
        if (this.config.changes) await this.insertChanges(client, applied);
        const t4 = performance.now();
        await this.retention(client);
        // Blobs of huge values: the new ones stored, those no row references anymore deleted (blobs.ts).
        await this.applier.blobs.finish(client);
        const t5 = performance.now();
        await this.saveAndCommit(client, batch.checkpoint);
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
        if (begun) await client.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        // The kept bytes of the batch's huge values are not needed past its transaction.
        this.applier.blobs.release();
      }
    });
    this.stats.transactions++;
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
    await this.draining;
    await this.fetcher?.close();
    await this.pool.end();
  }

  private async loadState(client: pg.PoolClient): Promise<void> {
    const { rows } = await client.query<StateRow>(
      `SELECT snapshot_gen, snapshot_loading, applied_offset FROM ${this.s}.sink_state WHERE sink = $1`,
      [this.name],
    );
    this.setState(rows[0]);
  }

  /**
   * BEGIN and the `sink_state` row lock (which serializes two redtails writing one sink) in one round trip: a
   * simple-protocol query may hold several statements, and the round trips of a transaction, not its statements,
   * are what a loaded machine makes slow. The sink name is sent as an escaped literal.
   */
  private async beginLocked(client: pg.PoolClient): Promise<void> {
    const res = (await client.query(
      `BEGIN; SELECT snapshot_gen, snapshot_loading, applied_offset FROM ${this.s}.sink_state WHERE sink = ${client.escapeLiteral(this.name)} FOR UPDATE`,
    )) as unknown as Array<pg.QueryResult<StateRow>>;
    this.setState(res[1]?.rows[0]);
  }

  /** The sink state, the checkpoint (when the batch has one) and COMMIT in one round trip, as in beginLocked. */
  private async saveAndCommit(client: pg.PoolClient, cp: EventBatch['checkpoint']): Promise<void> {
    const st = this.applier.state;
    const name = client.escapeLiteral(this.name);
    const int = (n: number) => String(Math.trunc(n));
    const sql = [
      `UPDATE ${this.s}.sink_state SET snapshot_gen = ${int(st.gen)}, snapshot_loading = ${st.loading}, applied_offset = ${int(st.appliedOffset)} WHERE sink = ${name}`,
    ];
    if (cp)
      sql.push(
        `INSERT INTO ${this.s}.checkpoints (sink, replid, "offset", db, updated_at) VALUES (${name}, ${client.escapeLiteral(cp.replid)}, ${int(cp.offset)}, ${int(cp.db)}, now())
         ON CONFLICT (sink) DO UPDATE SET replid = EXCLUDED.replid, "offset" = EXCLUDED."offset", db = EXCLUDED.db, updated_at = now()`,
      );
    sql.push('COMMIT');
    await client.query(sql.join(';\n'));
  }

  private setState(r: StateRow | undefined): void {
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
    this.stats.changeRows += await writeChanges(client, `${this.s}.changes`, rows, (refs) =>
      this.applier.blobs.need(refs),
    );
  }

  /** Retention runs inside a write transaction at most once a minute. */
  private async retention(client: pg.PoolClient): Promise<void> {
    const ms = this.config.changesRetentionMs;
    if (!this.config.changes || ms <= 0 || Date.now() - this.lastRetention < 60_000) return;
    this.lastRetention = Date.now();
    const { rows } = await client.query<{ blobs: string }>(
      `WITH d AS (DELETE FROM ${this.s}.changes WHERE received_at < now() - $1 * interval '1 millisecond' RETURNING blobs)
       SELECT count(blobs) AS blobs FROM d`,
      [ms],
    );
    // Rows that referenced blobs are gone: the blobs may have lost their last reference.
    if (Number(rows[0]?.blobs) > 0) this.applier.blobs.sweep();
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
