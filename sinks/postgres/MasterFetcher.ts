import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { RedtailError } from '../../src/errors.js';
import { describeMaster, type MasterAddress, parseMasterUrl } from '../../src/link/MasterAddress.js';
import { connectionCause, explainTlsError, ioredisTarget, type MasterTls } from '../../src/link/tls.js';
import { type Logger, silentLogger } from '../../src/observe/logger.js';
import { decodeDumpPayload } from '../../src/rdb/dump.js';
import { valueFromRdb } from './model/encoding.js';
import type { RedisValue } from './model/types.js';

export interface FetchedValue {
  db: number;
  key: Buffer;
  /** null: the key does not exist at `offset`. */
  value: RedisValue | null;
  expireAt: number | null;
  /** The huge byte strings of the value (model/blobRef.ts), whose bytes the value holds only as references. */
  huge?: Buffer[];
}

/** The master's exact values of some keys, all as of one replication offset. */
export interface FetchResult {
  offset: number;
  values: FetchedValue[];
}

/**
 * The server exact values are read from, asked before every fetch. In `redtail run` it is the master the
 * replication link is connected to, so fetches follow a failover; null until the link has one.
 */
export type CurrentMaster = () => MasterAddress | null;

/**
 * A `CurrentMaster` that never moves (the sink's `master` option, or a sink used outside `redtail run`); `tls`: the
 * settings for a rediss:// URL.
 */
export function fixedMaster(url: string, tls?: MasterTls): CurrentMaster {
  const address = parseMasterUrl(url, tls);
  return () => address;
}

/** Where exact values come from when the mirror cannot compute them (tests substitute their own). */
export interface Fetcher {
  fetch(keys: Array<{ db: number; key: Buffer }>): Promise<FetchResult>;
  /** Keys a command names, as the master's COMMAND GETKEYS reports them (for unknown commands). */
  commandKeys(args: Buffer[]): Promise<Buffer[]>;
  close(): Promise<void>;
}

/**
 * The server answered, but as a replica (or a sentinel): its values and offset are not the stream's, so the fetch
 * waits for a master instead of using them.
 */
/** A value the master returns that redtail cannot decode: fatal, since asking again returns the same bytes. */
export class UnreadableValueError extends RedtailError {
  override readonly name = 'UnreadableValueError';
  constructor(message: string) {
    super(message, { fatal: true });
  }
}

/** Not fatal: after a failover the configured address may be a replica until the new master is found. */
class NotAMasterError extends RedtailError {
  override readonly name = 'NotAMasterError';

  constructor(
    readonly server: string,
    readonly role: string,
  ) {
    super(`${server} is not a master (ROLE ${role})`, { fatal: false });
  }
}

interface Connection {
  redis: Redis;
  address: MasterAddress;
  /** Per server: after a failover the new master may run another version. */
  hasPexpiretime: boolean | null;
}

export interface MasterFetcherOptions {
  /** Longest pause between retries while no usable master answers. */
  retryMaxDelayMs?: number;
  logger?: Logger;
  /**
   * Called when the server `currentMaster` names failed or is no master: the replication link may have to find the
   * new one, even while this sink holds the stream back (ReplicaLink.requestHandshake).
   */
  onStale?: (reason: string) => void;
}

function sameServer(a: MasterAddress, b: MasterAddress): boolean {
  return a.host === b.host && a.port === b.port && a.username === b.username && a.password === b.password;
}

/**
 * Reads values from the master without races: `MULTI; SELECT db; DUMP key; PEXPIRETIME key; ...; ROLE; EXEC` runs
 * atomically, so ROLE's replication offset is exactly the point of the stream the values belong to. The sink applies
 * them when the stream reaches that offset. Reads are not propagated, so this never changes the stream.
 *
 * Each attempt asks `currentMaster` where to read and reconnects when the answer changed. A server whose ROLE is
 * not master (an old master demoted by a failover, before the link has moved on) is retried, never used.
 */
export class MasterFetcher implements Fetcher {
  private connection: Connection | null = null;
  /** The server of the last attempt, to log when fetches move to another one. */
  private lastAddress: MasterAddress | null = null;
  private readonly retryMaxDelayMs: number;
  private readonly logger: Logger;
  private readonly onStale: ((reason: string) => void) | undefined;
  /** The server last reported as not a master, so a failover in progress is logged once, not on every retry. */
  private reportedNotMaster: string | null = null;
  /** The last transient failure logged, so a master that stays down is reported once, not on every retry. */
  private reportedFailure: string | null = null;

  constructor(
    private readonly currentMaster: CurrentMaster,
    options: MasterFetcherOptions = {},
  ) {
    this.retryMaxDelayMs = options.retryMaxDelayMs ?? 5_000;
    this.onStale = options.onStale;
    this.logger = options.logger ?? silentLogger();
  }

  async fetch(keys: Array<{ db: number; key: Buffer }>): Promise<FetchResult> {
    const result = await this.retry(async (c) => {
      if (c.hasPexpiretime === null) {
        const info = (await c.redis.info('server')) as string;
        const m = /redis_version:(\d+)/.exec(info);
        c.hasPexpiretime = m ? Number(m[1]) >= 7 : false;
      }
      const m = c.redis.multi();
      for (const k of keys) {
        m.select(k.db);
        m.dumpBuffer(k.key);
        if (c.hasPexpiretime) m.call('pexpiretime', k.key);
        else m.pttl(k.key);
      }
      m.role();
      const now = Date.now();
      const res = await m.exec();
      if (!res) throw new Error('MULTI/EXEC for DUMP was aborted');
      for (const [err] of res) if (err) throw err;
      const role = res[res.length - 1]![1] as unknown[];
      if (role[0] !== 'master') throw new NotAMasterError(describeMaster(c.address), String(role[0]));
      const per = 3;
      const values: FetchedValue[] = keys.map((k, i) => {
        const dump = res[i * per + 1]![1] as Buffer | null;
        const ttl = Number(res[i * per + 2]![1]);
        if (dump === null) return { db: k.db, key: k.key, value: null, expireAt: null };
        let d: ReturnType<typeof decodeDumpPayload>;
        try {
          d = decodeDumpPayload(dump);
        } catch (err) {
          // Asking again returns the same bytes: retrying would stall the sink forever without a word.
          throw new UnreadableValueError(
            `DUMP of key ${JSON.stringify(k.key.toString('latin1'))} in db ${k.db} from ${describeMaster(c.address)} cannot be decoded: ${(err as Error).message}`,
          );
        }
        if (d.type === 'module') {
          // Module values have no mirror encoding; the snapshot leaves such keys out too (MirrorApplier), so the
          // mirror holds no row for them rather than a guess.
          this.reportModuleKey(k.db, k.key, d.module?.name);
          return { db: k.db, key: k.key, value: null, expireAt: null };
        }
        // PEXPIRETIME is exact; PTTL (masters before 7.0) is relative to when the reply was produced.
        const expireAt = ttl < 0 ? null : c.hasPexpiretime ? ttl : now + ttl;
        const huge: Buffer[] = [];
        const value = valueFromRdb(d.type, d.value, d.fieldExpireAt, (b) => huge.push(b));
        return { db: k.db, key: k.key, value, expireAt, huge };
      });
      return { offset: Number(role[1]), values };
    });
    this.reportedNotMaster = null;
    this.reportedFailure = null;
    return result;
  }

  async commandKeys(args: Buffer[]): Promise<Buffer[]> {
    return this.retry(async (c) => {
      try {
        return (await c.redis.callBuffer('command', 'getkeys', ...args)) as Buffer[];
      } catch (err) {
        // "Invalid arguments" / "The command has no key arguments": the command names no key.
        if (/no key arguments|Invalid arguments|Invalid command/i.test((err as Error).message)) return [];
        throw err;
      }
    });
  }

  async close(): Promise<void> {
    this.disconnect();
  }

  /** A ready connection to the current master, replacing one to a server that is no longer it. */
  private async connect(): Promise<Connection> {
    const address = this.currentMaster();
    if (!address) throw new Error('the replication link has not reached a master yet');
    const current = this.connection;
    if (current && sameServer(current.address, address) && current.redis.status === 'ready') return current;
    this.disconnect();
    if (this.lastAddress && !sameServer(this.lastAddress, address))
      this.logger.info(
        { from: describeMaster(this.lastAddress), to: describeMaster(address) },
        'exact values are now fetched from another master',
      );
    this.lastAddress = address;
    const redis = new Redis({
      ...ioredisTarget(address),
      lazyConnect: true,
      // Reconnecting is the retry loop's job: it asks `currentMaster` first, where ioredis would keep queueing
      // commands for an address that may be down for good after a failover.
      retryStrategy: () => null,
      enableOfflineQueue: false,
      enableAutoPipelining: false,
      connectionName: 'redtail-postgres-fetch',
    });
    redis.on('error', () => {});
    const cause = connectionCause(redis);
    const connection: Connection = { redis, address, hasPexpiretime: null };
    this.connection = connection;
    try {
      await redis.connect();
    } catch (err) {
      throw cause(err);
    }
    return connection;
  }

  private disconnect(): void {
    this.connection?.redis.disconnect();
    this.connection = null;
  }

  private async retry<T>(fn: (c: Connection) => Promise<T>): Promise<T> {
    let delay = 100;
    for (;;) {
      try {
        return await fn(await this.connect());
      } catch (err) {
        if (err instanceof UnreadableValueError) throw err;
        // Certificates and TLS settings do not heal by waiting either.
        const address = this.connection?.address ?? this.lastAddress;
        const tlsProblem =
          address?.tls && explainTlsError(err, 'master', describeMaster(address), address.tls);
        if (tlsProblem) throw tlsProblem;
        if (err instanceof NotAMasterError) {
          this.reportNotMaster(err);
          this.onStale?.(err.message);
        } else {
          const msg = (err as Error).message;
          // Auth and protocol errors will not heal by waiting; connection errors (master restarting) will.
          if (/NOAUTH|WRONGPASS|NOPERM|ERR/.test(msg) && !/LOADING|BUSY/.test(msg)) throw err;
          if (msg !== this.reportedFailure) {
            this.reportedFailure = msg;
            this.logger.warn({ err: msg }, 'fetching exact values from the master failed; retrying');
          }
          this.onStale?.(`fetching exact values failed: ${msg}`);
        }
        // The next attempt asks `currentMaster` again: a failover may have moved it meanwhile.
        this.disconnect();
        await sleep(delay);
        delay = Math.min(delay * 2, this.retryMaxDelayMs);
      }
    }
  }

  private reportModuleKey(db: number, key: Buffer, module: string | undefined): void {
    this.logger.warn(
      { db, key: key.toString('latin1'), module },
      'module values cannot be mirrored; the key is left out of the mirror',
    );
  }

  private reportNotMaster(err: NotAMasterError): void {
    if (this.reportedNotMaster === err.server) return;
    this.reportedNotMaster = err.server;
    this.logger.warn(
      { server: err.server, role: err.role },
      'the server exact values are fetched from is not a master (a failover under way, or the sink option master names a replica): its values are not used; retrying until the replication link reaches the new master or the server is promoted',
    );
  }
}
