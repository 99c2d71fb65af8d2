import type { ChangeEvent } from '../events/ChangeEvent.js';
import { compileGlob } from './glob.js';

/** One set of events: an event is in it when it matches every dimension given (values within a list are ORed). */
export interface FilterRule {
  db?: number[];
  /** Redis-style globs (`*`, `?`, `[a-z]`, `\`), matched against the key bytes. */
  keys?: string[];
  /** Value types (`string`, `list`, `set`, `zset`, `hash`, `stream`, `module`). */
  types?: string[];
  ops?: string[];
}

/** The `filter` section of the config file; `include`/`exclude` may also be lists of rules (ORed). */
export interface EventFilterConfig {
  include?: FilterRule | FilterRule[];
  exclude?: FilterRule | FilterRule[];
}

/** Markers sinks need whatever the filter says; they are dropped only when `exclude.ops` names them. */
const CONTROL_OPS = new Set(['snapshot-begin', 'snapshot-end', 'resync']);

interface CompiledRule {
  db?: Set<number>;
  keys?: ((key: Buffer) => boolean)[];
  types?: Set<string>;
  ops?: Set<string>;
}

/**
 * A dimension an event does not have (no key for FLUSHALL, no type for DEL or RENAME) can neither select nor drop
 * it: include treats it as matching, exclude as not matching. Events touching two keys or databases (RENAME, COPY,
 * MOVE, SWAPDB, SMOVE, LMOVE) are included when either side matches and excluded only when both do, so a consumer
 * never loses the half of a move that concerns it. FLUSHALL touches every database.
 */
type Mode = 'include' | 'exclude';

function dbsOf(ev: ChangeEvent): number[] | null {
  switch (ev.op) {
    case 'flushall':
      return null;
    case 'swapdb':
      return [ev.db1 as number, ev.db2 as number];
    case 'move':
    case 'copy':
      return [ev.db, ev.destDb as number];
    default:
      return [ev.db];
  }
}

function keysOf(ev: ChangeEvent): Buffer[] | null {
  if (ev.key === undefined) return null;
  const dest = 'destKey' in ev ? ev.destKey : undefined;
  return Buffer.isBuffer(dest) ? [ev.key, dest] : [ev.key];
}

function some<T>(values: T[], test: (v: T) => boolean, mode: Mode): boolean {
  return mode === 'include' ? values.some(test) : values.every(test);
}

function ruleMatches(r: CompiledRule, ev: ChangeEvent, mode: Mode): boolean {
  const absent = mode === 'include';
  if (r.ops && !r.ops.has(ev.op)) return false;
  if (r.db) {
    const dbs = dbsOf(ev);
    const set = r.db;
    if (dbs === null ? !absent : !some(dbs, (d) => set.has(d), mode)) return false;
  }
  if (r.types) {
    const t = ev.type;
    if (typeof t === 'string' ? !r.types.has(t) : !absent) return false;
  }
  if (r.keys) {
    const keys = keysOf(ev);
    const globs = r.keys;
    if (keys === null ? !absent : !some(keys, (k) => globs.some((g) => g(k)), mode)) return false;
  }
  return true;
}

function compileRule(r: FilterRule): CompiledRule {
  const out: CompiledRule = {};
  if (r.db) out.db = new Set(r.db);
  if (r.keys) out.keys = r.keys.map(compileGlob);
  if (r.types) out.types = new Set(r.types);
  if (r.ops) out.ops = new Set(r.ops);
  return out;
}

function rules(r: FilterRule | FilterRule[] | undefined): CompiledRule[] | undefined {
  if (r === undefined) return undefined;
  return (Array.isArray(r) ? r : [r]).map(compileRule);
}

/** Applied after normalization by every sink: keeps an event when it is included (or no include is set) and not excluded. */
export class EventFilter {
  private readonly include: CompiledRule[] | undefined;
  private readonly exclude: CompiledRule[] | undefined;

  constructor(config: EventFilterConfig = {}) {
    this.include = rules(config.include);
    this.exclude = rules(config.exclude);
  }

  /** True when the filter lets everything through, so callers can skip it. */
  get isPassThrough(): boolean {
    return this.include === undefined && this.exclude === undefined;
  }

  accepts(ev: ChangeEvent): boolean {
    if (this.exclude?.some((r) => ruleMatches(r, ev, 'exclude'))) return false;
    if (this.include === undefined || CONTROL_OPS.has(ev.op)) return true;
    return this.include.some((r) => ruleMatches(r, ev, 'include'));
  }

  apply(events: ChangeEvent[]): ChangeEvent[] {
    if (this.isPassThrough) return events;
    return events.filter((e) => this.accepts(e));
  }
}

/** Validates the `filter` section of a config file, naming the offending path. */
export function parseEventFilterConfig(value: unknown, path = 'filter'): EventFilterConfig {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`${path} must be an object`);
  const out: EventFilterConfig = {};
  for (const [k, v] of Object.entries(value)) {
    if (k !== 'include' && k !== 'exclude')
      throw new Error(`${path}.${k} is not a filter setting (include, exclude)`);
    out[k] = Array.isArray(v)
      ? v.map((r, i) => parseRule(r, `${path}.${k}[${i}]`))
      : parseRule(v, `${path}.${k}`);
  }
  return out;
}

function parseRule(value: unknown, path: string): FilterRule {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new Error(`${path} must be an object`);
  const out: FilterRule = {};
  for (const [k, v] of Object.entries(value)) {
    if (!Array.isArray(v)) throw new Error(`${path}.${k} must be a list`);
    if (k === 'db') {
      if (!v.every((d) => Number.isInteger(d) && d >= 0))
        throw new Error(`${path}.db must list database numbers`);
      out.db = v;
    } else if (k === 'keys' || k === 'types' || k === 'ops') {
      if (!v.every((s) => typeof s === 'string')) throw new Error(`${path}.${k} must list strings`);
      out[k] = v;
    } else throw new Error(`${path}.${k} is not a filter dimension (db, keys, types, ops)`);
  }
  return out;
}
