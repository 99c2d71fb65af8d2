/** A setting redtail cannot use: the CLI prints its message as one line and exits with status 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly fatal = true;
}
