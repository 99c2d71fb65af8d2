import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { normalizeCommand } from '../../../src/commands/normalize.js';
import type { EventBatch } from '../../../src/pipeline/Sink.js';
import { PG_URL, pgQuery, SinkScope } from './helpers.js';

const REPLID = 'e'.repeat(40);

/** Batch `i`: INCR n, SET k<i>, RPUSH l <i> (offsets 100*i + 10, 20, 30), checkpoint at 100*i + 50. */
function batch(i: number, extra: Buffer[][] = []): EventBatch {
  const b = (...a: Array<string | number>) => a.map((x) => Buffer.from(String(x)));
  const cmds = [b('INCR', 'n'), b('SET', `k${i}`, i), b('RPUSH', 'l', i), ...extra];
  return {
    events: cmds.flatMap((c, j) =>
      normalizeCommand(c, { db: 0, replid: REPLID, offset: 100 * i + 10 * (j + 1), ts: Date.now() }),
    ),
    checkpoint: { replid: REPLID, offset: 100 * i + 50, db: 0 },
  };
}

/**
 * Holds the sink's next transaction at its first read of `keys` (an ACCESS EXCLUSIVE lock in another session), so
 * the group behind it is copied ahead while it waits.
 */
async function lockKeys(schema: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  await c.query('BEGIN');
  await c.query(`LOCK TABLE "${schema}".keys IN ACCESS EXCLUSIVE MODE`);
  return c;
}

/** Waits until a session sits idle in a transaction holding a lock on `changes`: the ahead one, rows copied. */
async function aheadCopied(schema: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await pgQuery<{ n: string }>(
      `SELECT count(*) AS n FROM pg_locks l JOIN pg_stat_activity a USING (pid)
       WHERE l.relation = $1::regclass AND a.state = 'idle in transaction'`,
      [`"${schema}".changes`],
    );
    if (Number(r[0]?.n) > 0) return;
    if (Date.now() > deadline) throw new Error('the next group was never copied ahead');
    await sleep(20);
  }
}

async function mirror(schema: string): Promise<Record<string, unknown>> {
  const rows = await pgQuery<{ key: Buffer; value: unknown }>(`SELECT key, value FROM "${schema}".keys`);
  return Object.fromEntries(rows.map((r) => [r.key.toString(), r.value]));
}

describe('PostgresSink: change rows copied ahead while the transaction before commits', () => {
  const scope = new SinkScope('ahead');
  afterEach(() => scope.cleanup());

  it('copies the next group while one waits, then commits both in order, each exactly once', async () => {
    const { sink, schema } = scope.make();
    await sink.open();
    await sink.write(batch(1));
    const locker = await lockKeys(schema);
    const order: number[] = [];
    const writes = [2, 3, 4].map((i) => sink.write(batch(i)).then(() => order.push(i)));
    await aheadCopied(schema);
    // Batch 2 waits on the lock; 3 and 4 are copied but not committed: only batch 1's rows are visible.
    expect(await pgQuery(`SELECT count(*)::int AS n FROM "${schema}".changes`)).toEqual([{ n: 3 }]);
    await locker.query('COMMIT');
    await locker.end();
    await Promise.all(writes);
    expect(order).toEqual([2, 3, 4]);
    expect(sink.stats).toMatchObject({ transactions: 3, ahead: 1, aheadDropped: 0, changeRows: 12 });
    const rows = await pgQuery<{ offset: string; n: number }>(
      `SELECT "offset", count(*)::int AS n FROM "${schema}".changes GROUP BY 1 ORDER BY 1`,
    );
    expect(rows.map((r) => Number(r.offset))).toEqual([
      110, 120, 130, 210, 220, 230, 310, 320, 330, 410, 420, 430,
    ]);
    expect(rows.every((r) => r.n === 1)).toBe(true);
    const m = await mirror(schema);
    expect(m.n).toBe('4');
    expect(m.l).toEqual(['1', '2', '3', '4']);
    expect(await pgQuery(`SELECT "offset" FROM "${schema}".checkpoints`)).toEqual([{ offset: '450' }]);
  });

  it('when the transaction before fails, the copied group is rolled back and rejected with it', async () => {
    const { sink, schema } = scope.make();
    await sink.open();
    await sink.write(batch(1));
    // A constraint the sink's schema does not have: batch 2 (SET bad) fails its transaction once the lock is gone.
    await pgQuery(`ALTER TABLE "${schema}".keys ADD CONSTRAINT no_bad CHECK (key <> 'bad')`);
    const locker = await lockKeys(schema);
    const b = (...a: string[]) => a.map((x) => Buffer.from(x));
    const writes = [sink.write(batch(2, [b('SET', 'bad', 'x')])), sink.write(batch(3)), sink.write(batch(4))];
    const settled = Promise.allSettled(writes);
    await aheadCopied(schema);
    await locker.query('COMMIT');
    await locker.end();
    const results = await settled;
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(await pgQuery(`SELECT count(*)::int AS n FROM "${schema}".changes`)).toEqual([{ n: 3 }]);
    expect(await pgQuery(`SELECT "offset" FROM "${schema}".checkpoints`)).toEqual([{ offset: '150' }]);
    expect((await mirror(schema)).n).toBe('1');
  });

  it('rolls the copied group back when the commit before it outlasts the patience, and writes it anyway', async () => {
    const { sink, schema } = scope.make({ changesAheadPatienceMs: 300 });
    await sink.open();
    await sink.write(batch(1));
    const locker = await lockKeys(schema);
    const writes = [2, 3].map((i) => sink.write(batch(i)));
    await aheadCopied(schema);
    await sleep(800);
    await locker.query('COMMIT');
    await locker.end();
    await Promise.all(writes);
    expect(sink.stats).toMatchObject({ transactions: 3, ahead: 0, aheadDropped: 1, changeRows: 9 });
    expect(await pgQuery(`SELECT count(*)::int AS n FROM "${schema}".changes`)).toEqual([{ n: 9 }]);
    expect((await mirror(schema)).l).toEqual(['1', '2', '3']);
    expect(await pgQuery(`SELECT "offset" FROM "${schema}".checkpoints`)).toEqual([{ offset: '350' }]);
  });

  it('with changesAhead=false writes each group in its own transaction only', async () => {
    const { sink, schema } = scope.make({ changesAhead: false });
    await sink.open();
    await sink.write(batch(1));
    const locker = await lockKeys(schema);
    const writes = [2, 3, 4].map((i) => sink.write(batch(i)));
    await sleep(300);
    await locker.query('COMMIT');
    await locker.end();
    await Promise.all(writes);
    expect(sink.stats).toMatchObject({ transactions: 3, ahead: 0, aheadDropped: 0, changeRows: 12 });
    expect((await mirror(schema)).n).toBe('4');
  });
});
