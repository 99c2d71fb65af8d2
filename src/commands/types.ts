import type { CommandEvent, CommandOp, EventOf, EventSource } from '../events/ChangeEvent.js';
import type { Args } from './args.js';

export type { RedisType } from '../events/ChangeEvent.js';

/** Where the command sits in the replication stream; supplied by the pipeline for every command. */
export interface CommandContext {
  db: number;
  replid: string;
  offset: number;
  txn?: string;
  /** Receive time in ms since the epoch; the replication stream carries no timestamps. */
  ts: number;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** What a spec passes to `emit` for an op: the event without its envelope, key and type. */
export type PayloadOf<O extends CommandOp> = DistributiveOmit<
  EventOf<O>,
  'v' | 'op' | 'db' | 'key' | 'type' | 'source' | 'ts'
>;
type KeyArg<E> = E extends { key: Buffer } ? Buffer : undefined;
type TypeArg<E> = E extends { type: infer T } ? T : undefined;
/** The payload argument is optional only for ops without payload fields (`del`, `hll-cache`). */
type PayloadArg<O extends CommandOp> =
  object extends PayloadOf<O> ? [payload?: PayloadOf<O>] : [payload: PayloadOf<O>];

/** Collects the events of one command, numbering them with `seq` in emission order. */
export class Emitter {
  constructor(
    readonly ctx: CommandContext,
    readonly out: CommandEvent[],
  ) {}

  get ts(): number {
    return this.ctx.ts;
  }

  /**
   * Appends one event. Field order is fixed here (envelope, key, type, payload in the order given, source, ts): it is
   * the NDJSON output's order, so payloads must be built in the order docs/events.md lists their fields.
   */
  emit<O extends CommandOp>(
    op: O,
    key: KeyArg<EventOf<O>>,
    type: TypeArg<EventOf<O>>,
    ...[payload]: PayloadArg<O>
  ): void {
    const ctx = this.ctx;
    const source = this.source();
    const ev: Record<string, unknown> = { v: 1, op, db: ctx.db };
    if (key !== undefined) ev.key = key;
    if (type !== undefined) ev.type = type;
    if (payload !== undefined) {
      const p = payload as Record<string, unknown>;
      for (const k in p) {
        const v = p[k];
        if (v !== undefined) ev[k] = v;
      }
    }
    ev.source = source;
    ev.ts = ctx.ts;
    this.out.push(ev as unknown as CommandEvent);
  }

  /** The `source` of the next event: what `emit` gives it, for `put`. */
  source(): EventSource {
    const ctx = this.ctx;
    return ctx.txn === undefined
      ? { replid: ctx.replid, offset: ctx.offset, seq: this.out.length, snapshot: false }
      : { replid: ctx.replid, offset: ctx.offset, seq: this.out.length, txn: ctx.txn, snapshot: false };
  }

  /**
   * Appends an event a spec built as one object literal, in `emit`'s field order (envelope, key, type, payload,
   * `source: e.source()`, `ts: e.ts`), with no undefined member. For the ops of the stream's hot path: `emit` builds
   * every event member by member in one shared function, whose stores see every op's shape (megamorphic) and walk
   * the payload with for-in: 10-15 % of normalizing the stream's mix (bench/NOTES.md, streamfile).
   */
  put(ev: CommandEvent): void {
    this.out.push(ev);
  }
}

/**
 * One row of the command table. `keys` mirrors the legacy (first, last, step) triple of `COMMAND INFO` so the
 * coverage test can check the table against a real server; movable-key commands report (0, 0, 0) there too.
 */
export interface CommandSpec {
  /** Lower-case name; subcommands as `container|sub` like COMMAND INFO reports them. */
  name: string;
  /** Every op this command can be normalized to (documentation and tests). */
  ops: readonly CommandOp[];
  keys: readonly [first: number, last: number, step: number];
  /** What a current master sends instead of this command, when it rewrites it (documentation and tests). */
  propagatesAs?: string;
  /** Turns the arguments (cursor positioned after the name, or after the subcommand) into events. */
  parse(a: Args, e: Emitter): void;
}
