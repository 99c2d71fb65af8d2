import { type Logger, pino } from 'pino';

export type { Logger };

/**
 * Structured logs go to stderr only: stdout belongs to the NDJSON event sink, and mixing the two would corrupt it.
 * Synchronous destination so that a fatal error's last line is never lost on exit.
 */
export function createLogger(level = 'info'): Logger {
  return pino({ level, base: { name: 'redtail' } }, pino.destination({ fd: 2, sync: true }));
}

/** A logger that drops everything, for library use and tests that do not assert on logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
