import type { CommandOp } from '../../events/ChangeEvent.js';
import type { Args } from '../args.js';
import type { CommandSpec, Emitter } from '../types.js';

/** Shorthand for a table row: name, (first, last, step) key positions as COMMAND INFO reports them, ops, parser. */
export function cmd(
  name: string,
  keys: readonly [number, number, number],
  ops: readonly CommandOp[],
  parse: (a: Args, e: Emitter) => void,
  propagatesAs?: string,
): CommandSpec {
  return propagatesAs === undefined ? { name, keys, ops, parse } : { name, keys, ops, parse, propagatesAs };
}
