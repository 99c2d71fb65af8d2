import type { ChangeEvent } from '../../../src/events/ChangeEvent.js';
import { parseInt64 } from './strings.js';
import {
  type ApplyContext,
  type Bytes,
  b,
  Divergence,
  dropIfEmpty,
  type OpHandler,
  type OpHandlers,
  setValue,
  typed,
} from './types.js';

function hashOf(ctx: ApplyContext, ev: ChangeEvent) {
  const e = ctx.entry(ev.db, ev.key!);
  let v = typed(e, 'hash');
  if (!v) {
    v = { type: 'hash', v: new Map<Bytes, Bytes>(), ttl: new Map<Bytes, number>() };
    setValue(e, v, undefined);
  }
  e.dirty = true;
  return { e, v };
}

/**
 * HSET/HMSET/HSETNX/HSETEX: `fieldExpireAt` null drops the written fields' TTLs (a plain HSET does, hashTypeSet
 * without HASH_SET_KEEP_TTL), a number sets it, absent (KEEPTTL) keeps it.
 *
 * One exception the stream cannot show: HINCRBYFLOAT keeps the field's TTL on the master but is propagated as
 * `HSET key field <result>`, which drops it (seen on Redis 8.0.2, whose own replicas then lose the TTL). A one-field
 * `hset` without TTL on a field that has one is therefore ambiguous, and the hash is fetched from the master.
 */
const hset: OpHandler<'hset'> = (ev, ctx) => {
  const { e, v } = hashOf(ctx, ev);
  const ttl = ev.fieldExpireAt as number | null | undefined;
  const fields = ev.fields as Array<[Buffer, Buffer]>;
  if (ttl === null && fields.length === 1 && v.ttl.has(b(fields[0]![0])))
    ctx.fetch(ev.db, ev.key!, 'hset of one field with a TTL (HINCRBYFLOAT keeps it, HSET drops it)');
  for (const [f, x] of fields) {
    const field = b(f);
    v.v.set(field, b(x));
    if (ttl === null) v.ttl.delete(field);
    else if (ttl !== undefined) v.ttl.set(field, ttl);
  }
  dropIfEmpty(e);
};

const hincrby: OpHandler<'hincrby'> = (ev, ctx) => {
  const { v } = hashOf(ctx, ev);
  const f = b(ev.field as Buffer);
  const curText = v.v.get(f);
  const cur = curText === undefined ? 0n : parseInt64(curText);
  if (cur === null) throw new Divergence('HINCRBY on a field that is not an integer');
  const next = cur + BigInt(ev.delta as number | string);
  if (next < -(2n ** 63n) || next > 2n ** 63n - 1n) throw new Divergence('HINCRBY overflow');
  v.v.set(f, next.toString());
};

const hdel: OpHandler<'hdel'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'hash');
  if (!v) return;
  for (const f of ev.fields as Buffer[]) {
    v.v.delete(b(f));
    v.ttl.delete(b(f));
  }
  dropIfEmpty(e);
};

/**
 * HPEXPIREAT with NX/XX/GT/LT evaluated per field (hexpireGenericCommand): a field without TTL counts as an infinite
 * one for GT/LT; missing fields are skipped. A time already past makes the master delete the fields and propagate
 * HDEL instead, so the mirror only stores times (see the key-level `expire`).
 */
const hexpire: OpHandler<'hexpire'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'hash');
  if (!v) return;
  const at = ev.expireAt as number;
  const cond = ev.condition as string | undefined;
  for (const fb of ev.fields as Buffer[]) {
    const f = b(fb);
    if (!v.v.has(f)) continue;
    const cur = v.ttl.get(f);
    if (cond === 'nx' && cur !== undefined) continue;
    if (cond === 'xx' && cur === undefined) continue;
    if (cond === 'gt' && (cur === undefined || !(at > cur))) continue;
    if (cond === 'lt' && cur !== undefined && !(at < cur)) continue;
    v.ttl.set(f, at);
  }
  dropIfEmpty(e);
};

const hpersist: OpHandler<'hpersist'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'hash');
  if (!v) return;
  for (const f of ev.fields as Buffer[]) v.ttl.delete(b(f));
  e.dirty = true;
};

export const hashOps: OpHandlers = {
  hset,
  hincrby,
  hincrbyfloat: (ev, ctx) =>
    ctx.fetch(ev.db, ev.key!, 'hincrbyfloat (a verbatim one: 7.0+ masters send HSET with the result)'),
  hdel,
  hexpire,
  hpersist,
};
