import { readFileSync, realpathSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { RedtailError } from '../errors.js';

/**
 * Exclusive locks on local state (a checkpoint file, a file sink's output, a spool directory), so that two redtails
 * never write the same state: the second one fails at start, or waits with `waitForLock` (docs/resume.md).
 *
 * Mechanism: a POSIX record lock (fcntl) on `<path>.lock`, taken through Node's built-in SQLite, which is the only
 * fcntl a Node program has without a native addon (Node has no flock API; fs-ext needs a compiler and node-gyp's
 * header download, and its prebuilt fork stops at Node 25's ABI). The lock file is a tiny SQLite database opened in
 * `locking_mode=EXCLUSIVE` with `BEGIN EXCLUSIVE`: the kernel holds the lock for the process and drops it when the
 * process dies in any way (`kill -9`, OOM, a crashed container), so a dead holder never blocks the next start, a
 * reused PID cannot look like a holder and a reboot leaves nothing behind. Holders on other hosts that share the
 * volume are excluded too where the filesystem arbitrates fcntl locks between hosts (NFSv4, NFSv3 with lockd).
 *
 * The holder writes who it is (pid, host, start time, boot id) into the database; a process that finds the lock
 * taken reads that record without locking (SQLite's `immutable` open) to name the holder in its message.
 */

type Sqlite = typeof import('node:sqlite');
let sqliteModule: Sqlite | undefined;

/**
 * node:sqlite, loaded on first use. Node 22 prints "SQLite is an experimental feature" when it loads (Node 26 does
 * not); redtail uses nothing but its file locking, so that one warning is dropped instead of confusing every start.
 */
function sqlite(): Sqlite {
  if (sqliteModule) return sqliteModule;
  const emit = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    if (/SQLite is an experimental feature/.test(String(warning))) return;
    (emit as (...a: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    sqliteModule = process.getBuiltinModule('node:sqlite') as Sqlite;
  } finally {
    process.emitWarning = emit;
  }
  return sqliteModule;
}

/** Who holds a lock, as it recorded itself. */
export interface LockHolder {
  pid: number;
  host: string;
  /** When the holding process started (ISO 8601). */
  startedAt: string;
  /** /proc/sys/kernel/random/boot_id of the holder's machine, when it has one. */
  bootId: string | null;
}

/** A lock another process holds, or one that cannot be taken at all. Retrying cannot help without a change. */
export class StateLockError extends RedtailError {
  override readonly name = 'StateLockError';
  constructor(
    message: string,
    readonly path: string,
    readonly holder: LockHolder | null,
  ) {
    super(message, { fatal: true });
  }
}

/** The file that carries the lock of a state path (the path itself may be replaced by rename, or be a directory). */
export function lockFileOf(path: string): string {
  return `${path}.lock`;
}

/** `path` made absolute with its directory's symlinks resolved, so two spellings of one place share one lock. */
export function canonicalStatePath(path: string): string {
  const abs = resolve(path);
  try {
    return join(realpathSync(dirname(abs)), basename(abs));
  } catch {
    return abs; // a missing directory: the lock file cannot be created and says so
  }
}

let cachedBootId: string | null | undefined;
function bootId(): string | null {
  if (cachedBootId === undefined) {
    try {
      cachedBootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      cachedBootId = null;
    }
  }
  return cachedBootId;
}

/** This process as a holder record. */
export function currentHolder(): LockHolder {
  return {
    pid: process.pid,
    host: hostname(),
    startedAt: new Date(Date.now() - process.uptime() * 1000).toISOString(),
    bootId: bootId(),
  };
}

/** `pid 123 on host web-1 (started 2026-…)`, or a placeholder when the holder has not written its record yet. */
export function describeHolder(holder: LockHolder | null): string {
  if (!holder) return 'another process (it has not recorded who it is yet)';
  return `pid ${holder.pid} on host ${holder.host} (started ${holder.startedAt})`;
}

/** SQLITE_BUSY / SQLITE_LOCKED: the lock is someone else's (a process, or another connection of this one). */
function isBusy(err: unknown): boolean {
  const errcode = (err as { errcode?: unknown }).errcode;
  if (typeof errcode === 'number') return (errcode & 0xff) === 5 || (errcode & 0xff) === 6;
  return /database is locked/.test((err as Error).message ?? '');
}

/** The holder's record, read without taking any lock; null while it is being written or when unreadable. */
function readHolder(lockFile: string): LockHolder | null {
  const url = pathToFileURL(lockFile);
  url.search = '?immutable=1';
  let db: DatabaseSync | undefined;
  try {
    db = new (sqlite().DatabaseSync)(url, { readOnly: true });
    const row = db.prepare('SELECT pid, host, started_at, boot_id FROM holder LIMIT 1').get() as
      | { pid: number; host: string; started_at: string; boot_id: string | null }
      | undefined;
    if (!row) return null;
    return { pid: Number(row.pid), host: row.host, startedAt: row.started_at, bootId: row.boot_id };
  } catch {
    return null;
  } finally {
    db?.close();
  }
}

export type TryLockResult = { kind: 'locked'; lock: StateLock } | { kind: 'held'; holder: LockHolder | null };

/** One held lock; `release` (or the process's end) frees it. */
export class StateLock {
  private constructor(
    readonly path: string,
    readonly lockFile: string,
    private db: DatabaseSync | null,
    /** The record of the process that held it last (dead now, or it would still hold it), if any. */
    readonly previous: LockHolder | null,
  ) {}

  /** Takes the lock on `path` now, or says who holds it. Throws StateLockError when no lock can be taken at all. */
  static tryLock(path: string): TryLockResult {
    const canonical = canonicalStatePath(path);
    const lockFile = lockFileOf(canonical);
    let db: DatabaseSync;
    try {
      db = new (sqlite().DatabaseSync)(lockFile, { timeout: 0 });
    } catch (err) {
      throw new StateLockError(
        `cannot create lock file ${lockFile}: ${(err as Error).message}; check that its directory exists and is writable`,
        canonical,
        null,
      );
    }
    try {
      // In exclusive locking mode SQLite keeps the file lock after COMMIT until the connection closes.
      db.exec('PRAGMA locking_mode = EXCLUSIVE');
      db.exec('BEGIN EXCLUSIVE');
    } catch (err) {
      db.close();
      if (isBusy(err)) return { kind: 'held', holder: readHolder(lockFile) };
      throw new StateLockError(
        `cannot lock ${lockFile}: ${(err as Error).message}; the filesystem must support file locks (fcntl), ` +
          'and the file must be redtail’s lock (delete it only while no redtail runs)',
        canonical,
        null,
      );
    }
    try {
      const previous = StateLock.recordHolder(db);
      return { kind: 'locked', lock: new StateLock(canonical, lockFile, db, previous) };
    } catch (err) {
      db.close();
      throw new StateLockError(
        `cannot write lock file ${lockFile}: ${(err as Error).message}`,
        canonical,
        null,
      );
    }
  }

  /** Replaces the holder record with this process, inside the exclusive transaction; returns the one before. */
  private static recordHolder(db: DatabaseSync): LockHolder | null {
    db.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER, host TEXT, started_at TEXT, boot_id TEXT)');
    const old = db.prepare('SELECT pid, host, started_at, boot_id FROM holder LIMIT 1').get() as
      | { pid: number; host: string; started_at: string; boot_id: string | null }
      | undefined;
    const me = currentHolder();
    db.exec('DELETE FROM holder');
    db.prepare('INSERT INTO holder (pid, host, started_at, boot_id) VALUES (?, ?, ?, ?)').run(
      me.pid,
      me.host,
      me.startedAt,
      me.bootId,
    );
    db.exec('COMMIT');
    return old
      ? { pid: Number(old.pid), host: old.host, startedAt: old.started_at, bootId: old.boot_id }
      : null;
  }

  get held(): boolean {
    return this.db !== null;
  }

  /**
   * Frees the lock. The lock file stays: deleting it would let a process that opened it a moment ago lock the
   * unlinked file while a third one creates and locks a new one, and both would think they are alone.
   */
  release(): void {
    this.db?.close();
    this.db = null;
  }
}

export interface AcquireOptions {
  /** Wait until the holders exit instead of failing (`--wait-for-lock`). */
  wait: boolean;
  /** Told once per path while waiting, with the holder. */
  onWait?: (path: string, holder: LockHolder | null) => void;
  /** Aborting ends a wait: `acquireStateLocks` then releases what it took and returns null. */
  signal?: AbortSignal;
  /** How often a waiting process tries again. */
  pollMs?: number;
}

/** Every lock of one process, released together. */
export class StateLocks {
  constructor(readonly locks: readonly StateLock[]) {}

  get paths(): string[] {
    return this.locks.map((l) => l.path);
  }

  release(): void {
    for (const l of this.locks) l.release();
  }
}

/**
 * Locks every path, in one global order (sorted), so two waiting processes cannot each hold what the other waits
 * for. Without `wait`, a held lock throws StateLockError naming the path and its holder, after releasing what was
 * taken. With `wait`, returns once all are held, or null when `signal` aborted the wait.
 */
export async function acquireStateLocks(paths: string[], opts: AcquireOptions): Promise<StateLocks | null> {
  const unique = [...new Set(paths.map(canonicalStatePath))].sort();
  const taken: StateLock[] = [];
  try {
    for (const path of unique) {
      const lock = await lockOne(path, opts);
      if (!lock) {
        for (const l of taken) l.release();
        return null;
      }
      taken.push(lock);
    }
  } catch (err) {
    for (const l of taken) l.release();
    throw err;
  }
  return new StateLocks(taken);
}

/** A holder writes its record just after it took the lock: give it a moment before naming nobody. */
const RECORD_RETRIES = 10;

async function lockOne(path: string, opts: AcquireOptions): Promise<StateLock | null> {
  let told = false;
  for (let attempt = 0; ; attempt++) {
    const r = StateLock.tryLock(path);
    if (r.kind === 'locked') return r.lock;
    if (r.holder === null && attempt < RECORD_RETRIES) {
      await sleep(20);
      continue;
    }
    if (!opts.wait)
      throw new StateLockError(
        `${path} is in use by another redtail: ${describeHolder(r.holder)} holds ${lockFileOf(path)}; ` +
          'stop that one first, or start this one with --wait-for-lock to take over when it exits',
        path,
        r.holder,
      );
    if (!told) {
      told = true;
      opts.onWait?.(path, r.holder);
    }
    if (opts.signal?.aborted) return null;
    try {
      await sleep(opts.pollMs ?? 200, undefined, { signal: opts.signal });
    } catch {
      return null; // aborted
    }
  }
}
