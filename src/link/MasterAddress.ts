/** Where the master is and how to authenticate, parsed from `redis://[user:pass@]host:port`. */
export interface MasterAddress {
  host: string;
  port: number;
  username?: string;
  password?: string;
  tls: boolean;
}

export function parseMasterUrl(url: string): MasterAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`invalid master URL '${url}': expected redis://[user:password@]host:port`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new Error(`invalid master URL '${url}': the scheme must be redis:// (or rediss:// for TLS)`);
  if (u.protocol === 'rediss:')
    throw new Error('rediss:// (TLS to the master) is reserved but not supported yet');
  if (u.pathname && u.pathname !== '/' && u.pathname !== '')
    throw new Error(
      `invalid master URL '${url}': a replica receives every database, so a /db path makes no sense (filter dbs in the config instead)`,
    );
  const address: MasterAddress = {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    tls: false,
  };
  if (u.username) address.username = decodeURIComponent(u.username);
  if (u.password) address.password = decodeURIComponent(u.password);
  return address;
}

export function describeMaster(a: MasterAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
