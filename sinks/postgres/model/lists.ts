import { b, Divergence, dropIfEmpty, type OpHandler, type OpHandlers, setValue, typed } from './types.js';

/** LPUSH inserts its elements one by one at the head, so they end up in reverse order (pushGenericCommand). */
const push: OpHandler<'push'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'list');
  const els = (ev.elements as Buffer[]).map(b);
  const list = v ? v.v : [];
  if (ev.side === 'left') for (const x of els) list.unshift(x);
  else for (const x of els) list.push(x);
  if (v) e.dirty = true;
  else setValue(e, { type: 'list', v: list }, undefined);
};

const pop: OpHandler<'pop'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'list');
  if (!v) return;
  const n = Math.min(ev.count as number, v.v.length);
  if (ev.side === 'left') v.v.splice(0, n);
  else v.v.splice(v.v.length - n, n);
  dropIfEmpty(e);
};

/** LMOVE pops from the source then pushes onto the destination; source == destination rotates (lmoveGenericCommand). */
const lmove: OpHandler<'lmove'> = (ev, ctx) => {
  const src = ctx.entry(ev.db, ev.key!);
  const destKey = ev.destKey as Buffer;
  if (ctx.isPending(ev.db, ev.key!)) {
    ctx.fetch(ev.db, destKey, 'lmove from a key whose value is being fetched');
    return;
  }
  const sv = typed(src, 'list');
  if (!sv || sv.v.length === 0) return;
  const dest = ctx.entry(ev.db, destKey);
  const dv = typed(dest, 'list');
  const x = ev.from === 'left' ? sv.v.shift()! : sv.v.pop()!;
  const target = dest === src ? sv.v : (dv?.v ?? []);
  if (ev.to === 'left') target.unshift(x);
  else target.push(x);
  if (dest !== src) {
    if (dv) dest.dirty = true;
    else setValue(dest, { type: 'list', v: target }, undefined);
  }
  dropIfEmpty(src);
};

const linsert: OpHandler<'linsert'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'list');
  if (!v) return;
  const i = v.v.indexOf(b(ev.pivot as Buffer));
  if (i < 0) return;
  v.v.splice(ev.position === 'before' ? i : i + 1, 0, b(ev.element as Buffer));
  e.dirty = true;
};

const lset: OpHandler<'lset'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'list');
  if (!v) throw new Divergence('LSET on a missing key');
  let i = ev.index as number;
  if (i < 0) i += v.v.length;
  if (i < 0 || i >= v.v.length) throw new Divergence('LSET index out of range');
  v.v[i] = b(ev.element as Buffer);
  e.dirty = true;
};

/** LREM: count > 0 from the head, < 0 from the tail, 0 removes all (lremCommand). */
const lrem: OpHandler<'lrem'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'list');
  if (!v) return;
  const x = b(ev.element as Buffer);
  let count = ev.count as number;
  const list = v.v;
  if (count >= 0) {
    const limit = count === 0 ? Number.POSITIVE_INFINITY : count;
    let removed = 0;
    v.v = list.filter((y) => {
      if (y === x && removed < limit) {
        removed++;
        return false;
      }
      return true;
    });
  } else {
    count = -count;
    for (let i = list.length - 1; i >= 0 && count > 0; i--)
      if (list[i] === x) {
        list.splice(i, 1);
        count--;
      }
  }
  dropIfEmpty(e);
};

/** LTRIM's index normalization (ltrimCommand): out-of-range start or start > end empties (deletes) the list. */
const ltrim: OpHandler<'ltrim'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'list');
  if (!v) return;
  const len = v.v.length;
  let start = ev.start as number;
  let end = ev.stop as number;
  if (start < 0) start += len;
  if (end < 0) end += len;
  if (start < 0) start = 0;
  if (start > end || start >= len) v.v = [];
  else {
    if (end >= len) end = len - 1;
    v.v = v.v.slice(start, end + 1);
  }
  dropIfEmpty(e);
};

export const listOps: OpHandlers = { push, pop, lmove, linsert, lset, lrem, ltrim };
