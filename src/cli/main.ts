import { rdbSnapshot } from '../pipeline/RdbSnapshot.js';
import { type RunHooks, runCommand } from './runCommand.js';

const usage = `Usage: redtail <command> [options]

Commands:
  run      tail a Redis master as a replica and stream every change to the sinks
  rdb      print the contents of an RDB file as NDJSON snapshot events (or --stats)
  verify   compare the master's dataset with the Postgres mirror; exit 0 only when they agree
  check-config  validate run's flags, environment and config file; print the effective configuration, secrets masked
  help     this text

Run 'redtail <command> --help' for a command's options.
`;

/** Entry point of the `redtail` binary; returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'run':
      return runCommand(rest, await defaultHooks());
    case 'rdb': {
      const { rdbCommand } = await import('./rdbCommand.js');
      return rdbCommand(rest);
    }
    case 'check-config': {
      const { checkConfigCommand } = await import('./checkConfigCommand.js');
      return checkConfigCommand(rest);
    }
    case 'verify': {
      const { verifyCommand } = await import('../../sinks/postgres/verify.js');
      return verifyCommand(rest);
    }
    case undefined:
    case 'help':
    case '-h':
    case '--help':
      process.stdout.write(usage);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`redtail: unknown command '${command}'\n\n${usage}`);
      return 2;
  }
}

/** The snapshot decoder `run` uses. */
async function defaultHooks(): Promise<RunHooks> {
  return { snapshot: rdbSnapshot() };
}
