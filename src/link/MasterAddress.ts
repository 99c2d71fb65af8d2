import { displayEndpoint } from '../observe/redact.js';
import { defaultTls, type MasterTls } from './tls.js';

/** Where the master is and how to reach it, parsed from `redis[s]://[user:pass@]host:port`. */
export interface MasterAddress {
  host: string;
  port: number;
  username?: string;
  password?: string;
  /** How to dial it with TLS (`rediss://`), or null for plaintext (`redis://`). */
  tls: MasterTls | null;
}

/** `tls`: the configured TLS settings, used for `rediss://` URLs (default: system CAs, verification on). */
export function parseMasterUrl(url: string, tls: MasterTls = defaultTls): MasterAddress {
  let u: URL;
  const shown = displayEndpoint(url);
  try {
    u = new URL(url);
  } catch {
    throw new Error(`invalid master URL '${shown}': expected redis[s]://[user:password@]host:port`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new Error(`invalid master URL '${shown}': the scheme must be redis:// (or rediss:// for TLS)`);
  if (u.pathname && u.pathname !== '/' && u.pathname !== '')
    throw new Error(
      `invalid master URL '${shown}': a replica receives every database, so a /db path makes no sense (filter dbs in the config instead)`,
    );
  const address: MasterAddress = {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    tls: u.protocol === 'rediss:' ? tls : null,
  };
  if (u.username) address.username = decodeURIComponent(u.username);
  if (u.password) address.password = decodeURIComponent(u.password);
  return address;
}

export function describeMaster(a: Pick<MasterAddress, 'host' | 'port'>): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
