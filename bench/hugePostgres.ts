import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { readChunks, shaLiteral } from '../sinks/postgres/blobs.js';
import { ident } from '../sinks/postgres/migrations.js';
import { blobFromJson } from '../sinks/postgres/model/blobRef.js';
import { decodeToBuffer } from '../sinks/postgres/model/encoding.js';
import { verifyMirror } from '../sinks/postgres/verify.js';
import type { KeyDigest } from './hugeValues.js';

/**
 * bench:huge with the Postgres sink (REDTAIL_HUGE_SINKS=postgres): a schema of its own, polled while the run goes, and
 * each value read back from Postgres and hashed: the key's jsonb, and for every blob it references its chunks
 * streamed by a binary COPY (never one value in the driver's memory either), so the SHA-256 compared with the value
 * sent is that of the bytes Postgres holds, not of the reference. Then `redtail verify` against the master.
 */
export class PostgresTarget {
  readonly schema = `huge_${Date.now().toString(36)}`;
  readonly sinkUrl: string;
  loaded = false;
  hasKey = false;
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;
  private readonly client: pg.Client;

  constructor(readonly url: string) {
    this.sinkUrl = `${url}${url.includes('?') ? '&' : '?'}schema=${this.schema}`;
    this.client = new pg.Client({ connectionString: url });
  }

  async open(): Promise<void> {
    await this.client.connect();
  }

  private get s(): string {
    return ident(this.schema);
  }

  /** Polls the sink's state: snapshot loaded (a checkpoint and no load going on), and whether `key` is mirrored. */
  poll(key: string): void {
    const once = async () => {
      try {
        const { rows } = await this.client.query<{ loaded: boolean; has: boolean }>(
          `SELECT EXISTS (SELECT 1 FROM ${this.s}.checkpoints) AND NOT EXISTS (SELECT 1 FROM ${this.s}.sink_state WHERE snapshot_loading) AS loaded,
                  EXISTS (SELECT 1 FROM ${this.s}.keys WHERE key_text = $1) AS has`,
          [key],
        );
        this.loaded = rows[0]?.loaded === true;
        this.hasKey = rows[0]?.has === true;
      } catch {
        // The sink has not created its tables yet.
      }
    };
    this.timer = setInterval(() => {
      this.polling ??= once().finally(() => {
        this.polling = null;
      });
    }, 200);
  }

  async stopPolling(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.polling;
  }

  /** Per key: SHA-256 and length of the concatenated byte strings of its value (string, or list elements). */
  async digests(keys: readonly string[]): Promise<Map<string, KeyDigest>> {
    const out = new Map<string, KeyDigest>();
    for (const key of keys) {
      const { rows } = await this.client.query<{ type: string; value: unknown }>(
        `SELECT type, value FROM ${this.s}.keys WHERE key_text = $1`,
        [key],
      );
      const h = createHash('sha256');
      let bytes = 0;
      const row = rows[0];
      const strings = row ? (row.type === 'string' ? [row.value] : (row.value as unknown[])) : [];
      for (const x of strings) {
        const ref = blobFromJson(x);
        if (!ref) {
          const b = decodeToBuffer(x);
          h.update(b);
          bytes += b.length;
          continue;
        }
        await readChunks(
          this.client,
          `SELECT chunk FROM ${this.s}.blob_chunks WHERE sha256 = ${shaLiteral(ref.sha256)} ORDER BY n`,
          (c) => {
            h.update(c);
            bytes += c.length;
          },
        );
      }
      const sha256 = h.digest('hex');
      // One row, no lines: the NDJSON-specific fields (a Kafka marker's line facts) describe the row's value.
      out.set(key, {
        sha256,
        bytes,
        lines: rows.length,
        ops: [row?.type ?? 'missing'],
        events: [],
        lineSha256: [],
        lineBytes: [],
        lineWithTs: [],
        lineValueSha256: [sha256],
        lineValueBytes: [bytes],
      });
    }
    return out;
  }

  async verify(master: string): Promise<{ differences: number; seconds: number }> {
    const t = performance.now();
    const r = await verifyMirror({ master, postgres: this.url, schema: this.schema, timeoutMs: 120_000 });
    return { differences: r.differences.length, seconds: (performance.now() - t) / 1000 };
  }

  async close(): Promise<void> {
    await this.stopPolling();
    await this.client.query(`DROP SCHEMA IF EXISTS ${this.s} CASCADE`).catch(() => {});
    await this.client.end();
  }
}
