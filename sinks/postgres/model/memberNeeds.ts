import type { ChangeEvent } from '../../../src/events/ChangeEvent.js';
import { type Bytes, b } from './types.js';

/**
 * What of a row-stored big collection an event needs loaded before the model applies it (docs/postgres.md, "Big
 * collections"): the members it names, the elements it pops at either end of a list, nothing (DEL, EXPIRE, a
 * snapshot part 0 that replaces the value, a fetch), or the whole collection. Only ops whose handler touches nothing
 * but the named members (see model/partial.ts) are listed; every other op on a big collection loads it whole, which is
 * correct for any op the model knows, at O(size) for that batch.
 */
export interface MemberNeed {
  whole: boolean;
  members: Set<Bytes>;
  /** List elements to load from the head and from the tail. */
  left: number;
  right: number;
}

export function emptyNeed(): MemberNeed {
  return { whole: false, members: new Set(), left: 0, right: 0 };
}

/** Ops that change only the key's row, or whose handler asks the master (a fetch replaces the whole value). */
const NO_MEMBERS = new Set(['del', 'expire', 'persist', 'hincrbyfloat', 'command']);

/** Adds what `ev` needs of key (db, key) to `need`. */
export function addNeed(need: MemberNeed, ev: ChangeEvent, db: number, key: Buffer): void {
  if (need.whole) return;
  const isKey = ev.db === db && ev.key !== undefined && ev.key.equals(key);
  const add = (xs: Buffer[]) => {
    for (const x of xs) need.members.add(b(x));
  };
  switch (ev.op) {
    case 'hset':
      add((ev.fields as Array<[Buffer, Buffer]>).map((f) => f[0]));
      return;
    case 'hincrby':
      add([ev.field as Buffer]);
      return;
    case 'hdel':
    case 'hexpire':
    case 'hpersist':
      add(ev.fields as Buffer[]);
      return;
    case 'sadd':
    case 'srem':
    case 'zrem':
      add(ev.members as Buffer[]);
      return;
    case 'zadd':
      add((ev.members as Array<[Buffer, unknown]>).map((m) => m[0]));
      return;
    case 'smove':
      add([ev.member as Buffer]);
      return;
    case 'push':
      return;
    case 'pop':
      if (ev.side === 'left') need.left += ev.count as number;
      else need.right += ev.count as number;
      return;
    case 'lmove':
      // The destination only receives a push; the source gives one element from its `from` end.
      if (isKey) {
        if (ev.from === 'left') need.left++;
        else need.right++;
      }
      return;
    case 'snapshot':
      // Part 0 (or a whole key) replaces the value; later parts add to it.
      if (ev.part === undefined || ev.part === 0) return;
      need.whole = true;
      return;
    default:
      if (!NO_MEMBERS.has(ev.op)) need.whole = true;
  }
}
