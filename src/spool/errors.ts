import { RedtailError } from '../errors.js';

/** The spool directory cannot be used: a full disk, missing permissions, a corrupt record found while replaying. */
export class SpoolError extends RedtailError {
  override readonly name = 'SpoolError';
  constructor(
    message: string,
    readonly code: string | undefined,
    fatal: boolean,
    cause?: unknown,
  ) {
    super(message, { fatal, cause });
  }

  /** The disk (or the file system's quota) is full: space can come back as segments are released. */
  get diskFull(): boolean {
    return this.code === 'ENOSPC' || this.code === 'EDQUOT';
  }
}

const HINTS: Record<string, string> = {
  EACCES: 'make it writable by the user redtail runs as, or set spool.dir elsewhere',
  EPERM: 'make it writable by the user redtail runs as, or set spool.dir elsewhere',
  EROFS: 'the file system is read-only: set spool.dir to a writable volume',
  ENOSPC:
    'the disk is full: free space, lower spool.maxBytes below the free space, or set spool.dir elsewhere',
  EDQUOT: 'the disk quota is exhausted: raise it or lower spool.maxBytes',
  ENOTDIR: 'a path component is not a directory: fix spool.dir',
};

/** One line naming what failed on which path, and what to do. A full disk is not fatal: the link backs off. */
export function spoolFsError(err: unknown, what: string): SpoolError {
  const code = (err as NodeJS.ErrnoException).code;
  const hint = (code && HINTS[code]) || 'check the directory and the disk';
  const fatal = code !== 'ENOSPC' && code !== 'EDQUOT';
  return new SpoolError(
    `spool: ${what} failed: ${code ?? (err as Error).message} (${hint})`,
    code,
    fatal,
    err,
  );
}
