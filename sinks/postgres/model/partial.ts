import type { Bytes } from './types.js';

/**
 * Partial values of row-stored big collections (docs/postgres.md, "Big collections"). A batch loads only the members
 * its events name; these classes stand in for the model's Map/Set/array so the ordinary op handlers (hashes.ts,
 * sets.ts, zsets.ts, lists.ts) run unchanged on them, while they record which members changed and keep the
 * collection's true size. Anything a handler could ask about a member that was not loaded, or any iteration over the
 * whole collection, throws `NotLoaded`: the applier decides per op beforehand (`memberNeeds`) whether the named
 * members suffice or the whole collection is loaded, so reaching this error is a bug, never a silent wrong answer.
 */
export class NotLoaded extends Error {
  override readonly name = 'NotLoaded';
}

/** Membership knowledge and changes shared by a hash's value map and its field-TTL map. */
export class MemberTracker {
  /** Members whose presence is known: loaded from rows, or looked up and found absent. */
  readonly known = new Set<Bytes>();
  /** Members written or deleted since the load. */
  readonly dirty = new Set<Bytes>();
  constructor(
    public size: number,
    /** Every member was loaded: any member's presence is known, and iterating is allowed. */
    readonly complete = false,
  ) {}

  check(m: Bytes): void {
    if (!this.complete && !this.known.has(m))
      throw new NotLoaded('internal: a member of a big collection was not loaded');
  }

  iterable(): void {
    if (!this.complete)
      throw new NotLoaded('internal: an op iterated over a big collection loaded only in part');
  }
}

function whole(): never {
  throw new NotLoaded('internal: an op cleared a big collection in place');
}

/** A Map over the loaded members; `counts` is false for a hash's TTL map (the size is the value map's). */
export class PartialMap<V> extends Map<Bytes, V> {
  constructor(
    readonly t: MemberTracker,
    private readonly counts = true,
  ) {
    super();
  }

  /** A member read from its row (not a change). */
  load(m: Bytes, v: V): void {
    super.set(m, v);
  }

  override get(m: Bytes): V | undefined {
    this.t.check(m);
    return super.get(m);
  }
  override has(m: Bytes): boolean {
    this.t.check(m);
    return super.has(m);
  }
  override set(m: Bytes, v: V): this {
    this.t.check(m);
    if (this.counts && !super.has(m)) this.t.size++;
    this.t.dirty.add(m);
    return super.set(m, v);
  }
  override delete(m: Bytes): boolean {
    this.t.check(m);
    if (!super.delete(m)) return false;
    if (this.counts) this.t.size--;
    this.t.dirty.add(m);
    return true;
  }
  override get size(): number {
    // A TTL map does not count its members (the value map's size is the hash's); complete, its own size is right.
    if (this.counts) return this.t.size;
    this.t.iterable();
    return super.size;
  }
  /** The loaded value of a member, without the check (the flush reads the changed members). */
  peek(m: Bytes): V | undefined {
    return super.get(m);
  }
  override clear(): void {
    whole();
  }
  override forEach(fn: (v: V, k: Bytes, map: Map<Bytes, V>) => void, thisArg?: unknown): void {
    this.t.iterable();
    super.forEach(fn, thisArg);
  }
  override entries(): MapIterator<[Bytes, V]> {
    this.t.iterable();
    return super.entries();
  }
  override keys(): MapIterator<Bytes> {
    this.t.iterable();
    return super.keys();
  }
  override values(): MapIterator<V> {
    this.t.iterable();
    return super.values();
  }
  override [Symbol.iterator](): MapIterator<[Bytes, V]> {
    this.t.iterable();
    return super[Symbol.iterator]();
  }
}

export class PartialSet extends Set<Bytes> {
  constructor(readonly t: MemberTracker) {
    super();
  }
  load(m: Bytes): void {
    super.add(m);
  }
  override has(m: Bytes): boolean {
    this.t.check(m);
    return super.has(m);
  }
  override add(m: Bytes): this {
    this.t.check(m);
    if (!super.has(m)) {
      this.t.size++;
      this.t.dirty.add(m);
    }
    return super.add(m);
  }
  override delete(m: Bytes): boolean {
    this.t.check(m);
    if (!super.delete(m)) return false;
    this.t.size--;
    this.t.dirty.add(m);
    return true;
  }
  /** Whether a member is there, without the check (the flush reads the changed members). */
  peek(m: Bytes): boolean {
    return super.has(m);
  }
  override get size(): number {
    return this.t.size;
  }
  override clear(): void {
    whole();
  }
  override forEach(fn: (v: Bytes, k: Bytes, set: Set<Bytes>) => void, thisArg?: unknown): void {
    this.t.iterable();
    super.forEach(fn, thisArg);
  }
  override entries(): SetIterator<[Bytes, Bytes]> {
    this.t.iterable();
    return super.entries();
  }
  override keys(): SetIterator<Bytes> {
    this.t.iterable();
    return super.keys();
  }
  override values(): SetIterator<Bytes> {
    this.t.iterable();
    return super.values();
  }
  override [Symbol.iterator](): SetIterator<Bytes> {
    this.t.iterable();
    return super[Symbol.iterator]();
  }
}

/**
 * A row-stored list with only its ends loaded. Elements sit at consecutive positions `head .. head + length - 1`
 * (list_items.pos): pushes and pops only ever move the ends, so no element is renumbered. `front` holds the loaded
 * elements from the head (reversed: its last item is the head), `back` those from the tail; `hidden` counts the
 * elements between them that were not loaded. The methods are the subset of Array's that lists.ts uses for
 * LPUSH/RPUSH/LPOP/RPOP/LMOVE; every other list op loads the whole list first.
 */
export class PartialList {
  private readonly front: Bytes[] = [];
  private readonly back: Bytes[] = [];
  /** Position → new element, or null for a removed position; written by the flush. */
  readonly changed = new Map<number, Bytes | null>();

  constructor(
    public head: number,
    private hidden: number,
    headItems: Bytes[],
    tailItems: Bytes[],
  ) {
    this.front.push(...headItems.slice().reverse());
    this.back.push(...tailItems);
  }

  get length(): number {
    return this.front.length + this.hidden + this.back.length;
  }

  unshift(...xs: Bytes[]): number {
    for (const x of xs) {
      this.head--;
      this.front.push(x);
      this.changed.set(this.head, x);
    }
    return this.length;
  }

  push(...xs: Bytes[]): number {
    for (const x of xs) {
      this.changed.set(this.head + this.length, x);
      this.back.push(x);
    }
    return this.length;
  }

  shift(): Bytes | undefined {
    if (this.length === 0) return undefined;
    let x = this.front.pop();
    if (x === undefined) {
      if (this.hidden > 0) throw new NotLoaded('internal: a pop reached the unloaded middle of a big list');
      x = this.back.shift() ?? '';
    }
    this.changed.set(this.head, null);
    this.head++;
    return x;
  }

  pop(): Bytes | undefined {
    if (this.length === 0) return undefined;
    const last = this.head + this.length - 1;
    let x = this.back.pop();
    if (x === undefined) {
      if (this.hidden > 0) throw new NotLoaded('internal: a pop reached the unloaded middle of a big list');
      x = this.front.shift() ?? '';
    }
    this.changed.set(last, null);
    return x;
  }

  /** Only removals at either end (LPOP/RPOP with a count): `splice(0, n)` or `splice(length - n, n)`. */
  splice(start: number, n: number): Bytes[] {
    const out: Bytes[] = [];
    if (start === 0) for (let i = 0; i < n && this.length > 0; i++) out.push(this.shift() ?? '');
    else if (start + n === this.length) {
      for (let i = 0; i < n && this.length > 0; i++) out.push(this.pop() ?? '');
      out.reverse();
    } else throw new NotLoaded('internal: a splice inside a big list');
    return out;
  }
}
