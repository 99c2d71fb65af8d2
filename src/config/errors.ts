import { RedtailError } from '../errors.js';
/** A setting redtail cannot use: the CLI prints its message as one line and exits with status 2. */
export class ConfigError extends RedtailError {
  override readonly name = 'ConfigError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { fatal: true, cause: options?.cause });
  }
}
