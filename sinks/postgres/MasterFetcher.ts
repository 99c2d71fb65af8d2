import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { parseMasterUrl } from '../../src/link/MasterAddress.js';
import { decodeDumpPayload } from '../../src/rdb/dump.js';
import { valueFromRdb } from './model/encoding.js';
import type { RedisValue } from './model/types.js';

export interface FetchedValue {
  db: number;
  key: Buffer;
  /** null: the key does not exist at `offset`. */
  value: RedisValue | null;
  expireAt: number | null;
}

/** The master's exact values of some keys, all as of one replication offset. */
export interface FetchResult {
  offset: number;
  values: FetchedValue[];
}

/** Where exact values come from when the mirror cannot compute them (tests substitute their own). */
export interface Fetcher {
  fetch(keys: Array<{ db: number; key: Buffer }>): Promise<FetchResult>;
  /** Keys a command names, as the master's COMMAND GETKEYS reports them (for unknown commands). */
  commandKeys(args: Buffer[]): Promise<Buffer[]>;
  close(): Promise<void>;
}

/**
 * Reads values from the master without races: `MULTI; SELECT db; DUMP key; PEXPIRETIME key; ...; ROLE; EXEC` runs
 * atomically, so ROLE's replication offset is exactly the point of the stream the values belong to. The sink applies
 * them when the stream reaches that offset. Reads are not propagated, so this never changes the stream.
 */
export class MasterFetcher implements Fetcher {
  private readonly redis: Redis;
  private hasPexpiretime: boolean | null = null;

  constructor(
    url: string,
    private readonly retryMaxDelayMs = 5_000,
  ) {
    const a = parseMasterUrl(url);
    this.redis = new Redis({
      host: a.host,
      port: a.port,
      username: a.username,
      password: a.password,
      tls: a.tls ? {} : undefined,
      lazyConnect: true,
      maxRetriesPerRequest: null,
      enableAutoPipelining: false,
      connectionName: 'redtail-postgres-fetch',
    });
    this.redis.on('error', () => {});
  }

  async fetch(keys: Array<{ db: number; key: Buffer }>): Promise<FetchResult> {
    return this.retry(async () => {
      if (this.hasPexpiretime === null) {
        const info = (await this.redis.info('server')) as string;
        const m = /redis_version:(\d+)/.exec(info);
        this.hasPexpiretime = m ? Number(m[1]) >= 7 : false;
      }
      const m = this.redis.multi();
      for (const k of keys) {
        m.select(k.db);
        m.dumpBuffer(k.key);
        if (this.hasPexpiretime) m.call('pexpiretime', k.key);
        else m.pttl(k.key);
      }
      m.role();
      const now = Date.now();
      const res = await m.exec();
      if (!res) throw new Error('MULTI/EXEC for DUMP was aborted');
      for (const [err] of res) if (err) throw err;
      const per = 3;
      const values: FetchedValue[] = keys.map((k, i) => {
        const dump = res[i * per + 1]![1] as Buffer | null;
        const ttl = Number(res[i * per + 2]![1]);
        if (dump === null) return { db: k.db, key: k.key, value: null, expireAt: null };
        const d = decodeDumpPayload(dump);
        // PEXPIRETIME is exact; PTTL (masters before 7.0) is relative to when the reply was produced.
        const expireAt = ttl < 0 ? null : this.hasPexpiretime ? ttl : now + ttl;
        return { db: k.db, key: k.key, value: valueFromRdb(d.type, d.value, d.fieldExpireAt), expireAt };
      });
      const role = res[res.length - 1]![1] as unknown[];
      return { offset: Number(role[1]), values };
    });
  }

  async commandKeys(args: Buffer[]): Promise<Buffer[]> {
    return this.retry(async () => {
      try {
        return (await this.redis.callBuffer('command', 'getkeys', ...args)) as Buffer[];
      } catch (err) {
        // "Invalid arguments" / "The command has no key arguments": the command names no key.
        if (/no key arguments|Invalid arguments|Invalid command/i.test((err as Error).message)) return [];
        throw err;
      }
    });
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }

  private async retry<T>(fn: () => Promise<T>): Promise<T> {
    let delay = 100;
    for (;;) {
      try {
        if (this.redis.status === 'wait' || this.redis.status === 'end') await this.redis.connect();
        return await fn();
      } catch (err) {
        const msg = (err as Error).message;
        // Auth and protocol errors will not heal by waiting; connection errors (master restarting) will.
        if (/NOAUTH|WRONGPASS|NOPERM|ERR/.test(msg) && !/LOADING|BUSY/.test(msg)) throw err;
        await sleep(delay);
        delay = Math.min(delay * 2, this.retryMaxDelayMs);
      }
    }
  }
}
