import { acquireStateLocks, describeHolder, type StateLocks } from '../checkpoint/StateLock.js';
import type { RedtailConfig } from '../config/Config.js';
import type { Logger } from '../observe/logger.js';
import { localStatePaths } from './sinks.js';

/**
 * Locks the sinks' local files before anything opens them, so a second redtail on the same checkpoint or file
 * fails (StateLockError, exit 1) or, with `waitForLock`, waits for the first to exit, and never writes first.
 * Resolves null when `signal` (SIGTERM/SIGINT) ended a wait.
 */
export async function lockLocalState(
  config: RedtailConfig,
  logger: Logger,
  signal: AbortSignal,
): Promise<StateLocks | null> {
  const paths = localStatePaths(config);
  let waited = false;
  const locks = await acquireStateLocks(paths, {
    wait: config.waitForLock,
    signal,
    onWait: (path, holder) => {
      waited = true;
      logger.warn(
        { path, holder },
        `waiting for ${describeHolder(holder)} to release ${path} (waitForLock); starting once it exits`,
      );
    },
  });
  if (locks && locks.paths.length > 0)
    logger.info({ paths: locks.paths, waited }, 'holding the locks of the local state');
  return locks;
}
