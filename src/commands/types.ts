import type { ChangeEvent } from '../events/ChangeEvent.js';
import type { Args } from './args.js';

/** Where the command sits in the replication stream; supplied by the pipeline for every command. */
export interface CommandContext {
  db: number;
  replid: string;
  offset: number;
  txn?: string;
  /** Receive time in ms since the epoch; the replication stream carries no timestamps. */
  ts: number;
}

/** Redis value types as they appear in the `type` field (HyperLogLogs are strings, as `TYPE` reports). */
export type RedisType = 'string' | 'list' | 'set' | 'zset' | 'hash' | 'stream';

/** Collects the events of one command, numbering them with `seq` in emission order. */
export class Emitter {
  constructor(
    readonly ctx: CommandContext,
    readonly out: ChangeEvent[],
  ) {}

  get ts(): number {
    return this.ctx.ts;
  }

  emit(
    op: string,
    key: Buffer | undefined,
    type: RedisType | undefined,
    payload?: Record<string, unknown>,
  ): void {
    const ctx = this.ctx;
    const source =
      ctx.txn === undefined
        ? { replid: ctx.replid, offset: ctx.offset, seq: this.out.length, snapshot: false }
        : { replid: ctx.replid, offset: ctx.offset, seq: this.out.length, txn: ctx.txn, snapshot: false };
    const ev = { v: 1, op, db: ctx.db } as ChangeEvent;
    if (key !== undefined) ev.key = key;
    if (type !== undefined) ev.type = type;
    if (payload !== undefined) {
      for (const k in payload) {
        const v = payload[k];
        if (v !== undefined) ev[k] = v;
      }
    }
    ev.source = source;
    ev.ts = ctx.ts;
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
  ops: readonly string[];
  keys: readonly [first: number, last: number, step: number];
  /** What a current master sends instead of this command, when it rewrites it (documentation and tests). */
  propagatesAs?: string;
  /** Turns the arguments (cursor positioned after the name, or after the subcommand) into events. */
  parse(a: Args, e: Emitter): void;
}
