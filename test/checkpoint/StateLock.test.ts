import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, describe, expect, it } from 'vitest';
import {
  acquireStateLocks,
  type LockHolder,
  lockFileOf,
  StateLock,
  StateLockError,
} from '../../src/checkpoint/StateLock.js';
import { localStatePaths } from '../../src/cli/sinks.js';
import { ConfigError, loadConfig } from '../../src/config/Config.js';
import { repoRoot } from '../harness/RedtailProcess.js';

/**
 * The lock module on its own, with other processes as holders: a node child that takes the lock through the built
 * module (dist/, which the test run's global setup compiles) and keeps it until it is killed.
 */

const children: ChildProcess[] = [];
const taken: StateLock[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const l of taken.splice(0)) l.release();
});

const dir = () => mkdtempSync(join(tmpdir(), 'redtail-lock-'));

function lockOrFail(path: string): StateLock {
  const r = StateLock.tryLock(path);
  if (r.kind !== 'locked') throw new Error(`expected to lock ${path}, held by ${JSON.stringify(r.holder)}`);
  taken.push(r.lock);
  return r.lock;
}

/** A separate process holding the lock of `path`; resolves once it holds it. */
async function holder(path: string): Promise<ChildProcess> {
  const module = join(repoRoot, 'dist', 'src', 'checkpoint', 'StateLock.js');
  const script = `import(${JSON.stringify(module)}).then((m) => {
    const r = m.StateLock.tryLock(${JSON.stringify(path)});
    process.stdout.write(r.kind + '\\n');
    setInterval(() => {}, 1000);
  });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const first = await new Promise<string>((resolve, reject) => {
    child.stdout!.setEncoding('utf8');
    child.stdout!.once('data', (d: string) => resolve(d.trim()));
    child.once('exit', (code) => reject(new Error(`holder exited with ${code}`)));
  });
  expect(first).toBe('locked');
  return child;
}

const exited = (c: ChildProcess) => new Promise((resolve) => c.once('exit', resolve));

describe('StateLock', () => {
  it('a second taker in another process is refused and told the holder; kill -9 frees the lock at once', async () => {
    const path = join(dir(), 'cp.json');
    const child = await holder(path);
    const r = StateLock.tryLock(path);
    expect(r.kind).toBe('held');
    const h = (r as { holder: LockHolder }).holder;
    expect(h).toMatchObject({ pid: child.pid, host: hostname() });
    expect(Date.parse(h.startedAt)).toBeGreaterThan(0);
    await expect(acquireStateLocks([path], { wait: false })).rejects.toThrow(
      `${path} is in use by another redtail: pid ${child.pid} on host ${hostname()} (started ${h.startedAt})`,
    );
    child.kill('SIGKILL');
    await exited(child);
    const lock = lockOrFail(path);
    expect(lock.previous).toMatchObject({ pid: child.pid });
  });

  it('a second connection in the same process is refused too (SQLite tracks its own locks per inode)', () => {
    const path = join(dir(), 'events.ndjson');
    lockOrFail(path);
    const r = StateLock.tryLock(path);
    expect(r).toMatchObject({ kind: 'held', holder: { pid: process.pid } });
  });

  it('release frees it for the next taker, and the lock file stays', () => {
    const path = join(dir(), 'cp.json');
    const first = lockOrFail(path);
    first.release();
    expect(first.held).toBe(false);
    expect(existsSync(lockFileOf(path))).toBe(true);
    lockOrFail(path);
  });

  it('a record naming a live but unrelated process (PID reuse) or another boot does not block', () => {
    const d = dir();
    for (const [name, record] of [
      // Our own pid is alive; the start time and boot id say it is not the process that wrote the record.
      [
        'reused.json',
        { pid: process.pid, host: hostname(), startedAt: '2001-01-01T00:00:00.000Z', bootId: 'x' },
      ],
      // pid 1 is alive on every machine; a record from before a reboot names it often in containers.
      [
        'reboot.json',
        { pid: 1, host: hostname(), startedAt: '2001-01-01T00:00:00.000Z', bootId: 'old-boot' },
      ],
    ] as const) {
      const path = join(d, name);
      const db = new DatabaseSync(lockFileOf(path));
      db.exec('CREATE TABLE holder (pid INTEGER, host TEXT, started_at TEXT, boot_id TEXT)');
      db.prepare('INSERT INTO holder VALUES (?, ?, ?, ?)').run(
        record.pid,
        record.host,
        record.startedAt,
        record.bootId,
      );
      db.close();
      const lock = lockOrFail(path);
      expect(lock.previous).toEqual(record);
    }
  });

  it('two spellings of one path (relative, through a symlinked directory) share one lock', () => {
    const d = dir();
    mkdirSync(join(d, 'real'));
    symlinkSync(join(d, 'real'), join(d, 'link'));
    lockOrFail(join(d, 'real', 'cp.json'));
    expect(StateLock.tryLock(join(d, 'link', 'cp.json')).kind).toBe('held');
    expect(StateLock.tryLock(join(d, 'real', '.', 'cp.json')).kind).toBe('held');
  });

  it('locks a directory (a spool) through a lock file beside it', async () => {
    const spool = join(dir(), 'spool');
    mkdirSync(spool);
    const locks = await acquireStateLocks([spool], { wait: false });
    expect(existsSync(`${spool}.lock`)).toBe(true);
    await expect(acquireStateLocks([`${spool}/`], { wait: false })).rejects.toThrow(StateLockError);
    locks!.release();
  });

  it('a lock file that cannot be created is one clear error', () => {
    const path = join(dir(), 'missing-dir', 'cp.json');
    expect(() => StateLock.tryLock(path)).toThrow(StateLockError);
    expect(() => StateLock.tryLock(path)).toThrow(/cannot create lock file .*missing-dir\/cp\.json\.lock/);
  });

  it('waits for the holder to exit when asked, telling once who it waits for', async () => {
    const d = dir();
    const a = join(d, 'a.json');
    const b = join(d, 'b.ndjson');
    const child = await holder(b);
    const told: (LockHolder | null)[] = [];
    const acquiring = acquireStateLocks([b, a], {
      wait: true,
      pollMs: 20,
      onWait: (_path, h) => told.push(h),
    });
    // It keeps waiting (a is taken in sorted order first, then b waits) until the holder is gone.
    await new Promise((r) => setTimeout(r, 300));
    expect(told).toEqual([expect.objectContaining({ pid: child.pid })]);
    expect(StateLock.tryLock(a).kind).toBe('held');
    child.kill('SIGTERM');
    const locks = await acquiring;
    expect(locks?.paths).toEqual([a, b]);
    expect(told).toHaveLength(1);
    locks!.release();
    lockOrFail(a);
  });

  it('an aborted wait releases what it took and resolves null', async () => {
    const d = dir();
    const a = join(d, 'a.json');
    const b = join(d, 'b.ndjson');
    await holder(b);
    const stop = new AbortController();
    const acquiring = acquireStateLocks([a, b], { wait: true, pollMs: 20, signal: stop.signal });
    await new Promise((r) => setTimeout(r, 100));
    stop.abort();
    expect(await acquiring).toBeNull();
    lockOrFail(a);
  });
});

describe('localStatePaths', () => {
  const config = (sinks: string[]) =>
    loadConfig({ env: {}, flags: { sinks, checkpoint: '/var/lib/redtail/cp.json' } });

  it('names each stdout/file sink checkpoint, each file sink file and the spool, not the remote sinks', () => {
    expect(localStatePaths(config(['stdout']))).toEqual([
      '/var/lib/redtail/cp.json',
      '/var/lib/redtail/cp.spool',
    ]);
    expect(localStatePaths(config(['file:/data/ev.ndjson', 'kafka://k:9092', 'stdout']))).toEqual([
      '/var/lib/redtail/cp.json.0',
      '/data/ev.ndjson',
      '/var/lib/redtail/cp.json.1',
      '/var/lib/redtail/cp.spool',
    ]);
    expect(localStatePaths(config(['postgres://u@h/db', 'kafka://k:9092']))).toEqual([
      '/var/lib/redtail/cp.spool',
    ]);
    expect(
      localStatePaths(
        loadConfig({ env: {}, flags: { sinks: ['kafka://k:9092'], checkpoint: '/x/cp.json', spool: 'off' } }),
      ),
    ).toEqual([]);
  });

  it('refuses a file sink that is the checkpoint, and a sink given twice', () => {
    expect(() => localStatePaths(config(['file:/var/lib/redtail/cp.json']))).toThrow(
      /checkpoint and sink file:\/var\/lib\/redtail\/cp.json name the same file/,
    );
    expect(() => localStatePaths(config(['file:/x.ndjson', 'file:/x.ndjson']))).toThrow(ConfigError);
  });

  it('waitForLock comes from the flag, REDTAIL_WAIT_FOR_LOCK or the file, and is off by default', () => {
    expect(loadConfig({ env: {}, flags: {} }).waitForLock).toBe(false);
    expect(loadConfig({ env: { REDTAIL_WAIT_FOR_LOCK: 'true' }, flags: {} }).waitForLock).toBe(true);
    expect(loadConfig({ env: {}, flags: { waitForLock: true } }).waitForLock).toBe(true);
    expect(() => loadConfig({ env: { REDTAIL_WAIT_FOR_LOCK: 'soon' }, flags: {} })).toThrow(
      /REDTAIL_WAIT_FOR_LOCK must be true or false/,
    );
  });
});
