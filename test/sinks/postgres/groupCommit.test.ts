import { afterEach, describe, expect, it } from 'vitest';
import { PostgresSchemaError } from '../../../sinks/postgres/errors.js';
import { normalizeCommand } from '../../../src/commands/normalize.js';
import type { EventBatch } from '../../../src/pipeline/Sink.js';
import { pgQuery, SinkScope } from './helpers.js';

const REPLID = 'd'.repeat(40);

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

describe('PostgresSink group commit', () => {
  const scope = new SinkScope('grp');
  afterEach(() => scope.cleanup());
  const make = (extra: Record<string, unknown> = {}) => scope.make(extra);

  it('commits batches queued behind a transaction together, with the last checkpoint, resolving each', async () => {
    const { sink, schema } = make();
    expect(sink.pipelined).toBe(true);
    await sink.open();
    // The first write starts a transaction at once; the nine after it queue behind it and share the next one.
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => sink.write(batch(i + 1)).then(() => order.push(i + 1))),
    );
    expect(order).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(sink.stats).toMatchObject({ batches: 10, transactions: 2, events: 30, changeRows: 30 });
    const rows = await pgQuery<{ key: Buffer; value: unknown }>(`SELECT key, value FROM "${schema}".keys`);
    const mirror = Object.fromEntries(rows.map((r) => [r.key.toString(), r.value]));
    expect(mirror.n).toBe('10');
    expect(mirror.l).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
    expect(mirror.k7).toBe('7');
    expect(await pgQuery(`SELECT "offset" FROM "${schema}".checkpoints`)).toEqual([{ offset: '1050' }]);
  });

  it('a failed transaction rejects every batch in it and every one after it, and commits none of them', async () => {
    const { sink, schema } = make();
    await sink.open();
    await sink.write(batch(1));
    // A constraint the sink's schema does not have, as a DBA might add: batch 3's DEL fails its transaction.
    await pgQuery(`ALTER TABLE "${schema}".changes ADD CONSTRAINT no_del CHECK (op <> 'del')`);
    const b = (...a: string[]) => a.map((x) => Buffer.from(x));
    const writes = [2, 3, 4].map((i) => sink.write(batch(i, i === 3 ? [b('DEL', 'k1')] : [])));
    const results = await Promise.allSettled(writes);
    // Batch 2 went alone (the first after an idle sink); 3 and 4 shared the failed transaction.
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected']);
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(PostgresSchemaError);
    await expect(sink.write(batch(5))).rejects.toBeInstanceOf(PostgresSchemaError);
    expect(await pgQuery(`SELECT "offset" FROM "${schema}".checkpoints`)).toEqual([{ offset: '250' }]);
    const n = await pgQuery(`SELECT value FROM "${schema}".keys WHERE key = 'n'`);
    expect(n).toEqual([{ value: '2' }]);
  });
});
