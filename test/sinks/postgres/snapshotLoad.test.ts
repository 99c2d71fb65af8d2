import { afterEach, describe, expect, it } from 'vitest';
import type { ControlEvent } from '../../../src/events/ChangeEvent.js';
import { controlEvent, pgQuery, SinkScope, snapshotString } from './helpers.js';

const REPLID = 'e'.repeat(40);

const snap = (key: string, value: string, offset: number, seq: number, expireAt: number | null = null) =>
  snapshotString(key, value, offset, seq, expireAt, REPLID);

const control = (op: ControlEvent['op'], offset: number) => controlEvent(op, offset, REPLID);

async function indexes(schema: string): Promise<string[]> {
  const rows = await pgQuery<{ indexname: string }>(
    `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'keys' ORDER BY indexname`,
    [schema],
  );
  return rows.map((r) => r.indexname);
}

const ALL = ['keys_blobs', 'keys_expire_at', 'keys_key_text', 'keys_pkey', 'keys_snapshot_gen'];

describe('snapshot load', () => {
  const scope = new SinkScope('load');
  afterEach(() => scope.cleanup());

  it('into an empty mirror: copied straight into keys without the secondary indexes, which are built at the end', async () => {
    const { sink, schema } = scope.make();
    await sink.open();
    expect(await indexes(schema)).toEqual(ALL);
    await sink.write({
      events: [control('snapshot-begin', 100), snap('a', '1', 100, 1, 4_000_000_000_000)],
      checkpoint: null,
    });
    expect(await indexes(schema)).toEqual(['keys_pkey']);
    await sink.write({ events: [snap('b', '2', 100, 2)], checkpoint: null });
    await sink.write({
      events: [control('snapshot-end', 100)],
      checkpoint: { replid: REPLID, offset: 100, db: 0 },
    });
    expect(await indexes(schema)).toEqual(ALL);
    const rows = await pgQuery(
      `SELECT key_text, value, (extract(epoch FROM expire_at) * 1000)::bigint AS exp, updated_offset, snapshot_gen, pending_offset FROM "${schema}".keys ORDER BY key`,
    );
    expect(rows).toEqual([
      {
        key_text: 'a',
        value: '1',
        exp: '4000000000000',
        updated_offset: '100',
        snapshot_gen: '1',
        pending_offset: null,
      },
      {
        key_text: 'b',
        value: '2',
        exp: null,
        updated_offset: '100',
        snapshot_gen: '1',
        pending_offset: null,
      },
    ]);

    // A full resync finds rows: the indexes stay, the rows are upserted and the missing key deleted at the end.
    await sink.write({ events: [control('snapshot-begin', 500), snap('b', '22', 500, 1)], checkpoint: null });
    expect(await indexes(schema)).toEqual(ALL);
    await sink.write({
      events: [control('snapshot-end', 500)],
      checkpoint: { replid: REPLID, offset: 500, db: 0 },
    });
    expect(await pgQuery(`SELECT key_text, value FROM "${schema}".keys`)).toEqual([
      { key_text: 'b', value: '22' },
    ]);
  });

  it('an interrupted bulk load: the next snapshot (into a mirror that is not empty) restores the indexes', async () => {
    const { sink, schema } = scope.make();
    await sink.open();
    await sink.write({ events: [control('snapshot-begin', 100), snap('a', '1', 100, 1)], checkpoint: null });
    await sink.close();
    const again = scope.reopen(schema);
    expect(await again.open()).toBeNull();
    expect(await indexes(schema)).toEqual(['keys_pkey']);
    await again.write({ events: [control('snapshot-begin', 300), snap('c', '3', 300, 1)], checkpoint: null });
    await again.write({
      events: [control('snapshot-end', 300)],
      checkpoint: { replid: REPLID, offset: 300, db: 0 },
    });
    expect(await indexes(schema)).toEqual(ALL);
    expect(await pgQuery(`SELECT key_text, value FROM "${schema}".keys`)).toEqual([
      { key_text: 'c', value: '3' },
    ]);
  });
});
