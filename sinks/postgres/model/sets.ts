import type { StoreEvent } from '../../../src/events/ChangeEvent.js';
import {
  type ApplyContext,
  type Bytes,
  b,
  dropIfEmpty,
  type OpHandler,
  type OpHandlers,
  setValue,
  typed,
} from './types.js';

const sadd: OpHandler<'sadd'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'set');
  const set = v ? v.v : new Set<Bytes>();
  for (const m of ev.members as Buffer[]) set.add(b(m));
  if (v) e.dirty = true;
  else setValue(e, { type: 'set', v: set }, undefined);
};

const srem: OpHandler<'srem'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'set');
  if (!v) return;
  for (const m of ev.members as Buffer[]) v.v.delete(b(m));
  dropIfEmpty(e);
};

/** SMOVE of a member the source lacks changes nothing; source == destination changes nothing (smoveCommand). */
const smove: OpHandler<'smove'> = (ev, ctx) => {
  const destKey = ev.destKey as Buffer;
  if (ctx.isPending(ev.db, ev.key!)) {
    ctx.fetch(ev.db, destKey, 'smove from a key whose value is being fetched');
    return;
  }
  const src = ctx.entry(ev.db, ev.key!);
  const sv = typed(src, 'set');
  const m = b(ev.member as Buffer);
  if (!sv?.v.has(m)) return;
  const dest = ctx.entry(ev.db, destKey);
  if (dest === src) return;
  const dv = typed(dest, 'set');
  sv.v.delete(m);
  if (dv) {
    dv.v.add(m);
    dest.dirty = true;
  } else setValue(dest, { type: 'set', v: new Set([m]) }, undefined);
  dropIfEmpty(src);
};

/** Members of a source of SINTERSTORE & co.: a missing key is an empty set. */
function members(ctx: ApplyContext, db: number, key: Buffer): Set<Bytes> {
  return typed(ctx.entry(db, key), 'set')?.v ?? new Set();
}

/**
 * SINTERSTORE/SUNIONSTORE/SDIFFSTORE (sinterGenericCommand, sunionDiffGenericCommand): the destination is replaced
 * without TTL, or deleted when the result is empty.
 */
export function setStore(ev: StoreEvent, ctx: ApplyContext): void {
  const sources = ev.sources as Buffer[];
  const sets = sources.map((s) => members(ctx, ev.db, s));
  let out: Set<Bytes>;
  if (ev.command === 'sinterstore') {
    const [first, ...rest] = [...sets].sort((x, y) => x.size - y.size);
    out = new Set([...(first ?? [])].filter((m) => rest.every((s) => s.has(m))));
  } else if (ev.command === 'sunionstore') {
    out = new Set();
    for (const s of sets) for (const m of s) out.add(m);
  } else {
    out = new Set(sets[0]);
    for (const s of sets.slice(1)) for (const m of s) out.delete(m);
  }
  const dest = ctx.entry(ev.db, ev.key!);
  setValue(dest, out.size > 0 ? { type: 'set', v: out } : null, null);
}

export const setOps: OpHandlers = { sadd, srem, smove };
