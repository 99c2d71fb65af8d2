import { afterEach, describe, expect, it } from 'vitest';
import { normalizeCommand } from '../../../src/commands/normalize.js';
import type { ChangeEvent } from '../../../src/events/ChangeEvent.js';
import { pgQuery, SinkScope } from './helpers.js';

const REPLID = 'c'.repeat(40);
const b = (...a: Array<string | number | Buffer>) =>
  a.map((x) => (Buffer.isBuffer(x) ? x : Buffer.from(String(x))));

/** Commands whose events cover the payload shapes: binary keys and values, several events per command, txn ids. */
function events(): ChangeEvent[] {
  const cmds: Array<[Buffer[], string | undefined]> = [
    [b('SET', 'plain', 'v'), undefined],
    [b('SET', Buffer.from([0xff, 0x00, 0x01]), Buffer.from([0x00, 0xfe, 0x5c, 0x22])), undefined],
    [b('HSET', 'h', 'f\tg', 'line\nbreak', 'é', 'ü€'), 'tx-1'],
    [b('LPUSH', 'l', 'a', 'b', 'c'), 'tx-1'],
    [b('DEL', 'a', 'b', 'c'), undefined],
    [b('ZADD', 'z', '1.5', 'm', 'inf', 'n'), undefined],
    [b('PEXPIREAT', 'plain', 99_999_999_999_999), undefined],
    [b('SET', 'f', '0.1', 'KEEPTTL'), undefined],
    [b('XADD', 's', '1-1', 'k', 'v'), undefined],
  ];
  const out: ChangeEvent[] = [];
  cmds.forEach(([argv, txn], i) => {
    const ctx = {
      db: 3,
      replid: REPLID,
      offset: 100 + i * 10,
      ts: 1_700_000_000_123 + i,
      ...(txn ? { txn } : {}),
    };
    out.push(...normalizeCommand(argv, ctx));
  });
  return out;
}

/** The rows of `changes` as text, column by column, as a user's query reads them. */
async function changeRows(schema: string): Promise<string[]> {
  const rows = await pgQuery<{ r: string }>(
    `SELECT concat_ws('|', replid, "offset", seq, db, encode(key, 'hex'), op, payload::text, txn,
       (extract(epoch FROM received_at) * 1000)::bigint) AS r
     FROM "${schema}".changes ORDER BY "offset", seq`,
  );
  return rows.map((r) => r.r);
}

describe('changes rows by binary COPY', () => {
  const scope = new SinkScope('chg');
  afterEach(() => scope.cleanup());
  const make = (extra: Record<string, unknown> = {}) => scope.make(extra);

  it('stores what the SQL path (ON CONFLICT DO NOTHING, taken when a row exists) stores, skipping the existing row', async () => {
    const evs = events();
    const copied = make();
    await copied.sink.open();
    await copied.sink.write({ events: evs, checkpoint: { replid: REPLID, offset: 200, db: 3 } });
    expect(copied.sink.stats.changeRows).toBe(evs.length);

    // A row with the key of the third event is already there: the COPY fails with unique_violation and the batch is
    // inserted again by the SQL path, which keeps the existing row and adds every other one.
    const other = make();
    await other.sink.open();
    const third = evs[2]!;
    await pgQuery(
      `INSERT INTO "${other.schema}".changes (replid, "offset", seq, db, op, payload, received_at) VALUES ($1, $2, $3, 0, 'kept', '{}', now())`,
      [REPLID, third.source.offset, third.source.seq],
    );
    await other.sink.write({ events: evs, checkpoint: { replid: REPLID, offset: 200, db: 3 } });
    expect(other.sink.stats.changeRows).toBe(evs.length - 1);

    const a = await changeRows(copied.schema);
    const c = await changeRows(other.schema);
    expect(a).toHaveLength(evs.length);
    expect(c[2]).toMatch(/\|kept\|/);
    expect(c.filter((_, i) => i !== 2)).toEqual(a.filter((_, i) => i !== 2));
    // Spot checks that the rows are the events (not two equally wrong copies): a binary key, a txn, the time.
    expect(a[1]).toContain('|ff0001|set|');
    expect(a.some((r) => r.includes('|tx-1|'))).toBe(true);
    expect(a[0]!.endsWith('|1700000000123')).toBe(true);
  });
});
