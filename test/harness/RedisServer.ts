import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type RedisOptions } from 'ioredis';
import { freePort } from './ports.js';
import { generateTlsFiles, type TlsFiles } from './tls.js';

export interface RedisServerOptions {
  /** Path of the redis-server binary; defaults to $REDIS_SERVER or `redis-server` on PATH. */
  binary?: string;
  /** `requirepass` for the default user. */
  password?: string;
  /** An extra ACL user with full rights (for `AUTH user pass`). */
  aclUser?: { name: string; password: string };
  /** `repl-diskless-sync yes|no` (default no, so tests say which one they exercise). */
  diskless?: boolean;
  /** Extra config directives, e.g. `{ 'repl-backlog-size': '16kb' }`. */
  config?: Record<string, string>;
  /** Reuse a data dir (to restart a master on its own RDB). */
  dir?: string;
  port?: number;
  /** Run as redis-sentinel with these `sentinel ...` directives (the config file must stay writable). */
  sentinel?: string[];
  /**
   * Also listen with TLS on `tlsPort`, with a throwaway CA and certificates generated into the server's dir
   * (`tlsFiles`). The plaintext `port` stays open for the test's own clients (`client()`, `cli()`, `info()`).
   * `authClients` is `tls-auth-clients` (default no: no client certificate needed). `files` reuses another
   * server's CA and certificates (a sentinel that must trust its master). A sentinel also dials masters with TLS
   * (`tls-replication yes`).
   */
  tls?: { authClients?: 'yes' | 'no' | 'optional'; files?: TlsFiles };
}

const live = new Set<RedisServer>();
process.once('exit', () => {
  for (const s of live) s.proc?.kill('SIGKILL');
});

/**
 * A throwaway redis-server on a free loopback port with its own temp dir. Tests use it as a real master (or a
 * plain replica for comparison); it never touches the shared server on 6379.
 */
export class RedisServer {
  proc: ChildProcess | undefined;
  readonly clients: Redis[] = [];

  private constructor(
    readonly port: number,
    readonly dir: string,
    readonly binary: string,
    readonly options: RedisServerOptions,
    /** The TLS port (0 without the `tls` option). */
    readonly tlsPort: number,
    /** The CA and certificates of a TLS server (null without the `tls` option). */
    readonly tlsFiles: TlsFiles | null,
  ) {}

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const binary = options.binary ?? process.env.REDIS_SERVER ?? 'redis-server';
    const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'redtail-redis-'));
    let tlsFiles: TlsFiles | null = null;
    try {
      if (options.tls) tlsFiles = options.tls.files ?? generateTlsFiles(dir);
    } catch (err) {
      if (!options.dir) rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    for (let attempt = 0; ; attempt++) {
      const port = options.port ?? (await freePort());
      let tlsPort = tlsFiles ? await freePort() : 0;
      while (tlsPort === port) tlsPort = await freePort();
      const server = new RedisServer(port, dir, binary, options, tlsPort, tlsFiles);
      try {
        await server.spawn();
        return server;
      } catch (err) {
        if (attempt >= 3 || options.port !== undefined) {
          if (!options.dir) rmSync(dir, { recursive: true, force: true });
          throw err;
        }
      }
    }
  }

  get host(): string {
    return '127.0.0.1';
  }

  get logPath(): string {
    return join(this.dir, 'redis.log');
  }

  /** URL with credentials redtail would be given. */
  url(auth: 'default' | 'acl' | 'none' = this.options.password ? 'default' : 'none'): string {
    if (auth === 'acl' && this.options.aclUser) {
      const u = this.options.aclUser;
      return `redis://${encodeURIComponent(u.name)}:${encodeURIComponent(u.password)}@127.0.0.1:${this.port}`;
    }
    if (auth === 'default' && this.options.password)
      return `redis://:${encodeURIComponent(this.options.password)}@127.0.0.1:${this.port}`;
    return `redis://127.0.0.1:${this.port}`;
  }

  /** `rediss://` URL of the TLS port (with `host`, e.g. `localhost` to check name verification). */
  tlsUrl(
    auth: 'default' | 'acl' | 'none' = this.options.password ? 'default' : 'none',
    host = '127.0.0.1',
  ): string {
    if (!this.tlsFiles) throw new Error('this server was started without the tls option');
    return this.url(auth)
      .replace(/^redis:/, 'rediss:')
      .replace(`@127.0.0.1:${this.port}`, `@${host}:${this.tlsPort}`)
      .replace(`//127.0.0.1:${this.port}`, `//${host}:${this.tlsPort}`);
  }

  private configText(): string {
    const o = this.options;
    const t = this.tlsFiles;
    const tlsLines = t
      ? [
          `tls-port ${this.tlsPort}`,
          `tls-cert-file ${t.serverCert}`,
          `tls-key-file ${t.serverKey}`,
          `tls-ca-cert-file ${t.ca}`,
          `tls-auth-clients ${o.tls?.authClients ?? 'no'}`,
        ]
      : [];
    if (o.sentinel) {
      if (t) tlsLines.push('tls-replication yes');
      return `${[`port ${this.port}`, 'bind 127.0.0.1', `dir ${this.dir}`, `logfile ${this.logPath}`, ...tlsLines, ...o.sentinel].join('\n')}\n`;
    }
    const lines = [
      `port ${this.port}`,
      'bind 127.0.0.1',
      `dir ${this.dir}`,
      `logfile ${this.logPath}`,
      'save ""',
      'appendonly no',
      `repl-diskless-sync ${o.diskless ? 'yes' : 'no'}`,
      'repl-diskless-sync-delay 0',
    ];
    if (o.password) lines.push(`requirepass ${o.password}`);
    if (o.aclUser) lines.push(`user ${o.aclUser.name} on >${o.aclUser.password} ~* &* +@all`);
    lines.push(...tlsLines);
    for (const [k, v] of Object.entries(o.config ?? {})) lines.push(`${k} ${v}`);
    return `${lines.join('\n')}\n`;
  }

  private async spawn(): Promise<void> {
    const confPath = join(this.dir, `redis-${this.port}.conf`);
    writeFileSync(confPath, this.configText());
    const args = this.options.sentinel ? [confPath, '--sentinel'] : [confPath];
    const proc = spawn(this.binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr?.on('data', (d) => {
      stderr += d;
    });
    this.proc = proc;
    live.add(this);
    let exited = false;
    proc.once('exit', () => {
      exited = true;
      live.delete(this);
    });
    for (let i = 0; i < 200; i++) {
      if (exited) throw new Error(`redis-server exited at start: ${stderr}${this.tailLog()}`);
      const c = new Redis({
        port: this.port,
        host: '127.0.0.1',
        lazyConnect: true,
        retryStrategy: () => null,
        ...this.auth(),
      });
      c.on('error', () => {});
      try {
        await c.connect();
        if ((await c.ping()) === 'PONG') {
          c.disconnect();
          return;
        }
      } catch {
        // not ready yet
      } finally {
        c.disconnect();
      }
      await sleep(25);
    }
    proc.kill('SIGKILL');
    throw new Error(`redis-server on ${this.port} did not become ready: ${this.tailLog()}`);
  }

  private auth(): RedisOptions {
    return this.options.password ? { password: this.options.password } : {};
  }

  private tailLog(): string {
    try {
      return readFileSync(this.logPath, 'utf8').split('\n').slice(-20).join('\n');
    } catch {
      return '';
    }
  }

  /** The server's log, for asserting on what the master did (e.g. "Partial resynchronization request ... accepted"). */
  log(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** A connected ioredis client, closed by `stop()`. */
  client(extra: RedisOptions = {}): Redis {
    const c = new Redis({
      port: this.port,
      host: '127.0.0.1',
      maxRetriesPerRequest: 1,
      ...this.auth(),
      ...extra,
    });
    c.on('error', () => {});
    this.clients.push(c);
    return c;
  }

  /** Runs redis-cli against this server (for tests that want the real CLI or redis-benchmark). */
  cli(args: string[]): string {
    const auth = this.options.password ? ['-a', this.options.password, '--no-auth-warning'] : [];
    return execFileSync('redis-cli', ['-p', String(this.port), ...auth, ...args], { encoding: 'utf8' });
  }

  async info(section: string): Promise<Record<string, string>> {
    const c = this.client();
    const text = (await c.info(section)) as string;
    const out: Record<string, string> = {};
    for (const line of text.split('\r\n')) {
      const i = line.indexOf(':');
      if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
    }
    return out;
  }

  /** Stops the process (SIGKILL unless `graceful`, which sends SHUTDOWN-like SIGTERM and waits). */
  async stop(opts: { graceful?: boolean; keepDir?: boolean } = {}): Promise<void> {
    for (const c of this.clients.splice(0)) c.disconnect();
    const proc = this.proc;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const done = new Promise((r) => proc.once('exit', r));
      proc.kill(opts.graceful ? 'SIGTERM' : 'SIGKILL');
      await Promise.race([done, sleep(10_000)]);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    }
    live.delete(this);
    if (!opts.keepDir && !this.options.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Restarts on the same port and dir (e.g. after SHUTDOWN SAVE to reload the RDB). */
  async restart(): Promise<void> {
    await this.stop({ graceful: true, keepDir: true });
    await this.spawn();
  }
}
