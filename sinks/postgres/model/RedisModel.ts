import type { ChangeEvent } from '../../../src/events/ChangeEvent.js';
import { decodeDumpPayload } from '../../../src/rdb/dump.js';
import { valueFromRdb } from './encoding.js';
import { hashOps } from './hashes.js';
import { listOps } from './lists.js';
import { setOps, setStore } from './sets.js';
import { streamOps } from './streams.js';
import { stringOps } from './strings.js';
import { type ApplyContext, cloneValue, Divergence, type OpHandlers, setValue } from './types.js';
import { zsetOps, zsetStore } from './zsets.js';

/** Keys an event reads or writes, as [db, key]; all are loaded before the event is applied. */
export function keysOf(ev: ChangeEvent): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  if (ev.key) out.push([ev.db, ev.key]);
  switch (ev.op) {
    case 'rename':
    case 'smove':
    case 'lmove':
      out.push([ev.db, ev.destKey as Buffer]);
      break;
    case 'copy':
      out.push([ev.destDb as number, ev.destKey as Buffer]);
      break;
    case 'move':
      out.push([ev.destDb as number, ev.key!]);
      break;
    case 'store':
    case 'bitop':
      for (const s of ev.sources as Buffer[]) out.push([ev.db, s]);
      break;
  }
  return out;
}

const SET_STORES = new Set(['sinterstore', 'sunionstore', 'sdiffstore']);
const ZSET_STORES = new Set(['zunionstore', 'zinterstore', 'zdiffstore']);

/**
 * An expiry is stored, never acted upon: a master that sets an expiry already in the past deletes the key and
 * propagates DEL instead (expireGenericCommand, checkAlreadyExpired), and keys that expire later are deleted by
 * DELs the master propagates when it expires them. Judging "past" by redtail's clock would delete keys wrongly
 * whenever the stream is replayed or lags (the receive time is then later than the master's execution time).
 */
const keyOps: OpHandlers = {
  del: (ev, ctx) => setValue(ctx.entry(ev.db, ev.key!), null, null),
  expire: (ev, ctx) => {
    const e = ctx.entry(ev.db, ev.key!);
    if (e.value !== null) setValue(e, e.value, ev.expireAt as number);
  },
  persist: (ev, ctx) => {
    const e = ctx.entry(ev.db, ev.key!);
    if (e.value !== null) setValue(e, e.value, null);
  },
  /** RENAME carries the TTL to the new name and overwrites it (renameGenericCommand); same name: no change. */
  rename: (ev, ctx) => {
    const destKey = ev.destKey as Buffer;
    if (destKey.equals(ev.key!)) return;
    const src = ctx.entry(ev.db, ev.key!);
    const dest = ctx.entry(ev.db, destKey);
    if (ctx.isPending(ev.db, ev.key!))
      ctx.fetch(ev.db, destKey, 'rename of a key whose value is being fetched');
    else if (src.value === null) throw new Divergence('RENAME of a missing key');
    setValue(dest, src.value, src.expireAt);
    setValue(src, null, null);
  },
  /** COPY keeps the source's TTL; without REPLACE an existing destination stops it (copyCommand). */
  copy: (ev, ctx) => {
    const destDb = ev.destDb as number;
    const destKey = ev.destKey as Buffer;
    const src = ctx.entry(ev.db, ev.key!);
    const dest = ctx.entry(destDb, destKey);
    if (src === dest) return;
    if (ctx.isPending(ev.db, ev.key!)) {
      ctx.fetch(destDb, destKey, 'copy of a key whose value is being fetched');
      return;
    }
    if (src.value === null || (dest.value !== null && !ev.replace)) return;
    setValue(dest, cloneValue(src.value), src.expireAt);
  },
  /** MOVE does nothing when the key exists in the target db (moveCommand); the TTL travels with it. */
  move: (ev, ctx) => {
    const destDb = ev.destDb as number;
    const src = ctx.entry(ev.db, ev.key!);
    const dest = ctx.entry(destDb, ev.key!);
    if (src === dest) return;
    if (ctx.isPending(ev.db, ev.key!)) {
      ctx.fetch(destDb, ev.key!, 'move of a key whose value is being fetched');
      setValue(src, null, null);
      return;
    }
    if (src.value === null || dest.value !== null) return;
    setValue(dest, src.value, src.expireAt);
    setValue(src, null, null);
  },
  /** RESTORE decodes the DUMP payload it carries (a TTL already past makes the master propagate DEL instead). */
  restore: (ev, ctx) => {
    const e = ctx.entry(ev.db, ev.key!);
    const at = ev.expireAt as number | null | undefined;
    let decoded: ReturnType<typeof decodeDumpPayload>;
    try {
      decoded = decodeDumpPayload(ev.payload as Buffer);
    } catch {
      ctx.fetch(ev.db, ev.key!, 'restore of a payload the decoder does not read');
      return;
    }
    if (decoded.type === 'module') {
      ctx.fetch(ev.db, ev.key!, 'restore of a module value');
      return;
    }
    setValue(e, valueFromRdb(decoded.type, decoded.value, decoded.fieldExpireAt, ctx.keep), at ?? null);
  },
  /**
   * The *STORE family. Set and zset algebra is computed from the mirror; SORT (BY/GET patterns), GEO*STORE and
   * ZRANGESTORE results come from the master. A source whose value is being fetched makes the result unknown too.
   */
  store: (ev, ctx) => {
    const cmd = ev.command as string;
    const sources = ev.sources as Buffer[];
    if (sources.some((s) => ctx.isPending(ev.db, s)) || !(SET_STORES.has(cmd) || ZSET_STORES.has(cmd))) {
      ctx.fetch(ev.db, ev.key!, `${cmd}`);
      return;
    }
    if (SET_STORES.has(cmd)) setStore(ev, ctx);
    else zsetStore(ev, ctx);
  },
  /** A snapshot key; a streamed huge value arrives in parts, each appended to the previous ones. */
  snapshot: (ev, ctx) => {
    const e = ctx.entry(ev.db, ev.key!);
    const next = valueFromRdb(
      ev.type as string,
      ev.value,
      ev.fieldExpireAt as Array<[Buffer, number]> | undefined,
    );
    const part = ev.part as number | undefined;
    const cur = e.value;
    if (part && part > 0 && cur && cur.type === next.type) {
      if (cur.type === 'string' && next.type === 'string') cur.v = Buffer.concat([cur.v, next.v]);
      else if (cur.type === 'list' && next.type === 'list') cur.v.push(...next.v);
      else if (cur.type === 'set' && next.type === 'set') for (const m of next.v) cur.v.add(m);
      else if (cur.type === 'zset' && next.type === 'zset') for (const [m, s] of next.v) cur.v.set(m, s);
      else if (cur.type === 'hash' && next.type === 'hash') {
        for (const [f, x] of next.v) cur.v.set(f, x);
        for (const [f, t] of next.ttl) cur.ttl.set(f, t);
      } else if (cur.type === 'stream' && next.type === 'stream') {
        for (const [id, f] of next.v.entries) cur.v.entries.set(id, f);
        cur.v.lastId = next.v.lastId;
        cur.v.maxDeletedEntryId = next.v.maxDeletedEntryId;
        cur.v.entriesAdded = next.v.entriesAdded;
        if (next.v.groups.length > 0) cur.v.groups = next.v.groups;
      }
      e.dirty = true;
    } else setValue(e, next, (ev.expireAt as number | null) ?? null);
  },
};

/** Ops that change no key: pub/sub and the function library are not part of the dataset. */
const NO_KEY_OPS = new Set([
  'publish',
  'function-load',
  'function-delete',
  'function-flush',
  'function-restore',
]);

const handlers: OpHandlers = {
  ...stringOps,
  ...listOps,
  ...setOps,
  ...zsetOps,
  ...hashOps,
  ...streamOps,
  ...keyOps,
};

/** True when an op is applied by the model (the others are keyspace-wide, handled in SQL, or change no key). */
export function isModelOp(op: string): boolean {
  return (handlers as Record<string, unknown>)[op] !== undefined;
}

export function isNoKeyOp(op: string): boolean {
  return NO_KEY_OPS.has(op);
}

/**
 * Applies one event to the loaded keys with Redis's semantics. Throws `Divergence` when the mirror holds something
 * the master could not have applied the event to; the caller then fetches the exact value.
 */
export function applyEvent(ev: ChangeEvent, ctx: ApplyContext): void {
  // The table maps each op to the handler of that op's type, so the event always fits the handler it selects.
  const h = handlers[ev.op];
  if (!h) throw new Error(`no handler for op ${ev.op}`);
  (h as (ev: ChangeEvent, ctx: ApplyContext) => void)(ev, ctx);
}
