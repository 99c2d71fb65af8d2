import type { CommandEvent } from '../events/ChangeEvent.js';
import { ArgError, Args, isToken, lower } from './args.js';
import { containerCommands, findSpec, scriptCommands } from './CommandTable.js';
import { type CommandContext, type CommandSpec, Emitter } from './types.js';

export type { CommandContext } from './types.js';

/** Counters the metrics layer reads; the normalizer only ever increments them. */
export interface NormalizeCounters {
  /** Commands given to normalizeCommand. */
  commands: number;
  /** Events returned. */
  events: number;
  /** Commands turned into `op: "command"` with `unknown: true`, whatever the reason. */
  unknown: number;
  /** Of those, commands that are in the table but whose arguments did not parse. */
  parseErrors: number;
  /** Unknown commands by lower-case name (`container|sub` for subcommands), at most MAX_NAMES names. */
  unknownByCommand: Map<string, number>;
}

const MAX_NAMES = 256;

export const normalizeCounters: NormalizeCounters = {
  commands: 0,
  events: 0,
  unknown: 0,
  parseErrors: 0,
  unknownByCommand: new Map(),
};

export function resetNormalizeCounters(): void {
  normalizeCounters.commands = 0;
  normalizeCounters.events = 0;
  normalizeCounters.unknown = 0;
  normalizeCounters.parseErrors = 0;
  normalizeCounters.unknownByCommand.clear();
}

/** True for SELECT, which the pipeline consumes to track the current database. */
export function isSelect(args: Buffer[]): boolean {
  return isToken(args[0], 'select');
}

/** The database a SELECT switches to. */
export function selectDb(args: Buffer[]): number {
  const a = new Args(args);
  const db = a.int('db');
  a.end();
  return db;
}

/**
 * Stream commands that carry no change and are the pipeline's business: SELECT (current db), MULTI/EXEC
 * (transaction grouping), PING (master heartbeat, repl-ping-replica-period) and REPLCONF GETACK.
 */
export function isControlCommand(args: Buffer[]): boolean {
  const n = args[0];
  if (n === undefined) return false;
  switch (n.length) {
    case 4:
      return isToken(n, 'exec') || isToken(n, 'ping');
    case 5:
      return isToken(n, 'multi');
    case 6:
      return isToken(n, 'select');
    case 8:
      return isToken(n, 'replconf');
    default:
      return false;
  }
}

function unknown(args: Buffer[], name: string, e: Emitter, reason?: string): void {
  const c = normalizeCounters;
  c.unknown++;
  const prev = c.unknownByCommand.get(name);
  if (prev !== undefined) c.unknownByCommand.set(name, prev + 1);
  else if (c.unknownByCommand.size < MAX_NAMES) c.unknownByCommand.set(name, 1);
  else c.unknownByCommand.set('(other)', (c.unknownByCommand.get('(other)') ?? 0) + 1);
  e.emit('command', undefined, undefined, { unknown: true, args, reason });
}

/**
 * Turns one replicated command into change events (see docs/events.md). Never drops a command: anything not in
 * the table, or whose arguments do not parse, becomes one `op: "command"` event with the raw arguments and
 * `unknown: true`. Control commands (isControlCommand) produce no events.
 */
export function normalizeCommand(args: Buffer[], ctx: CommandContext): CommandEvent[] {
  normalizeCounters.commands++;
  const out: CommandEvent[] = [];
  const e = new Emitter(ctx, out);
  const first = args[0];
  if (first === undefined) return out;
  let name = first.toString('latin1');
  let spec: CommandSpec | undefined = findSpec(name);
  let start = 1;
  if (spec === undefined) {
    name = lower(first);
    if (containerCommands.has(name) && args.length > 1) {
      name = `${name}|${lower(args[1]!)}`;
      spec = findSpec(name);
      start = 2;
    }
  } else name = spec.name;
  if (spec === undefined) {
    if (isControlCommand(args)) return out;
    unknown(
      args,
      name,
      e,
      scriptCommands.has(name) || scriptCommands.has(name.split('|')[0]!) ? 'script' : undefined,
    );
  } else {
    try {
      spec.parse(new Args(args, start), e);
    } catch (err) {
      if (!(err instanceof ArgError)) throw err;
      out.length = 0;
      normalizeCounters.parseErrors++;
      unknown(args, name, e, `unparsed: ${err.message}`);
    }
  }
  normalizeCounters.events += out.length;
  return out;
}
