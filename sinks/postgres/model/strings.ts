import type { ChangeEvent } from '../../../src/events/ChangeEvent.js';
import {
  type ApplyContext,
  bytesOf,
  Divergence,
  type OpHandler,
  type OpHandlers,
  setValue,
  stringValue,
  typed,
} from './types.js';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** Redis's string2ll: optional '-', digits, no leading zeros or '+', within int64. */
export function parseInt64(s: string): bigint | null {
  if (!/^(0|-?[1-9][0-9]*)$/.test(s) || s.length > 20) return null;
  const n = BigInt(s);
  return n < INT64_MIN || n > INT64_MAX ? null : n;
}

/** SET and its rewritten forms replace value and type; `expireAt` undefined is KEEPTTL (setKey's KEEPTTL flag). */
const set: OpHandler<'set'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  setValue(e, stringValue(ev.value as Buffer), ev.expireAt as number | null | undefined);
};

const append: OpHandler<'append'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'string');
  const add = ev.value as Buffer;
  setValue(e, stringValue(v ? Buffer.concat([bytesOf(v), add]) : add), undefined);
};

/** SETRANGE zero-pads up to the offset; an empty value changes nothing and does not create the key (setrangeCommand). */
const setrange: OpHandler<'setrange'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'string');
  const value = ev.value as Buffer;
  const offset = ev.offset as number;
  if (value.length === 0) return;
  const cur = v ? bytesOf(v) : Buffer.alloc(0);
  const out = Buffer.alloc(Math.max(cur.length, offset + value.length));
  cur.copy(out);
  value.copy(out, offset);
  setValue(e, stringValue(out), undefined);
};

/** INCRBY family: int64 arithmetic on the decimal text; the TTL is kept (incrDecrCommand overwrites in place). */
const incrby: OpHandler<'incrby'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'string');
  const cur = v ? parseInt64(bytesOf(v).toString('latin1')) : 0n;
  if (cur === null) throw new Divergence('INCRBY on a value that is not an integer');
  const next = cur + BigInt(ev.delta as number | string);
  if (next < INT64_MIN || next > INT64_MAX) throw new Divergence('INCRBY overflow');
  setValue(e, { type: 'string', v: Buffer.from(next.toString(), 'latin1') }, undefined);
};

/** SETBIT grows the string with zero bytes; bit 0 of a byte is its most significant bit (setbitCommand). */
const setbit: OpHandler<'setbit'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'string');
  const offset = ev.offset as number;
  const byte = Math.floor(offset / 8);
  const cur = v ? bytesOf(v) : Buffer.alloc(0);
  const out =
    cur.length > byte ? Buffer.from(cur) : Buffer.concat([cur, Buffer.alloc(byte + 1 - cur.length)]);
  const mask = 1 << (7 - (offset & 7));
  out[byte] = ev.bit ? out[byte]! | mask : out[byte]! & ~mask;
  setValue(e, stringValue(out), undefined);
};

/**
 * BITOP AND/OR/XOR/NOT: missing sources are empty strings, shorter ones are zero-padded, an empty result deletes the
 * destination, and the destination loses its TTL (bitopCommand uses setKey). Other operations (8.2's DIFF, ANDOR,
 * ONE...) are fetched.
 */
const bitop: OpHandler<'bitop'> = (ev, ctx) => {
  const op = ev.operation as string;
  const dest = ctx.entry(ev.db, ev.key!);
  const sources = ev.sources as Buffer[];
  if (!['and', 'or', 'xor', 'not'].includes(op) || sources.some((s) => ctx.isPending(ev.db, s))) {
    ctx.fetch(ev.db, ev.key!, `bitop ${op}`);
    return;
  }
  const vals = sources.map((s) => {
    const v = typed(ctx.entry(ev.db, s), 'string');
    return v ? bytesOf(v) : Buffer.alloc(0);
  });
  const len = Math.max(0, ...vals.map((x) => x.length));
  if (len === 0) {
    setValue(dest, null, null);
    return;
  }
  const out = Buffer.alloc(len);
  if (op === 'not') {
    const src = vals[0]!;
    for (let i = 0; i < len; i++) out[i] = ~src[i]! & 0xff;
  } else {
    for (let i = 0; i < len; i++) {
      let acc = vals[0]![i] ?? 0;
      for (let k = 1; k < vals.length; k++) {
        const x = vals[k]![i] ?? 0;
        acc = op === 'and' ? acc & x : op === 'or' ? acc | x : acc ^ x;
      }
      out[i] = acc;
    }
  }
  setValue(dest, stringValue(out), null);
};

/** Results that depend on long-double formatting or HyperLogLog internals come from the master, exactly. */
const fetchIt =
  (why: string) =>
  (ev: ChangeEvent, ctx: ApplyContext): void =>
    ctx.fetch(ev.db, ev.key!, why);

export const stringOps: OpHandlers = {
  set,
  append,
  setrange,
  incrby,
  incrbyfloat: fetchIt('incrbyfloat (a verbatim one: 7.0+ masters send SET ... KEEPTTL)'),
  setbit,
  bitfield: fetchIt('bitfield'),
  bitop,
  pfadd: fetchIt('pfadd: HyperLogLog representation'),
  pfmerge: fetchIt('pfmerge: HyperLogLog representation'),
  'hll-cache': fetchIt('pfcount cache bytes'),
};
