import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freePort } from './ports.js';

/** The newest PostgreSQL server binaries installed (Debian's /usr/lib/postgresql/N/bin), or pg_config's. */
function binDir(): string {
  try {
    const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join('/usr/lib/postgresql', versions[0], 'bin');
  } catch {
    // not Debian's layout
  }
  return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
}

/**
 * A throwaway PostgreSQL cluster that checks passwords (scram-sha-256), unlike the shared test server (trust):
 * for tests of password handling and authentication failures. It lives in /tmp rather than under $TMPDIR because,
 * when the tests run as root, the server runs as the `postgres` user, who cannot enter a root-only $TMPDIR.
 */
export class PasswordPostgres {
  private constructor(
    private readonly proc: ChildProcess,
    private readonly dir: string,
    readonly port: number,
    /** Runs pg_ctl to stop the server: a signal to `runuser` would not reach it. */
    private readonly pgCtlStop: () => void,
  ) {}

  static async start(password: string): Promise<PasswordPostgres> {
    const bin = binDir();
    const dir = mkdtempSync('/tmp/redtail-pgpw-');
    const asRoot = process.getuid?.() === 0;
    const run = (cmd: string, args: string[]): [string, string[]] =>
      asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
    if (asRoot) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
      chownSync(dir, uid, gid);
    }
    chmodSync(dir, 0o700);
    const pwfile = join(dir, 'pw');
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (asRoot) chownSync(pwfile, Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), 0);
    const data = join(dir, 'data');
    const [initCmd, initArgs] = run(join(bin, 'initdb'), [
      '-D',
      data,
      '-U',
      'postgres',
      '--auth=scram-sha-256',
      `--pwfile=${pwfile}`,
      '--no-sync',
      '-E',
      'UTF8',
    ]);
    execFileSync(initCmd, initArgs, { stdio: 'pipe' });
    rmSync(pwfile);
    const port = await freePort();
    const [cmd, args] = run(join(bin, 'postgres'), [
      '-D',
      data,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'fsync=off',
    ]);
    const proc = spawn(cmd, args, { stdio: 'ignore' });
    const [ctl, ctlArgs] = run(join(bin, 'pg_ctl'), ['stop', '-D', data, '-m', 'immediate']);
    const server = new PasswordPostgres(proc, dir, port, () => {
      execFileSync(ctl, ctlArgs, { stdio: 'ignore' });
    });
    for (let i = 0; ; i++) {
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' });
      try {
        await c.connect();
        await c.end();
        return server;
      } catch (err) {
        await c.end().catch(() => {});
        if (i > 200 || proc.exitCode !== null) {
          await server.stop();
          throw new Error(`private postgres on ${port} did not start: ${(err as Error).message}`);
        }
        await sleep(50);
      }
    }
  }

  /** `postgres://postgres[:password]@127.0.0.1:port/postgres`, plus `query` (without `?`). */
  url(password?: string, query = ''): string {
    const auth = password === undefined ? 'postgres' : `postgres:${encodeURIComponent(password)}`;
    return `postgres://${auth}@127.0.0.1:${this.port}/postgres${query ? `?${query}` : ''}`;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null) {
      const exited = new Promise((resolve) => this.proc.once('exit', resolve));
      try {
        this.pgCtlStop();
      } catch {
        this.proc.kill('SIGINT');
      }
      await Promise.race([exited, sleep(10_000)]);
      if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
