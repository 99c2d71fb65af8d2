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
  /** Transactions whose `changes` rows were copied ahead, while the transaction before them committed. */
  ahead: number;
  /** Ahead transactions rolled back and written the ordinary way (a replay, an error, or patience run out). */
  aheadDropped: number;
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

/**
 * The next group's transaction, opened on the pool's second connection while the current group commits: it copies
 * the group's `changes` rows (half of a transaction's serial time on the mixed load, bench/NOTES.md) and then waits;
 * once the current group committed, the same transaction locks `sink_state`, applies, checkpoints and commits, so
 * commits stay in batch order and each group is still one transaction. It holds only rows it inserted, all of events
 * past the current group's last offset, so the current group's statements never wait on it (no deadlock); and it
 * never touches `keys`, member rows, blobs or `sink_state` before the group before it committed.
 */
interface Ahead {
  group: Queued[];
  /** Null when it was rolled back (or never connected): the group is then written the ordinary way. */
  client: pg.PoolClient | null;
  /** The events whose rows were copied, in order (the group's events), and the last of their offsets. */
  events: ChangeEvent[];
  last: number;
  rows: number;
  /** Blobs the copied rows reference, reported to the transaction's blob bookkeeping once it applies. */
  refs: string[][];
  ms: number;
  error: unknown;
  /** Set when it is being rolled back: copy no more batches. */
  stop: boolean;
  /** Settles when the copying ended (it never rejects: a failure is kept in `error`). */
  copied: Promise<void>;
}

/** Behind a running commit: where the next group's ahead transaction is opened when batches arrive. */
interface Slot {
  /** The running group's last offset: batches copied ahead must be past it. */
  after: number;
  /** The running group's commit has not settled yet. */
  busy: boolean;
  /** No ahead transaction may open (anymore) behind this commit. */
  closed: boolean;
  ahead: Ahead | null;
}

/** Batches of one group as one: their events in order, the last one's checkpoint (all have one or none has). */
function merged(batches: EventBatch[]): EventBatch {
  const events: ChangeEvent[] = [];
  for (const b of batches) for (const e of b.events) events.push(e);
  return { events, checkpoint: batches[batches.length - 1]!.checkpoint };
}

/** The 'error' listener of an ahead connection (see copyAhead): the failure surfaces in its next query. */
function noteAheadError(): void {}

/** The highest stream offset among `events`, or `none` when there are none. */
function lastOffset(events: readonly ChangeEvent[], none: number): number {
  let max = none;
  for (const e of events) if (e.source.offset > max) max = e.source.offset;
  return max;
}

/**
 * Whether a queued batch may be copied ahead behind a group whose last offset is `after`: a stream batch (a
 * checkpoint, no snapshot event) whose events are all past it, so no row it inserts can be one the group before
 * inserts, in any attempt (a duplicate would make that group wait on this transaction, which waits for it).
 */
function aheadable(b: EventBatch, after: number): boolean {
  return (
    b.checkpoint !== null &&
    b.events.length > 0 &&
    b.events.every((e) => !e.source.snapshot && e.source.offset > after)
  );
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
    ahead: 0,
    aheadDropped: 0,
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
  /** The running commit's place for the next group's ahead transaction (drain). */
  private slot: Slot | null = null;

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
      else this.fillSlot();
    });
  }

  private async drain(): Promise<void> {
    let ahead: Ahead | null = null;
    while (this.queue.length > 0 || ahead) {
      const group = ahead ? ahead.group : this.takeGroup();
      if (ahead) this.stats.batches += group.length;
      const batch = group.length === 1 ? group[0]!.batch : merged(group.map((q) => q.batch));
      const slot: Slot = {
        after: lastOffset(batch.events, -1),
        busy: true,
        closed: !this.aheadFor(batch),
        ahead: null,
      };
      this.slot = slot;
      const committing = this.commit(batch, ahead).finally(() => {
        slot.busy = false;
      });
      this.fillSlot();
      try {
        await this.awaitCommit(committing, slot);
        for (const q of group) q.resolve();
      } catch (err) {
        // Nothing after a failed batch may commit: that would leave a gap behind the checkpoint.
        this.failed = err as Error;
        slot.closed = true;
        if (slot.ahead) await this.dropAhead(slot.ahead);
        for (const q of [...group, ...(slot.ahead?.group ?? []), ...this.queue.splice(0)]) q.reject(err);
      } finally {
        slot.closed = true;
        this.slot = null;
      }
      ahead = !this.failed && slot.ahead ? await this.readyAhead(slot.ahead) : null;
    }
    this.draining = null;
  }

  /**
   * Waits for the current group's commit. If it takes longer than the patience, the next group's transaction (which
   * sits idle once copied) is rolled back and no other opens behind this commit: a second redtail writing the same
   * schema could be waiting on its rows while holding the `sink_state` lock this commit waits for, a cycle Postgres
   * cannot see (one edge of it is ours: the ahead transaction waits for this commit in redtail, not in Postgres).
   */
  private async awaitCommit(committing: Promise<void>, slot: Slot): Promise<void> {
    if (slot.closed) return committing;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), this.config.changesAheadPatienceMs);
    });
    const settled = committing.then(
      () => false,
      () => false,
    );
    const tooLong = await Promise.race([settled, late]);
    clearTimeout(timer);
    if (tooLong) {
      slot.closed = true;
      if (slot.ahead) await this.dropAhead(slot.ahead);
    }
    return committing;
  }

  /** Whether a group behind `current` may be copied ahead: the change log is on and `current` is a stream group. */
  private aheadFor(current: EventBatch): boolean {
    // A snapshot load's groups (no checkpoint) drop and rebuild indexes and swap tables: nothing runs beside them.
    return this.config.changes && this.config.changesAhead && current.checkpoint !== null;
  }

  /** Opens the ahead transaction behind the running commit once a batch that may go in it is queued. */
  private fillSlot(): void {
    const slot = this.slot;
    if (!slot || slot.closed || slot.ahead) return;
    const first = this.queue[0];
    if (!first || !aheadable(first.batch, slot.after)) return;
    const ahead: Ahead = {
      group: [],
      client: null,
      events: [],
      last: -1,
      rows: 0,
      refs: [],
      ms: 0,
      error: null,
      stop: false,
      copied: Promise.resolve(),
    };
    ahead.copied = this.copyAhead(ahead, slot.after, () => slot.busy);
    slot.ahead = ahead;
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

  /**
   * BEGIN, then the change rows of the queued batches that may join the group, while the group before it is still
   * committing (more batches arrive meanwhile: they are copied too, up to `maxGroupEvents`).
   */
  private async copyAhead(a: Ahead, after: number, busy: () => boolean): Promise<void> {
    const t0 = performance.now();
    try {
      a.client = await this.pool.connect();
      // A checked-out pg client has no 'error' listener (the pool's is for idle ones), and this one can sit idle for
      // a whole commit: a lost connection would otherwise be an uncaught 'error' event. Its next query fails anyway.
      a.client.on('error', noteAheadError);
      await a.client.query('BEGIN');
      for (let more = this.takeAhead(a, after); more.length > 0; more = this.takeAhead(a, after)) {
        a.rows += await writeChanges(a.client, `${this.s}.changes`, this.changeRows(more), (refs) =>
          a.refs.push([...refs]),
        );
        if (!busy() || a.stop) break;
      }
    } catch (err) {
      a.error = err;
    }
    a.ms = performance.now() - t0;
  }

  /** Moves the queued batches that may join the ahead group (see openAhead) into it; returns their events. */
  private takeAhead(a: Ahead, after: number): ChangeEvent[] {
    const taken: ChangeEvent[] = [];
    while (this.queue.length > 0) {
      const next = this.queue[0]!.batch;
      if (!aheadable(next, Math.max(after, a.last))) break;
      if (a.events.length > 0 && a.events.length + next.events.length > this.config.maxGroupEvents) break;
      a.group.push(this.queue.shift()!);
      for (const e of next.events) {
        a.events.push(e);
        taken.push(e);
      }
      a.last = lastOffset(next.events, a.last);
    }
    return taken;
  }

  /** The ahead group once its copying ended: null when it took no batch; without its client when that failed. */
  private async readyAhead(a: Ahead): Promise<Ahead | null> {
    await a.copied;
    if (a.error || a.group.length === 0) await this.dropAhead(a);
    return a.group.length > 0 ? a : null;
  }

  /** Rolls an ahead transaction back (its group, if any, is then written the ordinary way). */
  private async dropAhead(a: Ahead): Promise<void> {
    a.stop = true;
    await a.copied;
    const client = a.client;
    if (!client) return;
    a.client = null;
    if (a.group.length > 0) this.stats.aheadDropped++;
    const ok = await client.query('ROLLBACK').then(
      () => true,
      () => false,
    );
    client.removeListener('error', noteAheadError);
    client.release(ok && !a.error ? undefined : true);
  }

  private async commit(batch: EventBatch, ahead: Ahead | null): Promise<void> {
    const t0 = performance.now();
    let timing = ahead?.client ? await this.commitAhead(ahead, batch, t0) : null;
    if (!timing)
      await this.withRetry('write', async (client) => {
        timing = await this.transact(client, batch, null, t0);
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

  /** The group's transaction on its ahead connection; null when it must be written the ordinary way instead. */
  private async commitAhead(ahead: Ahead, batch: EventBatch, t0: number): Promise<WriteTiming | null> {
    const client = ahead.client!;
    ahead.client = null;
    try {
      const timing = await this.transact(client, batch, ahead, t0);
      client.removeListener('error', noteAheadError);
      client.release();
      if (timing) {
        this.stats.ahead++;
        this.stats.changeRows += ahead.rows;
      } else this.stats.aheadDropped++;
      return timing;
    } catch (err) {
      client.removeListener('error', noteAheadError);
      client.release(true);
      this.stats.aheadDropped++;
      // A fatal error fails the same way on the ordinary path; anything else is retried there, as always.
      if (err instanceof PostgresSinkError) throw err;
      return null;
    }
  }

  /**
   * One attempt at a group's transaction. With `ahead`, `client` is its connection, inside its transaction, with the
   * change rows of all the group's events copied: that is right only if none of them is a replay (all past the
   * applied offset read under the lock, as they are after the group before committed); otherwise it rolls back and
   * returns null, and the group is written the ordinary way.
   */
  private async transact(
    client: pg.PoolClient,
    batch: EventBatch,
    ahead: Ahead | null,
    t0: number,
  ): Promise<WriteTiming | null> {
    const t1 = performance.now();
    let begun = ahead !== null;
    try {
      await this.beginLocked(client, ahead === null);
      begun = true;
      if (ahead && !ahead.events.every((e) => e.source.offset > this.applier.state.appliedOffset)) {
        await client.query('ROLLBACK');
        return null;
      }
      if (this.stale) await this.applier.loadPendings(client);
      const t2 = performance.now();
      const applied = await this.applier.apply(client, batch.events, batch.checkpoint?.offset ?? null);
      const t3 = performance.now();
      if (ahead) for (const refs of ahead.refs) this.applier.blobs.need(refs);
      else if (this.config.changes) await this.insertChanges(client, applied);
      const t4 = performance.now();
      await this.retention(client);
      // Blobs of huge values: the new ones stored, those no row references anymore deleted (blobs.ts).
      await this.applier.blobs.finish(client);
      const t5 = performance.now();
      await this.saveAndCommit(client, batch.checkpoint);
      const t6 = performance.now();
      this.stale = false;
      return {
        events: batch.events.length,
        connectMs: t1 - t0,
        lockMs: t2 - t1,
        applyMs: t3 - t2,
        // Copied ahead: the copy's own time, which overlapped the transaction before.
        changesMs: ahead ? ahead.ms : t4 - t3,
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
  private async beginLocked(client: pg.PoolClient, begin = true): Promise<void> {
    const lock = `SELECT snapshot_gen, snapshot_loading, applied_offset FROM ${this.s}.sink_state WHERE sink = ${client.escapeLiteral(this.name)} FOR UPDATE`;
    if (!begin) {
      this.setState((await client.query<StateRow>(lock)).rows[0]);
      return;
    }
    const res = (await client.query(`BEGIN; ${lock}`)) as unknown as Array<pg.QueryResult<StateRow>>;
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
    const rows = this.changeRows(events);
    this.stats.changeRows += await writeChanges(client, `${this.s}.changes`, rows, (refs) =>
      this.applier.blobs.need(refs),
    );
  }

  /** The events that get a `changes` row: snapshot events only with `changesSnapshot`. */
  private changeRows(events: ChangeEvent[]): ChangeEvent[] {
    return events.filter(
      (e) => !e.op.startsWith('snapshot') || (e.op === 'snapshot' && this.config.changesSnapshot),
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
