import { parseEventFilterConfig } from '../commands/EventFilter.js';
import { ConfigError, loadConfigWithOrigins, type RedtailConfig } from '../config/Config.js';
import { leafPaths } from '../config/origins.js';
import { parseMasterUrl } from '../link/MasterAddress.js';
import { loadTls, type MasterTls } from '../link/tls.js';
import { redactValue, scrubbedMessage } from '../observe/redact.js';
import { parseRunArgs } from './runOptions.js';
import { sinkKind } from './sinkKind.js';

export const checkConfigUsage = `Usage: redtail check-config [run's options]

Validates the flags, REDTAIL_* environment variables and config file exactly as 'redtail run' would read them,
without connecting to anything, and prints the effective configuration with every secret masked (***) and where
each value came from (flag, env, file, default). Exit status 0 when it is valid, 2 otherwise (one line per
problem, naming the setting: sinks[1]: unknown scheme 'kafak').

It accepts every option of 'redtail run' (see 'redtail run --help').
`;

/** `redtail check-config`: returns the exit status. */
export async function checkConfigCommand(argv: string[]): Promise<number> {
  let config: RedtailConfig;
  let origins: Map<string, string>;
  try {
    const { help, sources } = parseRunArgs(argv);
    if (help) {
      process.stdout.write(checkConfigUsage);
      return 0;
    }
    ({ config, origins } = loadConfigWithOrigins(sources));
  } catch (err) {
    const hint = err instanceof ConfigError ? '' : " (its options are run's: see 'redtail run --help')";
    process.stderr.write(`redtail check-config: ${scrubbedMessage(err)}${hint}\n`);
    return 2;
  }
  const problems = await deepChecks(config);
  for (const p of problems) process.stderr.write(`redtail check-config: ${p}\n`);
  if (problems.length > 0) return 2;
  process.stdout.write(describeConfig(config, origins));
  return 0;
}

/**
 * What `run` would only find out at start: URLs that do not parse, unreadable TLS files, bad filters and sink specs.
 * Each problem names its setting; all are reported, not only the first.
 */
async function deepChecks(config: RedtailConfig): Promise<string[]> {
  const problems: string[] = [];
  const check = (path: string, fn: () => unknown): void => {
    try {
      fn();
    } catch (err) {
      const message = scrubbedMessage(err);
      problems.push(message.startsWith(`${path}:`) ? message : `${path}: ${message}`);
    }
  };
  let tls: MasterTls | undefined;
  check('tls', () => {
    tls = loadTls(config.tls);
  });
  const masters = Array.isArray(config.master) ? config.master : [config.master];
  masters.forEach((m, i) => {
    check(masters.length > 1 ? `master[${i}]` : 'master', () => parseMasterUrl(m, tls));
  });
  check('filter', () => parseEventFilterConfig(config.filter));
  for (const [i, spec] of config.sinks.entries()) {
    let kind: ReturnType<typeof sinkKind> | undefined;
    check(`sinks[${i}]`, () => {
      kind = sinkKind(spec, i);
    });
    if (kind === 'kafka') {
      const { resolveKafkaSinkConfig } = await import('../../sinks/kafka/config.js');
      check(`sinks[${i}]`, () => resolveKafkaSinkConfig(spec, config.sinkOptions.kafka ?? {}));
    } else if (kind === 'postgres') {
      const { parsePostgresSpec } = await import('../../sinks/postgres/config.js');
      check(`sinks[${i}]`, () => parsePostgresSpec(spec, config.sinkOptions.postgres ?? {}));
    }
  }
  return problems;
}

/** One line per setting: `path = value  (origin)`, values in their display form (secrets as ***). */
export function describeConfig(config: RedtailConfig, origins: Map<string, string>): string {
  const shown = redactValue(config) as Record<string, unknown>;
  const rows: [string, string, string][] = [];
  for (const path of leafPaths(shown)) {
    let value: unknown = shown;
    for (const part of path.split('.')) value = (value as Record<string, unknown>)[part];
    rows.push([path, JSON.stringify(value) ?? 'undefined', origins.get(path) ?? 'default']);
  }
  const width = Math.max(...rows.map(([p]) => p.length));
  return `${rows.map(([p, v, o]) => `${p.padEnd(width)} = ${v}  (${o})`).join('\n')}\n`;
}
