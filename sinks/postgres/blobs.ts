import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { PoolClient } from 'pg';
import copyStreams from 'pg-copy-streams';
import { type CopyValue, copyBinary } from './copy.js';
import { CopyBinaryRows } from './copyOut.js';
import { MirrorError } from './errors.js';
import { MEMBER_TABLES } from './migrations.js';
import { type BlobRef, blobRefOf, isHuge } from './model/blobRef.js';

/**
 * Storage of huge byte strings (issue 16; docs/postgres.md, "Huge values"): content-addressed blobs. `blobs` has one
 * row per distinct value (SHA-256 hex, length), `blob_chunks` its bytes in rows of at most BLOB_CHUNK_BYTES, written
 * by binary COPY straight from the event's Buffer (no JSON, no base64, no copy of the whole value). Rows of `keys`,
 * `changes`, `pending_values` and the member tables of big collections (memberRows.ts) list the blobs their jsonb references in their `blobs` column; a blob none lists is
 * deleted in the transaction that dropped the last reference. Content addressing means a list element needs no
 * position, several keys (a COPY, a RENAME's destination) share one blob, and a value written again is not stored
 * twice.
 */

/** Bytes per `blob_chunks` row: a bytea field Postgres TOASTs on its own, far below its 1 GB field limit. */
export const BLOB_CHUNK_BYTES = 1 << 20;

const CHUNK_COLUMNS = ['sha256', 'n', 'chunk'];
const PART_COLUMNS = ['db', 'key', 'n', 'chunk'];

/** Rows of `buf` cut in chunks of BLOB_CHUNK_BYTES, numbered from `first`: views of the Buffer, never copies. */
export function* chunkRows(buf: Buffer, first: number, head: readonly CopyValue[]): Generator<CopyValue[]> {
  for (let i = 0, n = first; i < buf.length; i += BLOB_CHUNK_BYTES, n++)
    yield [...head, n, buf.subarray(i, i + BLOB_CHUNK_BYTES)];
}

/** Calls `keep` with every huge Buffer inside an event's fields (model/blobRef.ts). */
export function eachHuge(v: unknown, keep: (b: Buffer) => void): void {
  if (Buffer.isBuffer(v)) {
    if (isHuge(v)) keep(v);
  } else if (Array.isArray(v)) for (const x of v) eachHuge(x, keep);
  else if (v !== null && typeof v === 'object')
    for (const k of Object.keys(v)) eachHuge((v as Record<string, unknown>)[k], keep);
}

/**
 * The blob bookkeeping of one transaction: which blobs rows written in it reference (stored at the end if new), and
 * which blobs rows changed or deleted in it referenced before (collected at the end if nothing lists them anymore).
 */
export class BlobTransaction {
  /**
   * The bytes of the huge byte strings this transaction may have to store, by SHA-256: views of the batch's events
   * and of values decoded for it (fetches, RESTORE), never copies. Per sink, so two sinks of one process never see
   * each other's.
   */
  private readonly contents = new Map<string, Buffer>();
  private readonly needed = new Set<string>();
  private readonly dropped = new Set<string>();
  private sweepAll = false;
  readonly stats = { stored: 0, storedBytes: 0, collected: 0 };

  constructor(private readonly s: string) {}

  begin(): void {
    this.contents.clear();
    this.needed.clear();
    this.dropped.clear();
    this.sweepAll = false;
  }

  /** Keeps a huge byte string's bytes until the end of the transaction (see `contents`). */
  readonly keep = (b: Buffer): void => {
    this.contents.set(blobRefOf(b).sha256, b);
  };

  /** Drops the kept bytes (the transaction ended, committed or not). */
  release(): void {
    this.contents.clear();
  }

  need(shas: readonly string[]): void {
    for (const x of shas) this.needed.add(x);
  }

  drop(shas: readonly string[] | null | undefined): void {
    for (const x of shas ?? []) this.dropped.add(x);
  }

  /** After FLUSHDB, FLUSHALL, the end of a snapshot or a retention delete: any blob may have lost its last row. */
  sweep(): void {
    this.sweepAll = true;
  }

  /** Stores the blobs the transaction's rows reference, then deletes those no row references anymore. */
  async finish(client: PoolClient): Promise<void> {
    await this.store(client);
    await this.collect(client);
  }

  private async store(client: PoolClient): Promise<void> {
    if (this.needed.size === 0) return;
    const withBytes: BlobRef[] = [];
    const without: string[] = [];
    for (const sha of this.needed) {
      const b = this.contents.get(sha);
      if (b) withBytes.push({ sha256: sha, bytes: b.length });
      else without.push(sha);
    }
    if (without.length > 0) {
      // References copied from rows already in the mirror: their blobs are there (they are kept while referenced).
      const { rows } = await client.query<{ n: string }>(
        `SELECT count(*) AS n FROM ${this.s}.blobs WHERE sha256 = ANY($1::text[])`,
        [without],
      );
      if (Number(rows[0]?.n) !== without.length)
        throw new MirrorError(
          `internal: a row references a blob that is neither stored nor in this batch (one of ${without.slice(0, 3).join(', ')})`,
        );
    }
    if (withBytes.length === 0) return;
    const { rows } = await client.query<{ sha256: string }>(
      `INSERT INTO ${this.s}.blobs (sha256, bytes) SELECT * FROM unnest($1::text[], $2::bigint[])
       ON CONFLICT (sha256) DO NOTHING RETURNING sha256`,
      [withBytes.map((r) => r.sha256), withBytes.map((r) => r.bytes)],
    );
    for (const r of rows) {
      const b = this.contents.get(r.sha256)!;
      await copyBinary(
        client,
        `${this.s}.blob_chunks`,
        CHUNK_COLUMNS,
        ['text', 'int4', 'bytea'],
        chunkRows(b, 0, [r.sha256]),
      );
      this.stats.stored++;
      this.stats.storedBytes += b.length;
    }
  }

  /** Deletes (with their chunks, ON DELETE CASCADE) the candidate blobs no row lists; each check is a GIN lookup. */
  private async collect(client: PoolClient): Promise<void> {
    if (!this.sweepAll && this.dropped.size === 0) return;
    const r = await client.query(
      `DELETE FROM ${this.s}.blobs b WHERE ($1 OR b.sha256 = ANY($2::text[]))
         AND NOT EXISTS (SELECT 1 FROM ${this.s}.keys k WHERE k.blobs @> ARRAY[b.sha256])
         AND NOT EXISTS (SELECT 1 FROM ${this.s}.changes c WHERE c.blobs @> ARRAY[b.sha256])
         AND NOT EXISTS (SELECT 1 FROM ${this.s}.pending_values p WHERE p.blobs @> ARRAY[b.sha256])
         ${MEMBER_TABLES.map((t) => `AND NOT EXISTS (SELECT 1 FROM ${this.s}.${t} m WHERE m.blobs @> ARRAY[b.sha256])`).join('\n         ')}`,
      [this.sweepAll, [...this.dropped]],
    );
    this.stats.collected += r.rowCount ?? 0;
  }
}

/**
 * The `blob_parts` rows of one key: the chunks of a snapshot string arriving in parts (MirrorApplier.stringPart),
 * kept in Postgres between transactions until the last part says the string is complete.
 */
export class StringParts {
  private readonly where: string;

  constructor(
    private readonly client: PoolClient,
    private readonly s: string,
    private readonly db: number,
    private readonly key: Buffer,
  ) {
    this.where = `db = ${Math.trunc(db)} AND key = ${byteaLiteral(key)}`;
  }

  /** Parts an earlier, interrupted attempt at the same key left (a new part 0 starts over). */
  async clear(): Promise<void> {
    await this.client.query(`DELETE FROM ${this.s}.blob_parts WHERE ${this.where}`);
  }

  /** The next chunk number and the bytes stored so far (octet_length reads the TOAST header, not the chunk). */
  async state(): Promise<{ next: number; bytes: number }> {
    const { rows } = await this.client.query<{ n: number; bytes: string }>(
      `SELECT coalesce(max(n) + 1, 0)::int AS n, coalesce(sum(octet_length(chunk)), 0) AS bytes
       FROM ${this.s}.blob_parts WHERE ${this.where}`,
    );
    return { next: rows[0]!.n, bytes: Number(rows[0]!.bytes) };
  }

  async append(value: Buffer, first: number): Promise<void> {
    await copyBinary(
      this.client,
      `${this.s}.blob_parts`,
      PART_COLUMNS,
      ['int4', 'bytea', 'int4', 'bytea'],
      chunkRows(value, first, [this.db, this.key]),
    );
  }

  /** A string shorter than a blob after all: its stored parts and `last`, whole, and the parts deleted. */
  async assemble(last: Buffer): Promise<Buffer> {
    const pieces: Buffer[] = [];
    await readChunks(this.client, this.chunks(), (c) => pieces.push(Buffer.from(c)));
    pieces.push(last);
    await this.clear();
    return Buffer.concat(pieces);
  }

  /**
   * The stored parts and `last` as a blob: the SHA-256 over the parts read back in chunks (a hash state in memory
   * would not survive a failed transaction) and `last`; the chunks are moved into `blob_chunks` inside Postgres
   * (unless the same bytes are stored already), `last` copied after them, and the parts deleted.
   */
  async toBlob(last: Buffer, first: number): Promise<BlobRef> {
    const ref = await hashChunks(this.client, this.chunks(), last);
    const fresh = await this.client.query(
      `INSERT INTO ${this.s}.blobs (sha256, bytes) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING RETURNING sha256`,
      [ref.sha256, ref.bytes],
    );
    if ((fresh.rowCount ?? 0) > 0) {
      await this.client.query(
        `INSERT INTO ${this.s}.blob_chunks (sha256, n, chunk) SELECT $1, n, chunk FROM ${this.s}.blob_parts WHERE ${this.where}`,
        [ref.sha256],
      );
      await copyBinary(
        this.client,
        `${this.s}.blob_chunks`,
        CHUNK_COLUMNS,
        ['text', 'int4', 'bytea'],
        chunkRows(last, first, [ref.sha256]),
      );
    }
    await this.clear();
    return ref;
  }

  private chunks(): string {
    return `SELECT chunk FROM ${this.s}.blob_parts WHERE ${this.where} ORDER BY n`;
  }
}

/**
 * The chunks selected by `query` (one bytea column, in order), handed to `onChunk` as they arrive: one binary COPY,
 * so the bytes are never hex text and never all in memory. `query` must be a complete SELECT (COPY takes no
 * parameters): callers build it from integers and hex literals only.
 */
export async function readChunks(
  client: PoolClient | pg.Client,
  query: string,
  onChunk: (chunk: Buffer) => void,
): Promise<void> {
  const stream = client.query(copyStreams.to(`COPY (${query}) TO STDOUT (FORMAT binary)`));
  const parser = new CopyBinaryRows((b, at) => {
    const [c0 = -1, c1 = 0] = at;
    if (c0 >= 0) onChunk(b.subarray(c0, c1));
  });
  for await (const chunk of stream) parser.feed(chunk as Buffer);
}

/** SHA-256 (hex) and length of the chunks `query` selects, read with readChunks. */
export async function hashChunks(
  client: PoolClient | pg.Client,
  query: string,
  tail?: Buffer,
): Promise<BlobRef> {
  const h = createHash('sha256');
  let bytes = 0;
  await readChunks(client, query, (c) => {
    h.update(c);
    bytes += c.length;
  });
  if (tail) {
    h.update(tail);
    bytes += tail.length;
  }
  return { sha256: h.digest('hex'), bytes };
}

/** A bytea literal of `b` for the COPY queries above. */
export function byteaLiteral(b: Buffer): string {
  return `'\\x${b.toString('hex')}'::bytea`;
}

/** Hex SHA-256s only: they are put into COPY queries as literals. */
export function shaLiteral(sha: string): string {
  if (!/^[0-9a-f]{64}$/.test(sha)) throw new Error(`not a SHA-256 in hex: ${sha.slice(0, 80)}`);
  return `'${sha}'`;
}
