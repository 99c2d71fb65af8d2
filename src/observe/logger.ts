import { type Logger, pino } from 'pino';
import { scrub } from './redact.js';

export type { Logger };

/**
 * Structured logs go to stderr only: stdout belongs to the NDJSON event sink, and mixing the two would corrupt it.
 * Synchronous destination so that a fatal error's last line is never lost on exit. Every line passes through
 * `scrub` (src/observe/redact.ts): whatever a library's error quotes, no secret redtail knows leaves in a log line.
 */
export function createLogger(level = 'info'): Logger {
  return pino(
    { level, base: { name: 'redtail' }, hooks: { streamWrite: scrub } },
    pino.destination({ fd: 2, sync: true }),
  );
}

/** A logger that drops everything, for library use and tests that do not assert on logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
