import { hashCommands } from './specs/hashes.js';
import { keyCommands } from './specs/keys.js';
import { listCommands } from './specs/lists.js';
import { functionCommands, hllCommands, pubsubCommands } from './specs/server.js';
import { setCommands } from './specs/sets.js';
import { streamCommands } from './specs/streams.js';
import { stringCommands } from './specs/strings.js';
import { zsetCommands } from './specs/zsets.js';
import type { CommandSpec } from './types.js';

export type { CommandContext, CommandSpec, RedisType } from './types.js';

/** Every command the normalizer understands, grouped by data type (one module per group under specs/). */
export const commandSpecs: readonly CommandSpec[] = [
  ...stringCommands,
  ...keyCommands,
  ...listCommands,
  ...setCommands,
  ...zsetCommands,
  ...hashCommands,
  ...streamCommands,
  ...hllCommands,
  ...functionCommands,
  ...pubsubCommands,
];

const VECTOR_SET =
  "Redis 8.0's vector sets are a module data type (TYPE says vectorset) that events do not model; masters propagate VADD/VREM/VSETATTR verbatim (verified on 8.0.2), so consumers get every argument in an unknown command event";

/**
 * Write commands (as COMMAND INFO flags them) that deliberately have no table row, with the reason. They still
 * become `op: "command"` events with `unknown: true` if they ever arrive, so nothing is dropped; the coverage test
 * requires every write command of the running server to be in the table or here.
 */
export const handledAsUnknown: Readonly<Record<string, string>> = {
  spop: 'random: masters (3.2+) propagate the members actually popped as SREM (with a count: one SREM per member in MULTI/EXEC before 7.2, SREMs of up to 1024 members from 7.2), which the table handles; a verbatim SPOP cannot be replayed deterministically',
  migrate:
    'masters propagate MIGRATE as DEL of the migrated keys (nothing with COPY), which the table handles; a verbatim MIGRATE would talk to another server',
  xreadgroup:
    'masters propagate its effects as XCLAIM (one per delivered entry) and XGROUP SETID, which the table handles',
  vadd: VECTOR_SET,
  vrem: VECTOR_SET,
  vsetattr: VECTOR_SET,
};

/**
 * Commands that arrive verbatim only from old masters or scripts replicated by script text (Redis < 5.0, or 5.0–6.2
 * with `lua-replicate-commands no`): their effects cannot be derived without running Lua, so they stay unknown
 * commands with `reason: "script"` to let consumers alert on them. Since 7.0 scripts always replicate their effects.
 */
export const scriptCommands: ReadonlySet<string> = new Set([
  'eval',
  'evalsha',
  'eval_ro',
  'evalsha_ro',
  'fcall',
  'fcall_ro',
  'script',
]);

/** Commands whose arguments name a subcommand; the table has rows named `container|sub`. */
export const containerCommands: ReadonlySet<string> = new Set(['xgroup', 'function']);

const byName = new Map<string, CommandSpec>();
for (const spec of commandSpecs) {
  if (byName.has(spec.name)) throw new Error(`duplicate command spec ${spec.name}`);
  byName.set(spec.name, spec);
  // Clients mostly send one casing or the other and rewritten commands come upper-case: index both so the usual
  // lookup is a single Map hit without lower-casing.
  byName.set(spec.name.toUpperCase(), spec);
}

/** Looks up a (lower- or upper-case) name, `container|sub` for subcommands. */
export function findSpec(name: string): CommandSpec | undefined {
  return byName.get(name) ?? byName.get(name.toLowerCase());
}
