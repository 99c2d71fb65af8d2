import type { CommandEvent } from '../events/ChangeEvent.js';
import { argIs, argLatin1, BufferArgs, type CommandArgs } from '../resp/CommandArgs.js';
import { ArgError, Args, isToken } from './args.js';
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

/** ASCII lower case of a latin1 name (no change, no copy, when it has no upper-case letter). */
function lowerAscii(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) return s.toLowerCase();
  }
  return s;
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
export function isControlCommand(args: Buffer[] | CommandArgs): boolean {
  const a = Array.isArray(args) ? new BufferArgs(args) : args;
  if (a.length === 0) return false;
  switch (a.end(0) - a.start(0)) {
    case 4:
      return argIs(a, 0, 'exec') || argIs(a, 0, 'ping');
    case 5:
      return argIs(a, 0, 'multi');
    case 6:
      return argIs(a, 0, 'select');
    case 8:
      return argIs(a, 0, 'replconf');
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
 * Specs by a key made in place from the name's bytes (length, first, middle and last letter, case folded): a stream
 * mostly repeats a handful of commands, and one Map hit plus one comparison of the name's bytes saves a string and
 * up to several comparisons per command. The key is only a hint: the name is compared before the spec is used.
 */
const MAX_SEEN = 64;
const seen = new Map<number, CommandSpec>();

function nameKey(args: CommandArgs): number {
  const s = args.start(0);
  const n = args.end(0) - s;
  if (n === 0 || n > 255) return -1;
  const b = args.bufferOf(0);
  // Kept below 2^30 so the key is a small integer (a Map key V8 hashes without a heap number).
  return (
    n | ((b[s]! | 0x20) << 8) | ((b[s + (n >> 1)]! | 0x20) << 16) | (((b[s + n - 1]! | 0x20) & 0x3f) << 24)
  );
}

function recentSpec(args: CommandArgs, key: number): CommandSpec | undefined {
  const spec = seen.get(key);
  return spec !== undefined && argIs(args, 0, spec.name) ? spec : undefined;
}

function remember(spec: CommandSpec, key: number): void {
  if (key < 0 || spec.name.includes('|')) return;
  if (seen.size >= MAX_SEEN) seen.clear();
  seen.set(key, spec);
}

/**
 * Turns one replicated command into change events (see docs/events.md). Never drops a command: anything not in
 * the table, or whose arguments do not parse, becomes one `op: "command"` event with the raw arguments and
 * `unknown: true`. Control commands (isControlCommand) produce no events.
 */
export function normalizeCommand(argv: Buffer[] | CommandArgs, ctx: CommandContext): CommandEvent[] {
  normalizeCounters.commands++;
  const out: CommandEvent[] = [];
  const e = new Emitter(ctx, out);
  const args = Array.isArray(argv) ? new BufferArgs(argv) : argv;
  if (args.length === 0) return out;
  const key = nameKey(args);
  let spec = recentSpec(args, key);
  let name = spec !== undefined ? spec.name : argLatin1(args, 0);
  if (spec === undefined) {
    spec = findSpec(name);
    if (spec !== undefined) remember(spec, key);
  }
  let start = 1;
  if (spec === undefined) {
    name = lowerAscii(name);
    if (containerCommands.has(name) && args.length > 1) {
      name = `${name}|${lowerAscii(argLatin1(args, 1))}`;
      spec = findSpec(name);
      start = 2;
    }
  } else name = spec.name;
  if (spec === undefined) {
    if (isControlCommand(args)) return out;
    unknown(
      args.toArray(),
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
      unknown(args.toArray(), name, e, `unparsed: ${err.message}`);
    }
  }
  normalizeCounters.events += out.length;
  return out;
}
