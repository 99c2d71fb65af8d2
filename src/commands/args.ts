/**
 * Argument readers for replicated commands. Arguments arrive as raw `Buffer`s; these parse them the way Redis's
 * own `string2ll`/`strtold` based helpers do, without building intermediate strings where a byte loop is enough.
 * Every reader throws `ArgError` on malformed input so the normalizer can fall back to an unknown `command` event
 * instead of emitting a wrong one.
 */

export class ArgError extends Error {
  override readonly name = 'ArgError';
}

/** Lower-cased ASCII text of an argument (command names, option tokens). */
export function lower(buf: Buffer): string {
  const s = buf.toString('latin1');
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) return s.toLowerCase();
  }
  return s;
}

/** Case-insensitive comparison of an argument with a lower-case ASCII token, without allocating. */
export function isToken(buf: Buffer | undefined, token: string): boolean {
  if (buf === undefined || buf.length !== token.length) return false;
  for (let i = 0; i < buf.length; i++) {
    let c = buf[i]!;
    if (c >= 65 && c <= 90) c += 32;
    if (c !== token.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * A signed 64-bit integer as Redis's `string2ll` accepts it (no spaces, no '+', no leading zeros). Returned as a
 * number when it is exactly representable, otherwise as its decimal string so no precision is lost.
 */
export function int64(buf: Buffer | undefined, what = 'integer'): number | string {
  if (buf === undefined) throw new ArgError(`missing ${what}`);
  const len = buf.length;
  if (len === 0 || len > 20) throw new ArgError(`invalid ${what}`);
  let i = 0;
  let neg = false;
  if (buf[0] === 45) {
    neg = true;
    i = 1;
    if (len === 1) throw new ArgError(`invalid ${what}`);
  }
  let n = 0;
  for (let j = i; j < len; j++) {
    const d = buf[j]! - 48;
    if (d < 0 || d > 9) throw new ArgError(`invalid ${what}`);
    n = n * 10 + d;
  }
  if (Number.isSafeInteger(n)) return neg ? -n : n;
  const big = BigInt(buf.toString('latin1'));
  if (big > 9223372036854775807n || big < -9223372036854775808n) throw new ArgError(`${what} out of range`);
  return big.toString();
}

/** An integer that must fit a JS number (counts, offsets, indexes, timestamps). */
export function int(buf: Buffer | undefined, what = 'integer'): number {
  const n = int64(buf, what);
  if (typeof n !== 'number') throw new ArgError(`${what} out of range`);
  return n;
}

/** A double as Redis accepts it; infinities are kept (ZADD accepts "+inf"/"-inf"), NaN is rejected as Redis does. */
export function float(buf: Buffer | undefined, what = 'number'): number {
  if (buf === undefined || buf.length === 0) throw new ArgError(`missing ${what}`);
  const s = buf.toString('latin1');
  const l = s.toLowerCase();
  if (l === 'inf' || l === '+inf' || l === 'infinity' || l === '+infinity') return Number.POSITIVE_INFINITY;
  if (l === '-inf' || l === '-infinity') return Number.NEGATIVE_INFINITY;
  const n = Number(s);
  if (Number.isNaN(n) || s.trim() !== s) throw new ArgError(`invalid ${what}`);
  return n;
}

/** JSON has no infinities: scores are numbers, or the strings "inf"/"-inf"/"nan" (same as snapshot events). */
export function score(n: number): number | string {
  if (Number.isFinite(n)) return n;
  if (Number.isNaN(n)) return 'nan';
  return n > 0 ? 'inf' : '-inf';
}

/** Cursor over the arguments of one command. */
export class Args {
  i: number;
  constructor(
    readonly argv: Buffer[],
    start = 1,
  ) {
    this.i = start;
  }

  get left(): number {
    return this.argv.length - this.i;
  }

  get done(): boolean {
    return this.i >= this.argv.length;
  }

  peek(): Buffer | undefined {
    return this.argv[this.i];
  }

  next(what = 'argument'): Buffer {
    const b = this.argv[this.i];
    if (b === undefined) throw new ArgError(`missing ${what}`);
    this.i++;
    return b;
  }

  int(what?: string): number {
    return int(this.next(what), what);
  }

  int64(what?: string): number | string {
    return int64(this.next(what), what);
  }

  float(what?: string): number {
    return float(this.next(what), what);
  }

  token(): string {
    return lower(this.next('option'));
  }

  /** Consumes the next argument when it equals `token` (case-insensitive). */
  eat(token: string): boolean {
    if (isToken(this.argv[this.i], token)) {
      this.i++;
      return true;
    }
    return false;
  }

  rest(): Buffer[] {
    const out = this.argv.slice(this.i);
    this.i = this.argv.length;
    return out;
  }

  end(): void {
    if (this.i < this.argv.length) throw new ArgError(`unexpected argument ${lower(this.argv[this.i]!)}`);
  }
}

/** The `numkeys key [key ...]` block of ZUNIONSTORE/LMPOP/... */
export function numbered(a: Args, what: string): Buffer[] {
  const n = a.int(`number of ${what}`);
  if (n < 0 || n > a.left) throw new ArgError(`invalid number of ${what}`);
  const out = a.argv.slice(a.i, a.i + n);
  a.i += n;
  return out;
}

/** `field value [field value ...]` as byte pairs (pairs, not an object, so non-UTF-8 names survive). */
export function pairs(a: Args, count?: number): [Buffer, Buffer][] {
  const n = count ?? a.left / 2;
  if (!Number.isInteger(n) || n < 0 || n * 2 > a.left)
    throw new ArgError('odd number of field/value arguments');
  const out: [Buffer, Buffer][] = new Array(n);
  for (let k = 0; k < n; k++) {
    out[k] = [a.argv[a.i]!, a.argv[a.i + 1]!];
    a.i += 2;
  }
  return out;
}
