import { afterEach, describe, expect, it } from 'vitest';
import { parsePostgresSpec } from '../../../sinks/postgres/config.js';
import { PostgresSchemaError } from '../../../sinks/postgres/errors.js';
import type { ChangeEvent, ControlEvent } from '../../../src/events/ChangeEvent.js';
import { controlEvent, pgQuery, SinkScope, snapshotString, uniqueSchema } from './helpers.js';

const REPLID = 'a'.repeat(40);

function ev(
  op: string,
  key: string | Buffer,
  offset: number,
  seq: number,
  fields: Record<string, unknown> = {},
): ChangeEvent {
  // The op and payload come from the test, hence the cast.
  return {
    v: 1,
    op,
    db: 0,
    key: Buffer.isBuffer(key) ? key : Buffer.from(key),
    ...fields,
    source: { replid: REPLID, offset, seq, snapshot: false },
    ts: Date.now(),
  } as unknown as ChangeEvent;
}

const snap = (key: string, value: string, offset: number, seq: number, expireAt: number | null = null) =>
  snapshotString(key, value, offset, seq, expireAt, REPLID);

const control = (op: ControlEvent['op'], offset: number) => controlEvent(op, offset, REPLID);

describe('PostgresSink', () => {
  const scope = new SinkScope('sink');
  afterEach(() => scope.cleanup());
  const make = (extra: Record<string, unknown> = {}) => scope.make(extra);

  async function keys(schema: string): Promise<Record<string, unknown>> {
    const rows = await pgQuery<{ key_text: string; value: unknown }>(
      `SELECT key_text, value FROM "${schema}".keys ORDER BY key`,
    );
    return Object.fromEntries(rows.map((r) => [r.key_text, r.value]));
  }

  it('parses specs: sink parameters leave the connection string', () => {
    const c = parsePostgresSpec(
      'postgres://u:p@h:5433/db?schema=abc&changes=false&changesRetention=7d&sslmode=disable',
      {
        master: 'redis://x:1',
      },
    );
    expect(c).toMatchObject({
      schema: 'abc',
      changes: false,
      changesRetentionMs: 7 * 86_400_000,
      master: 'redis://x:1',
    });
    expect(c.connectionString).toBe('postgres://u:p@h:5433/db?sslmode=disable');
    expect(() => parsePostgresSpec('postgres://h/db?schema=Bad-Name')).toThrow(/identifier/);
    expect(c.bigCollectionMembers).toBe(2_000);
    expect(parsePostgresSpec('postgres://h/db?bigCollectionMembers=500').bigCollectionMembers).toBe(500);
    expect(parsePostgresSpec('postgres://h/db', { bigCollectionMembers: 10_000 }).bigCollectionMembers).toBe(
      10_000,
    );
    expect(() => parsePostgresSpec('postgres://h/db?bigCollectionMembers=lots')).toThrow(
      /bigCollectionMembers/,
    );
  });

  it('migrates idempotently, also when two sinks open at once', async () => {
    const { sink, schema } = make();
    const other = scope.reopen(schema);
    expect(await Promise.all([sink.open(), other.open()])).toEqual([null, null]);
    expect(await sink.open()).toBeNull();
    const v = await pgQuery(`SELECT version FROM "${schema}".schema_migrations ORDER BY version`);
    expect(v).toEqual([{ version: 1 }, { version: 2 }, { version: 3 }]);
    const views = await pgQuery(
      `SELECT table_name FROM information_schema.views WHERE table_schema = $1 ORDER BY table_name`,
      [schema],
    );
    expect(views).toEqual(
      ['live_hash_fields', 'live_keys', 'live_list_items', 'live_set_members', 'live_zset_members'].map(
        (t) => ({
          table_name: t,
        }),
      ),
    );
  });

  it('commits a batch with its checkpoint, skips a replayed batch, and reopens at the checkpoint', async () => {
    const { sink, schema } = make();
    await sink.open();
    const batch = {
      events: [
        ev('push', 'l', 10, 0, {
          type: 'list',
          side: 'right',
          elements: [Buffer.from('a'), Buffer.from('b')],
        }),
        ev('set', Buffer.from([0xff]), 20, 0, { type: 'string', value: Buffer.from('x'), expireAt: null }),
        ev('incrby', 'n', 30, 0, { type: 'string', delta: 5 }),
      ],
      checkpoint: { replid: REPLID, offset: 35, db: 0 },
    };
    await sink.write(batch);
    await sink.write(batch);
    const rows = await keys(schema);
    expect(rows).toMatchObject({ l: ['a', 'b'], n: '5' });
    const bin = await pgQuery(`SELECT key_text, value FROM "${schema}".keys WHERE key = '\\xff'::bytea`);
    expect(bin).toEqual([{ key_text: null, value: 'x' }]);
    const changes = await pgQuery<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".changes`);
    expect(Number(changes[0]!.n)).toBe(3);
    await sink.close();
    const again = scope.reopen(schema);
    expect(await again.open()).toEqual({ replid: REPLID, offset: 35, db: 0 });
  });

  it('a failing batch commits nothing: neither keys, changes nor checkpoint', async () => {
    const { sink, schema } = make();
    await sink.open();
    await sink.write({
      events: [ev('incrby', 'n', 10, 0, { type: 'string', delta: 1 })],
      checkpoint: { replid: REPLID, offset: 10, db: 0 },
    });
    // A constraint the sink's schema does not have, as a DBA might add: the batch must fail as a whole.
    await pgQuery(`ALTER TABLE "${schema}".changes ADD CONSTRAINT no_del CHECK (op <> 'del')`);
    const bad = {
      events: [ev('incrby', 'n', 20, 0, { type: 'string', delta: 1 }), ev('del', 'n', 30, 0)],
      checkpoint: { replid: REPLID, offset: 30, db: 0 },
    };
    await expect(sink.write(bad)).rejects.toBeInstanceOf(PostgresSchemaError);
    expect(await keys(schema)).toEqual({ n: '1' });
    const cp = await pgQuery(`SELECT "offset" FROM "${schema}".checkpoints`);
    expect(cp).toEqual([{ offset: '10' }]);
  });

  it('a new snapshot generation deletes keys the new snapshot lacks; an interrupted one forces a full resync', async () => {
    const { sink, schema } = make();
    await sink.open();
    await sink.write({
      events: [control('snapshot-begin', 100), snap('a', '1', 100, 1), snap('b', '2', 100, 2)],
      checkpoint: null,
    });
    await sink.write({
      events: [control('snapshot-end', 100)],
      checkpoint: { replid: REPLID, offset: 100, db: 0 },
    });
    await sink.write({
      events: [ev('set', 'c', 120, 0, { type: 'string', value: Buffer.from('3'), expireAt: null })],
      checkpoint: { replid: REPLID, offset: 120, db: 0 },
    });
    expect(await keys(schema)).toEqual({ a: '1', b: '2', c: '3' });
    // A full resync: only b survives on the master.
    await sink.write({ events: [control('snapshot-begin', 500), snap('b', '22', 500, 1)], checkpoint: null });
    const reopened = scope.reopen(schema);
    expect(await reopened.open()).toBeNull();
    await sink.write({
      events: [control('snapshot-end', 500)],
      checkpoint: { replid: REPLID, offset: 500, db: 0 },
    });
    expect(await keys(schema)).toEqual({ b: '22' });
    expect(await reopened.open()).toEqual({ replid: REPLID, offset: 500, db: 0 });
  });

  it('live_keys hides keys whose expiry has passed; a key stays until the master sends DEL', async () => {
    const { sink, schema } = make();
    await sink.open();
    const now = Date.now();
    await sink.write({
      events: [
        ev('set', 'soon', 10, 0, { type: 'string', value: Buffer.from('x'), expireAt: now + 50 }),
        ev('set', 'later', 20, 0, { type: 'string', value: Buffer.from('y'), expireAt: now + 3_600_000 }),
        ev('set', 'past', 30, 0, { type: 'string', value: Buffer.from('z'), expireAt: null }),
        ev('expire', 'past', 40, 0, { expireAt: now - 1000 }),
      ],
      checkpoint: { replid: REPLID, offset: 40, db: 0 },
    });
    await new Promise((r) => setTimeout(r, 100));
    const live = await pgQuery(`SELECT key_text FROM "${schema}".live_keys ORDER BY key_text`);
    expect(live).toEqual([{ key_text: 'later' }]);
    const all = await pgQuery(`SELECT key_text FROM "${schema}".keys ORDER BY key_text`);
    expect(all).toEqual([{ key_text: 'later' }, { key_text: 'past' }, { key_text: 'soon' }]);
  });

  it('an op that needs the master without one configured stops with a clear error', async () => {
    const { sink } = make({ master: '' });
    await sink.open();
    await expect(
      sink.write({
        events: [ev('pfadd', 'h', 10, 0, { type: 'string', elements: [Buffer.from('a')] })],
        checkpoint: { replid: REPLID, offset: 10, db: 0 },
      }),
    ).rejects.toThrow(/no master is configured/);
  });

  it('waits for Postgres while it is unreachable instead of failing', async () => {
    const schema = uniqueSchema('down'); // never created: Postgres is not there
    const { PostgresSink } = await import('../../../sinks/postgres/PostgresSink.js');
    const { silentLogger } = await import('../../../src/observe/logger.js');
    const sink = new PostgresSink(
      parsePostgresSpec('postgres://postgres@127.0.0.1:1/test', {
        schema,
        retryTimeoutMs: 1500,
        retryMaxDelayMs: 200,
      }),
      { logger: silentLogger() },
    );
    scope.adopt(sink);
    const t0 = Date.now();
    await expect(sink.open()).rejects.toThrow(/ECONNREFUSED|connect/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    expect(sink.stats.retries).toBeGreaterThan(2);
  });
});
