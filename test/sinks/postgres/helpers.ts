import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { parsePostgresSpec } from '../../../sinks/postgres/config.js';
import { PostgresSink } from '../../../sinks/postgres/PostgresSink.js';
import { type VerifyOptions, type VerifyResult, verifyMirror } from '../../../sinks/postgres/verify.js';
import { normalizeCommand } from '../../../src/commands/normalize.js';
import type { ChangeEvent, ControlEvent, SnapshotEvent } from '../../../src/events/ChangeEvent.js';
import { silentLogger } from '../../../src/observe/logger.js';
import { RedisServer, type RedisServerOptions } from '../../harness/RedisServer.js';
import type { RedtailProcess } from '../../harness/RedtailProcess.js';
import { ReplicationTap } from '../../harness/ReplicationTap.js';
import type { TestScope } from '../../harness/TestScope.js';

export const PG_URL = process.env.REDTAIL_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A schema name no other test (or parallel run) uses. */
export function uniqueSchema(prefix = 'rt'): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
}

export async function pgQuery<T extends pg.QueryResultRow = pg.QueryResultRow>(
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

/** The offset of the sink's checkpoint in `schema`, or -1 before the sink has created its tables. */
export async function mirrorOffset(schema: string): Promise<number> {
  try {
    const rows = await pgQuery<{ offset: string }>(`SELECT "offset" FROM "${schema}".checkpoints`);
    return rows.length > 0 ? Number(rows[0]!.offset) : -1;
  } catch {
    return -1;
  }
}

/** Waits until the sink in `schema` has committed everything the master had written when called. */
export async function mirrorCaughtUp(master: RedisServer, schema: string): Promise<void> {
  const target = Number((await master.info('replication')).master_repl_offset);
  const deadline = Date.now() + 60_000;
  while ((await mirrorOffset(schema)) < target) {
    if (Date.now() > deadline) throw new Error(`the mirror did not reach offset ${target}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * `redtail run` mirroring `master` into a fresh schema named after `prefix` (dropped at teardown), with a checkpoint
 * file of its own; `start` may be called again to restart it after a kill.
 */
export function mirrorRun(
  scope: TestScope,
  master: RedisServer,
  prefix: string,
  /** More query parameters of the sink URL, e.g. `&bigCollectionMembers=500`. */
  params = '',
): { schema: string; start: () => RedtailProcess } {
  const schema = uniqueSchema(prefix);
  scope.defer(() => dropSchema(schema));
  const checkpoint = join(mkdtempSync(join(tmpdir(), `redtail-${prefix}-`)), 'cp.json');
  const args = [
    'run',
    '--log-level',
    'warn',
    '--master',
    master.url(),
    '--sink',
    `${PG_URL}?schema=${schema}${params}`,
  ];
  return { schema, start: () => scope.redtail([...args, '--checkpoint', checkpoint]) };
}

export async function dropSchema(schema: string): Promise<void> {
  await pgQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

export function sinkFor(schema: string, extra: Record<string, unknown> = {}): PostgresSink {
  return new PostgresSink(parsePostgresSpec(PG_URL, { schema, ...extra }), { logger: silentLogger() });
}

/**
 * A real master, a replication tap reading exactly what it propagates, and a Postgres sink fed with the normalized
 * events, batch by batch with the tap's offset as checkpoint: the sink sees what `redtail run` would give it.
 */
export class MirrorHarness {
  readonly schema = uniqueSchema('model');
  sink!: PostgresSink;
  private constructor(
    readonly master: RedisServer,
    readonly tap: ReplicationTap,
  ) {}

  /**
   * `sinkOptions` are the sink's (e.g. `bigCollectionMembers`); `beforeOpen` runs after the master and the tap are up
   * and before the sink opens (and migrates) its schema: tests build an older schema's mirror there.
   */
  static async start(
    server: RedisServerOptions = {},
    sinkOptions: Record<string, unknown> = {},
    beforeOpen?: (h: MirrorHarness) => Promise<void>,
  ): Promise<MirrorHarness> {
    const master = await RedisServer.start(server);
    const tap = await ReplicationTap.connect(master.port);
    const h = new MirrorHarness(master, tap);
    await beforeOpen?.(h);
    h.sink = sinkFor(h.schema, { master: master.url(), ...sinkOptions });
    await h.sink.open();
    return h;
  }

  get redis() {
    return this.master.client();
  }

  /** Runs commands on the master (errors are fine: they are not propagated) and applies the stream to the sink. */
  async run(commands: Array<Array<string | Buffer | number>>, batch = 50): Promise<void> {
    const c = this.master.client();
    for (const cmd of commands) await c.call(String(cmd[0]), ...cmd.slice(1)).catch(() => {});
    await this.sync(batch);
  }

  async sync(batch = 50): Promise<void> {
    const info = await this.master.info('replication');
    await this.tap.waitForOffset(Number(info.master_repl_offset));
    const tapped = this.tap.drain();
    const events: ChangeEvent[] = [];
    for (const t of tapped) {
      const evs = normalizeCommand(t.args, {
        db: t.db,
        replid: this.tap.replid,
        offset: t.offset,
        ts: t.receivedAt,
        ...(t.txn ? { txn: t.txn } : {}),
      });
      events.push(...evs);
    }
    for (let i = 0; i < events.length; i += batch) {
      const chunk = events.slice(i, i + batch);
      await this.sink.write({
        events: chunk,
        checkpoint: { replid: this.tap.replid, offset: chunk[chunk.length - 1]!.source.offset, db: 0 },
      });
    }
    await this.sink.write({
      events: [],
      checkpoint: { replid: this.tap.replid, offset: this.tap.offset, db: 0 },
    });
  }

  async verify(extra: Pick<VerifyOptions, 'onProgress'> = {}): Promise<VerifyResult> {
    // The master PINGs its replicas every 10 s, which moves its offset past the mirror's checkpoint until the tap's
    // stream is applied: verify's catch-up waits (10 s, then 15 s per re-read round) would then time out and a test
    // ran past its 60 s. The harness applies what the tap received while verify runs, as `redtail run` would.
    let syncing: Promise<void> | null = null;
    const timer = setInterval(() => {
      syncing ??= this.sync()
        .catch(() => {})
        .finally(() => {
          syncing = null;
        });
    }, 200);
    try {
      await this.sync();
      return await verifyMirror({
        master: this.master.url(),
        postgres: PG_URL,
        schema: this.schema,
        timeoutMs: 10_000,
        ...extra,
      });
    } finally {
      clearInterval(timer);
      await syncing;
    }
  }

  async stop(): Promise<void> {
    this.tap.close();
    await this.sink.close();
    await this.master.stop();
    await dropSchema(this.schema);
  }
}

/** Formats differences for an assertion message. */
export function describeDiffs(r: VerifyResult): string {
  return r.differences
    .slice(0, 5)
    .map(
      (d) =>
        `db${d.db} ${d.key.toString('latin1')}: redis=${JSON.stringify(d.redis)} mirror=${JSON.stringify(d.mirror)}`,
    )
    .join('\n');
}

/** Deterministic pseudo-random numbers, so a failing workload can be replayed with its seed. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Sinks and schemas a test file makes, closed and dropped after each test: `const scope = new SinkScope('x')`,
 * `afterEach(() => scope.cleanup())`, then `scope.make()` in each test.
 */
export class SinkScope {
  private readonly schemas: string[] = [];
  private readonly sinks: PostgresSink[] = [];

  constructor(private readonly prefix: string) {}

  make(extra: Record<string, unknown> = {}): { sink: PostgresSink; schema: string } {
    const schema = uniqueSchema(this.prefix);
    this.schemas.push(schema);
    return { sink: this.reopen(schema, extra), schema };
  }

  /** Another sink on a schema of this scope (a second instance, or the first one after a restart). */
  reopen(schema: string, extra: Record<string, unknown> = {}): PostgresSink {
    const sink = sinkFor(schema, extra);
    this.sinks.push(sink);
    return sink;
  }

  /** A sink made by hand, closed with the others. */
  adopt(sink: PostgresSink): void {
    this.sinks.push(sink);
  }

  async cleanup(): Promise<void> {
    for (const s of this.sinks.splice(0)) await s.close().catch(() => {});
    for (const s of this.schemas.splice(0)) await dropSchema(s);
  }
}

export const TEST_REPLID = 'a'.repeat(40);

/** A snapshot event of a string key, as the RDB decoder makes it. */
export function snapshotString(
  key: string,
  value: string,
  offset: number,
  seq: number,
  expireAt: number | null = null,
  replid = TEST_REPLID,
): SnapshotEvent {
  return {
    v: 1,
    op: 'snapshot',
    db: 0,
    key: Buffer.from(key),
    type: 'string',
    value: Buffer.from(value),
    expireAt,
    source: { replid, offset, seq, snapshot: true },
    ts: Date.now(),
  } as SnapshotEvent;
}

/** A keyspace-wide marker (snapshot-begin, snapshot-end, flushall...) at `offset`. */
export function controlEvent(op: ControlEvent['op'], offset: number, replid = TEST_REPLID): ChangeEvent {
  return { v: 1, op, db: 0, source: { replid, offset, seq: 0, snapshot: true }, ts: Date.now() };
}
