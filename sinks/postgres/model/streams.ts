import type { EventOf } from '../../../src/events/ChangeEvent.js';
import { compareStreamIds, splitId } from './encoding.js';
import {
  type ApplyContext,
  type Bytes,
  b,
  Divergence,
  type OpHandler,
  type OpHandlers,
  setValue,
  typed,
} from './types.js';

interface Trim {
  strategy: string;
  exact: boolean;
  threshold: string;
}

/**
 * Exact trims only: 7.0+ masters rewrite `~` trims to `=` with the effective threshold
 * (streamRewriteApproxSpecifier/streamRewriteTrimArgument). An approximate one depends on listpack node
 * boundaries, so the caller fetches the value instead. Trimming never touches max-deleted-entry-id.
 */
function trim(entries: Map<string, Array<[Bytes, Bytes]>>, t: Trim): void {
  if (t.strategy === 'maxlen') {
    const max = Number(t.threshold);
    let extra = entries.size - max;
    for (const id of entries.keys()) {
      if (extra-- <= 0) break;
      entries.delete(id);
    }
  } else {
    for (const id of entries.keys()) {
      if (compareStreamIds(id, t.threshold) >= 0) break;
      entries.delete(id);
    }
  }
}

/** The id an `ms-*` XADD generates (streamAppendItem with seq_given = 0). */
function resolveId(id: string, lastId: string): string {
  if (!id.endsWith('-*')) return id.includes('-') ? id : `${id}-0`;
  const ms = BigInt(id.slice(0, -2));
  const [lm, ls] = splitId(lastId);
  return `${ms}-${ms === lm ? ls + 1n : 0n}`;
}

const xadd: OpHandler<'xadd'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  let v = typed(e, 'stream');
  const t = ev.trim as Trim | undefined;
  if (t && !t.exact) {
    ctx.fetch(ev.db, ev.key!, 'xadd with an approximate trim');
    return;
  }
  if (!v) {
    if (ev.nomkstream) return;
    v = {
      type: 'stream',
      v: { entries: new Map(), lastId: '0-0', maxDeletedEntryId: '0-0', entriesAdded: 0, groups: [] },
    };
    setValue(e, v, undefined);
  }
  const rawId = ev.id as string;
  if (rawId === '*') throw new Divergence('XADD * on the stream: the master always sends the generated id');
  const id = resolveId(rawId, v.v.lastId);
  if (compareStreamIds(id, v.v.lastId) <= 0) throw new Divergence(`XADD id ${id} is not above ${v.v.lastId}`);
  v.v.entries.set(
    id,
    (ev.fields as Array<[Buffer, Buffer]>).map(([f, x]) => [b(f), b(x)]),
  );
  v.v.lastId = id;
  v.v.entriesAdded++;
  if (t) trim(v.v.entries, t);
  e.dirty = true;
};

const xtrim: OpHandler<'xtrim'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'stream');
  if (!v) return;
  const t = ev.trim as Trim;
  if (!t.exact || ev.policy !== undefined) {
    ctx.fetch(ev.db, ev.key!, 'xtrim with an approximate trim or a reference policy');
    return;
  }
  trim(v.v.entries, t);
  e.dirty = true;
};

/** XDEL raises max-deleted-entry-id to the largest id it deleted (xdelCommand). */
const xdel: OpHandler<'xdel'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'stream');
  if (!v) return;
  if (ev.policy !== undefined && ev.policy !== 'keepref') {
    ctx.fetch(ev.db, ev.key!, 'xdelex with a reference policy');
    return;
  }
  for (const id of ev.ids as string[]) {
    if (!v.v.entries.delete(id)) continue;
    if (compareStreamIds(id, v.v.maxDeletedEntryId) > 0) v.v.maxDeletedEntryId = id;
  }
  e.dirty = true;
};

const xsetid: OpHandler<'xsetid'> = (ev, ctx) => {
  const e = ctx.entry(ev.db, ev.key!);
  const v = typed(e, 'stream');
  if (!v) return;
  v.v.lastId = ev.id as string;
  if (ev.entriesAdded !== undefined) v.v.entriesAdded = Number(ev.entriesAdded);
  if (ev.maxDeletedId !== undefined) v.v.maxDeletedEntryId = ev.maxDeletedId as string;
  e.dirty = true;
};

type GroupOp =
  | 'xack'
  | 'xackdel'
  | 'xgroup-create'
  | 'xgroup-setid'
  | 'xgroup-destroy'
  | 'xgroup-createconsumer'
  | 'xgroup-delconsumer'
  | 'xclaim'
  | 'xautoclaim';

/**
 * Consumer-group state (last-delivered id, entries-read estimates, pending lists, consumers with seen/active
 * times) follows rules that depend on server time and internal counters; it is always fetched from the master.
 */
const groupOp = (ev: EventOf<GroupOp>, ctx: ApplyContext): void =>
  ctx.fetch(ev.db, ev.key!, `${ev.op}: consumer group state`);

export const streamOps: OpHandlers = {
  xadd,
  xtrim,
  xdel,
  xsetid,
  xack: groupOp,
  xackdel: groupOp,
  'xgroup-create': groupOp,
  'xgroup-setid': groupOp,
  'xgroup-destroy': groupOp,
  'xgroup-createconsumer': groupOp,
  'xgroup-delconsumer': groupOp,
  xclaim: groupOp,
  xautoclaim: groupOp,
};
