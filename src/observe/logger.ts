import { writeSync } from 'node:fs';
import { type Logger, pino } from 'pino';
import { isColorSupported, prettyFactory } from 'pino-pretty';
import { beforeLogLine } from './progress.js';
import { scrub } from './redact.js';

export type { Logger };

/** `json`: pino's JSON lines; `pretty`: readable lines; `auto`: pretty when stderr is a terminal, JSON otherwise. */
export type LogFormat = 'auto' | 'json' | 'pretty';
export const LOG_FORMATS: readonly LogFormat[] = ['auto', 'json', 'pretty'];

/** Whether logs of this format come out as readable lines on this process's stderr. */
export function prettyLogs(format: LogFormat, stderr: { isTTY?: boolean } = process.stderr): boolean {
  return format === 'pretty' || (format === 'auto' && stderr.isTTY === true);
}

/**
 * Structured logs go to stderr only: stdout belongs to the NDJSON event sink, and mixing the two would corrupt it.
 * Both formats write synchronously (the pretty one formats in this thread with pino-pretty's prettyFactory, not its
 * asynchronous transport), so a fatal error's last line is never lost on exit. Every line passes through `scrub`
 * (src/observe/redact.ts): whatever a library's error quotes, no secret redtail knows leaves in a log line.
 */
export function createLogger(level = 'info', format: LogFormat = 'auto'): Logger {
  const base = { name: 'redtail' };
  if (!prettyLogs(format))
    return pino({ level, base, hooks: { streamWrite: scrub } }, pino.destination({ fd: 2, sync: true }));
  const pretty = prettyFactory({
    colorize: process.stderr.isTTY === true && isColorSupported,
    singleLine: true,
    // redtail logs errors as message strings: keep them on the line instead of pino-pretty's indented block.
    errorLikeObjectKeys: [],
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,name',
  });
  return pino(
    { level, base, hooks: { streamWrite: scrub } },
    {
      write(line: string) {
        // A live progress line shares the terminal: erase it first, it is redrawn on its next tick.
        beforeLogLine();
        writeSync(2, pretty(line));
      },
    },
  );
}

/** A logger that drops everything, for library use and tests that do not assert on logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
