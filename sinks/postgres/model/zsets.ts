import type { StoreEvent } from '../../../src/events/ChangeEvent.js';
import { isPlaceholder } from './blobRef.js';
import { scoreFromJson, sortedZset } from './encoding.js';
import {
  type ApplyContext,
  type Bytes,
  b,
  Divergence,
  dropIfEmpty,
  NeedsFetch,
  type OpHandler,
  type OpHandlers,
  setValue,
  typed,
} from './types.js';

/**
 * ZADD with NX/XX/GT/LT/INCR (zaddGenericCommand → zsetAdd): NX skips existing members, XX skips new ones, GT/LT
 * update an existing member only when the new score is greater/less (new members are still added), INCR adds to the
 * current score (0 for a new member). CH changes only the reply.
 */
const zadd: OpHandler<'zadd'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'zset');
  const flags = new Set(ev.flags as string[]);
  const z = v ? v.v : new Map<Bytes, number>();
  for (const [mb, s] of ev.members as Array<[Buffer, number | string]>) {
    const m = b(mb);
    let score = scoreFromJson(s);
    const cur = z.get(m);
    if (cur === undefined) {
      if (flags.has('xx')) continue;
    } else {
      if (flags.has('nx')) continue;
      if (flags.has('incr')) score += cur;
      if (Number.isNaN(score)) throw new Divergence('ZADD INCR produced NaN');
      if (flags.has('gt') && !(score > cur)) continue;
      if (flags.has('lt') && !(score < cur)) continue;
    }
    z.set(m, score);
  }
  if (v) e.dirty = true;
  else if (z.size > 0) setValue(e, { type: 'zset', v: z }, undefined);
};

const zrem: OpHandler<'zrem'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'zset');
  if (!v) return;
  for (const m of ev.members as Buffer[]) v.v.delete(b(m));
  dropIfEmpty(e);
};

/** zslParseRange: `(x` is exclusive, `-inf`/`+inf` are accepted by strtod. */
function scoreBound(x: Buffer): { v: number; ex: boolean } {
  let s = x.toString('latin1');
  let ex = false;
  if (s.startsWith('(')) {
    ex = true;
    s = s.slice(1);
  }
  const l = s.toLowerCase();
  const v =
    l === 'inf' || l === '+inf'
      ? Number.POSITIVE_INFINITY
      : l === '-inf'
        ? Number.NEGATIVE_INFINITY
        : Number(s);
  if (Number.isNaN(v)) throw new Divergence(`bad score bound ${s}`);
  return { v, ex };
}

/** zslParseLexRange: `-`/`+` are the extremes, `[x` inclusive, `(x` exclusive. */
function lexBound(x: Buffer): { v: Bytes | null; ex: boolean; inf: -1 | 0 | 1 } {
  const s = x.toString('latin1');
  if (s === '-') return { v: null, ex: false, inf: -1 };
  if (s === '+') return { v: null, ex: false, inf: 1 };
  if (s[0] === '(') return { v: s.slice(1), ex: true, inf: 0 };
  if (s[0] === '[') return { v: s.slice(1), ex: false, inf: 0 };
  throw new Divergence(`bad lex bound ${s}`);
}

function inLex(m: Bytes, min: ReturnType<typeof lexBound>, max: ReturnType<typeof lexBound>): boolean {
  const geMin = min.inf === -1 ? true : min.inf === 1 ? false : min.ex ? m > min.v! : m >= min.v!;
  const leMax = max.inf === 1 ? true : max.inf === -1 ? false : max.ex ? m < max.v! : m <= max.v!;
  return geMin && leMax;
}

/**
 * Whether Redis's order of the members is unknown to the mirror: a huge member (a placeholder, model/blobRef.ts) ties
 * on score with another member, and Redis orders ties by bytes the mirror does not hold. Rank and pop ops then fetch.
 */
function tieWithHuge(z: Map<Bytes, number>): boolean {
  const scores = new Map<number, number>();
  let huge = false;
  for (const [m, s] of z) {
    scores.set(s, (scores.get(s) ?? 0) + 1);
    if (isPlaceholder(m)) huge = true;
  }
  if (!huge) return false;
  for (const [m, s] of z) if (isPlaceholder(m) && scores.get(s)! > 1) return true;
  return false;
}

/** ZREMRANGEBYSCORE/BYLEX/BYRANK; the rank form normalizes indexes like LTRIM (zremrangeGenericCommand). */
const zremrange: OpHandler<'zremrange'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'zset');
  if (!v) return;
  if (ev.by === 'lex' ? [...v.v.keys()].some(isPlaceholder) : ev.by === 'rank' && tieWithHuge(v.v))
    throw new NeedsFetch('a lex or rank range over huge members');
  if (ev.by === 'rank') {
    const sorted = sortedZset(v.v);
    const len = sorted.length;
    let start = ev.start as number;
    let end = ev.stop as number;
    if (start < 0) start += len;
    if (end < 0) end += len;
    if (start < 0) start = 0;
    if (start > end || start >= len) return;
    if (end >= len) end = len - 1;
    for (let i = start; i <= end; i++) v.v.delete(sorted[i]![0]);
  } else if (ev.by === 'score') {
    const min = scoreBound(ev.min as Buffer);
    const max = scoreBound(ev.max as Buffer);
    for (const [m, s] of [...v.v])
      if ((min.ex ? s > min.v : s >= min.v) && (max.ex ? s < max.v : s <= max.v)) v.v.delete(m);
  } else {
    const min = lexBound(ev.min as Buffer);
    const max = lexBound(ev.max as Buffer);
    for (const m of [...v.v.keys()]) if (inLex(m, min, max)) v.v.delete(m);
  }
  dropIfEmpty(e);
};

const zpop: OpHandler<'zpop'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'zset');
  if (!v) return;
  if (tieWithHuge(v.v)) throw new NeedsFetch('a pop among huge members of equal score');
  const sorted = sortedZset(v.v);
  const n = Math.min(ev.count as number, sorted.length);
  const take = ev.side === 'min' ? sorted.slice(0, n) : sorted.slice(sorted.length - n);
  for (const [m] of take) v.v.delete(m);
  dropIfEmpty(e);
};

/** A source of ZUNIONSTORE & co.: sets count as zsets whose scores are all 1 (zuiInitIterator); missing is empty. */
function zsource(ctx: ApplyContext, db: number, key: Buffer): Map<Bytes, number> {
  const v = ctx.entry(db, key).value;
  if (v === null) return new Map();
  if (v.type === 'zset') return v.v;
  if (v.type === 'set') return new Map([...v.v].map((m) => [m, 1]));
  throw new Divergence(`ZUNIONSTORE source holds a ${v.type}`);
}

/**
 * ZUNIONSTORE/ZINTERSTORE/ZDIFFSTORE (zunionInterDiffGenericCommand): weights multiply, AGGREGATE SUM|MIN|MAX
 * combines, and a NaN from inf + -inf or inf * 0 becomes 0 as Redis does; the destination is replaced without TTL
 * or deleted when empty.
 */
export function zsetStore(ev: StoreEvent, ctx: ApplyContext): void {
  const args = (ev.args as Buffer[]).map((x) => x.toString('latin1'));
  const n = Number(args[1]);
  const sources = (ev.args as Buffer[]).slice(2, 2 + n);
  const weights = sources.map(() => 1);
  let aggregate = 'sum';
  for (let i = 2 + n; i < args.length; i++) {
    const t = args[i]!.toLowerCase();
    if (t === 'weights') for (let k = 0; k < n; k++) weights[k] = scoreFromJson(args[++i]!.toLowerCase());
    else if (t === 'aggregate') aggregate = args[++i]!.toLowerCase();
  }
  const maps = sources.map((s) => zsource(ctx, ev.db, s));
  const out = new Map<Bytes, number>();
  const weighted = (s: number, w: number): number => {
    const r = s * w;
    return Number.isNaN(r) ? 0 : r;
  };
  const combine = (a: number, x: number): number => {
    // Not Math.min/max: Redis keeps the current value on ties (`if (val < *target)`), which matters for 0 vs -0.
    // biome-ignore lint/complexity/useMathMinMax: tie semantics above
    if (aggregate === 'min') return x < a ? x : a;
    // biome-ignore lint/complexity/useMathMinMax: tie semantics above
    if (aggregate === 'max') return x > a ? x : a;
    const r = a + x;
    return Number.isNaN(r) ? 0 : r;
  };
  if (ev.command === 'zdiffstore') {
    for (const [m, s] of maps[0] ?? []) if (!maps.slice(1).some((z) => z.has(m))) out.set(m, s);
  } else if (ev.command === 'zinterstore') {
    const [first, ...rest] = maps;
    for (const [m, s] of first ?? []) {
      if (!rest.every((z) => z.has(m))) continue;
      let acc = weighted(s, weights[0]!);
      for (let k = 1; k < maps.length; k++) acc = combine(acc, weighted(maps[k]!.get(m)!, weights[k]!));
      out.set(m, acc);
    }
  } else {
    maps.forEach((z, k) => {
      for (const [m, s] of z) {
        const w = weighted(s, weights[k]!);
        const cur = out.get(m);
        out.set(m, cur === undefined ? w : combine(cur, w));
      }
    });
  }
  setValue(ctx.entry(ev.db, ev.key!), out.size > 0 ? { type: 'zset', v: out } : null, null);
}

export const zsetOps: OpHandlers = {
  zadd,
  zrem,
  zremrange,
  zpop,
  geoadd: (ev, ctx) => ctx.fetch(ev.db, ev.key!, 'geoadd: geohash scores'),
};
