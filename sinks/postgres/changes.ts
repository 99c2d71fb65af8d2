import type { PoolClient } from 'pg';
import type { ChangeEvent } from '../../src/events/ChangeEvent.js';
import { type CopyType, type CopyValue, copyBinary } from './copy.js';
import { collectBlobs } from './model/blobRef.js';
import { toJsonb } from './model/encoding.js';

/** Fields of an event that are not its payload (they have their own `changes` columns). */
const ENVELOPE = new Set(['v', 'op', 'db', 'key', 'source', 'ts']);

const COLUMNS = ['replid', '"offset"', 'seq', 'db', 'key', 'op', 'payload', 'txn', 'received_at', 'blobs'];
const TYPES: CopyType[] = [
  'text',
  'int8',
  'int4',
  'int4',
  'bytea',
  'text',
  'jsonb',
  'text',
  'timestamptz',
  'text[]',
];
/** Postgres's unique_violation: a row of the batch is already in `changes`. */
const UNIQUE_VIOLATION = '23505';

/** The payload's JSON, a huge byte string as a reference to its blob (model/blobRef.ts), and the blobs referenced. */
function payload(e: ChangeEvent): [string, string[]] {
  const p: Record<string, unknown> = {};
  const fields = e as unknown as Record<string, unknown>;
  for (const k of Object.keys(e)) if (!ENVELOPE.has(k)) p[k] = fields[k];
  return collectBlobs(() => JSON.stringify(toJsonb(p)));
}

/**
 * The payloads of a batch's rows, computed as the COPY asks for them: the first rows go to Postgres while later
 * payloads are still being built (computing all of them first left Postgres idle for that time, ~20 % of the change
 * log's wall time). Each event's blob references are reported to `need` once, when its payload is built.
 */
class Payloads {
  readonly json: string[] = [];
  readonly blobs: Array<string[] | null> = [];

  constructor(
    private readonly events: readonly ChangeEvent[],
    private readonly need: ((refs: readonly string[]) => void) | undefined,
  ) {}

  /** Builds the payloads up to and including event `i`. */
  upTo(i: number): void {
    for (let k = this.json.length; k <= i; k++) {
      const [json, refs] = payload(this.events[k]!);
      this.json.push(json);
      this.blobs.push(refs.length > 0 ? refs : null);
      if (refs.length > 0) this.need?.(refs);
    }
  }
}

function* rows(events: readonly ChangeEvent[], p: Payloads): Generator<CopyValue[]> {
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    p.upTo(i);
    yield [
      e.source.replid,
      e.source.offset,
      e.source.seq,
      e.db,
      e.key ?? null,
      e.op,
      p.json[i]!,
      e.source.txn ?? null,
      e.ts,
      p.blobs[i]!,
    ];
  }
}

/**
 * Writes one `changes` row per event inside the caller's transaction and returns how many were new. The rows go in
 * one binary `COPY` (no per-value escaping on either side; the jsonb payload is the same JSON text the SQL path cast,
 * and `received_at` the same instant). COPY cannot skip rows that exist, so it runs under a savepoint: when a row's
 * (replid, offset, seq) is already there (a replayed snapshot of an idle master, or a second sink sharing the
 * schema), Postgres reports unique_violation, the savepoint is rolled back and the batch is inserted again with
 * `ON CONFLICT DO NOTHING`, which makes the replay insert nothing, as before. `need` is told the blobs the rows
 * reference (their bytes are in the batch's events, kept by the applier; stored at the end of the transaction).
 */
export async function writeChanges(
  client: PoolClient,
  table: string,
  events: readonly ChangeEvent[],
  need?: (refs: readonly string[]) => void,
): Promise<number> {
  if (events.length === 0) return 0;
  const p = new Payloads(events, need);
  await client.query('SAVEPOINT redtail_changes');
  try {
    const n = await copyBinary(client, table, COLUMNS, TYPES, rows(events, p));
    await client.query('RELEASE SAVEPOINT redtail_changes');
    return n;
  } catch (err) {
    if ((err as { code?: unknown }).code !== UNIQUE_VIOLATION) throw err;
    await client.query('ROLLBACK TO SAVEPOINT redtail_changes');
    p.upTo(events.length - 1);
    return insertSkippingExisting(client, table, events, p.json, p.blobs);
  }
}

async function insertSkippingExisting(
  client: PoolClient,
  table: string,
  events: readonly ChangeEvent[],
  payloads: string[],
  blobs: Array<string[] | null>,
): Promise<number> {
  let n = 0;
  for (let i = 0; i < events.length; i += 5_000) {
    const chunk = events.slice(i, i + 5_000);
    const r = await client.query(
      `INSERT INTO ${table} (replid, "offset", seq, db, key, op, payload, txn, received_at, blobs)
       SELECT r, o, s, d, k, op, p::jsonb, t, timestamptz 'epoch' + ts * interval '1 millisecond', string_to_array(bl, ',')
       FROM unnest($1::text[], $2::bigint[], $3::int[], $4::int[], $5::bytea[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[])
         AS u(r, o, s, d, k, op, p, t, ts, bl)
       ON CONFLICT DO NOTHING`,
      [
        chunk.map((e) => e.source.replid),
        chunk.map((e) => e.source.offset),
        chunk.map((e) => e.source.seq),
        chunk.map((e) => e.db),
        chunk.map((e) => e.key ?? null),
        chunk.map((e) => e.op),
        payloads.slice(i, i + 5_000),
        chunk.map((e) => e.source.txn ?? null),
        chunk.map((e) => e.ts),
        blobs.slice(i, i + 5_000).map((b) => (b ? b.join(',') : null)),
      ],
    );
    n += r.rowCount ?? 0;
  }
  return n;
}
