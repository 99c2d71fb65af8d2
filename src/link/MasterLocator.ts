import { Redis } from 'ioredis';
import { RedtailError } from '../errors.js';
import type { Logger } from '../observe/logger.js';
import { FatalLinkError } from './errors.js';
import { describeMaster, type MasterAddress } from './MasterAddress.js';
import { connectionCause, explainTlsError, ioredisTarget, type MasterTls, tlsOptionsFor } from './tls.js';

/** A position the locator may use to prefer the server that holds our history. */
export interface HistoryHint {
  replid: string;
  offset: number;
}

/** Finds the master to connect to, before every connection attempt. */
export interface MasterLocator {
  locate(hint: HistoryHint | null): Promise<MasterAddress>;
  /** Calls `onChange` when the locator learns that the master moved (Sentinel's +switch-master). */
  watch?(onChange: () => void): void;
  close(): Promise<void>;
  describe(): string;
}

/** One fixed address. After a failover the old master usually becomes a replica and serves us as one (chained). */
export class StaticMaster implements MasterLocator {
  constructor(private readonly address: MasterAddress) {}

  async locate(): Promise<MasterAddress> {
    return this.address;
  }

  async close(): Promise<void> {}

  describe(): string {
    return describeMaster(this.address);
  }
}

/** No address answered as a master. Not fatal: Sentinel or an operator may promote one, so the link retries. */
export class NoMasterError extends RedtailError {
  override readonly name = 'NoMasterError';
  constructor(message: string) {
    super(message, { fatal: false });
  }
}

interface ReplicationInfo {
  role: string;
  replid: string;
  replid2: string;
  secondOffset: number;
}

function parseInfo(text: string): ReplicationInfo {
  const f: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) f[line.slice(0, i)] = line.slice(i + 1);
  }
  return {
    role: f.role ?? '',
    replid: f.master_replid ?? '',
    replid2: f.master_replid2 ?? '',
    secondOffset: Number(f.second_repl_offset ?? -1),
  };
}

/**
 * Several addresses of which one is the master (a master and its replicas, without Sentinel). Before each
 * connection every candidate is asked for `INFO replication`; among those with `role:master` the one that can
 * continue our history wins: its `master_replid` is ours, or its `master_replid2` is ours and our offset is within
 * `second_repl_offset` (a promoted replica, which answers `+CONTINUE <newid>`).
 */
export class CandidateMasters implements MasterLocator {
  constructor(
    private readonly candidates: MasterAddress[],
    private readonly logger: Logger,
  ) {}

  async locate(hint: HistoryHint | null): Promise<MasterAddress> {
    const masters: { address: MasterAddress; info: ReplicationInfo }[] = [];
    const problems: string[] = [];
    let misconfigured = 0;
    for (const address of this.candidates) {
      try {
        const info = parseInfo(await queryInfo(address));
        if (info.role === 'master') masters.push({ address, info });
      } catch (err) {
        const tlsProblem =
          address.tls && explainTlsError(err, 'candidate', describeMaster(address), address.tls);
        if (tlsProblem) {
          misconfigured++;
          problems.push(tlsProblem.message);
        } else problems.push(`${describeMaster(address)}: ${(err as Error).message}`);
      }
    }
    // When no candidate can be reached because of TLS settings, only a configuration change helps.
    if (masters.length === 0 && misconfigured === this.candidates.length)
      throw new FatalLinkError(`no candidate master can be reached: ${problems.join('; ')}`);
    if (masters.length === 0)
      throw new NoMasterError(
        `none of ${this.describe()} is a master${problems.length ? ` (${problems.join('; ')})` : ''}`,
      );
    if (hint) {
      const own = masters.find(
        (m) =>
          m.info.replid === hint.replid ||
          (m.info.replid2 === hint.replid && hint.offset + 1 <= m.info.secondOffset),
      );
      if (own) return own.address;
    }
    if (masters.length > 1)
      this.logger.warn(
        { masters: masters.map((m) => describeMaster(m.address)) },
        'several candidates claim to be master',
      );
    return masters[0]!.address;
  }

  async close(): Promise<void> {}

  describe(): string {
    return this.candidates.map(describeMaster).join(', ');
  }
}

async function queryInfo(address: MasterAddress): Promise<string> {
  const client = new Redis({
    ...ioredisTarget(address),
    lazyConnect: true,
    connectTimeout: 2_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  client.on('error', () => {});
  const cause = connectionCause(client);
  try {
    await client.connect();
    return (await client.info('replication')) as string;
  } catch (caught) {
    const err = cause(caught);
    // A plaintext port keeps a TLS client waiting until the connect timeout.
    if (address.tls && /ETIMEDOUT/.test((err as Error).message))
      throw new Error(
        `${(err as Error).message} (if this is a plaintext port: rediss:// needs the server's tls-port)`,
      );
    throw err;
  } finally {
    client.disconnect();
  }
}

/**
 * Redis Sentinel: asks the sentinels for the current master of `name` before each connection, and listens for
 * `+switch-master` so a failover ends the current link at once instead of after a timeout. Credentials and TLS for
 * the master come from the master URL (`masterTls`: its settings for rediss://, null for redis://); the sentinels
 * may have their own password, and are dialled with TLS when `sentinelTls` is given (the same CA and client
 * certificate, but not the servername override, which names the master).
 */
export class SentinelMasters implements MasterLocator {
  private subscriber: Redis | null = null;

  constructor(
    private readonly sentinels: { host: string; port: number }[],
    private readonly name: string,
    private readonly credentials: Pick<MasterAddress, 'username' | 'password'>,
    private readonly logger: Logger,
    private readonly sentinelPassword?: string,
    private readonly masterTls: MasterTls | null = null,
    private readonly sentinelTls: MasterTls | null = null,
  ) {}

  async locate(): Promise<MasterAddress> {
    const problems: string[] = [];
    let misconfigured = 0;
    for (const s of this.sentinels) {
      const client = this.client(s);
      const cause = connectionCause(client);
      try {
        await client.connect();
        const reply = (await client.call('SENTINEL', 'get-master-addr-by-name', this.name)) as
          | [string, string]
          | null;
        if (!reply) {
          problems.push(`${s.host}:${s.port} does not know master '${this.name}'`);
          continue;
        }
        return { host: reply[0], port: Number(reply[1]), tls: this.masterTls, ...this.credentials };
      } catch (caught) {
        const err = cause(caught);
        const server = describeMaster(s);
        const tlsProblem = this.sentinelTls && explainTlsError(err, 'sentinel', server, this.sentinelTls);
        if (tlsProblem) misconfigured++;
        problems.push(tlsProblem ? tlsProblem.message : `${server}: ${(err as Error).message}`);
      } finally {
        client.disconnect();
      }
    }
    const message = `no sentinel could name the master '${this.name}': ${problems.join('; ')}`;
    // When every sentinel fails on the TLS settings, only a configuration change helps.
    if (misconfigured === this.sentinels.length) throw new FatalLinkError(message);
    throw new NoMasterError(message);
  }

  watch(onChange: () => void): void {
    const connectNext = (i: number) => {
      const s = this.sentinels[i % this.sentinels.length]!;
      const sub = this.client(s, true);
      this.subscriber = sub;
      sub.on('message', (_channel: string, message: string) => {
        if (message.split(' ')[0] === this.name) {
          this.logger.info({ sentinel: `${s.host}:${s.port}`, message }, 'sentinel announced a new master');
          onChange();
        }
      });
      sub.subscribe('+switch-master').catch((err: Error) => {
        this.logger.warn(
          { sentinel: `${s.host}:${s.port}`, err: err.message },
          'cannot subscribe to sentinel',
        );
      });
    };
    connectNext(0);
  }

  private client(s: { host: string; port: number }, subscriber = false): Redis {
    const c = new Redis({
      host: s.host,
      port: s.port,
      password: this.sentinelPassword,
      tls: this.sentinelTls ? tlsOptionsFor(s.host, this.sentinelTls, false) : undefined,
      lazyConnect: !subscriber,
      connectTimeout: 2_000,
      maxRetriesPerRequest: subscriber ? null : 0,
      enableOfflineQueue: subscriber,
      retryStrategy: subscriber ? (n: number) => Math.min(n * 200, 2_000) : () => null,
    });
    c.on('error', () => {});
    return c;
  }

  async close(): Promise<void> {
    this.subscriber?.disconnect();
    this.subscriber = null;
  }

  describe(): string {
    return `master '${this.name}' via sentinels ${this.sentinels.map((s) => `${s.host}:${s.port}`).join(', ')}`;
  }
}
