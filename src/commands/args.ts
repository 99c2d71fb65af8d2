/**
 * Argument readers for replicated commands. Arguments arrive as raw `Buffer`s; these parse them the way Redis's
 * own `string2ll`/`strtold` based helpers do, without building intermediate strings where a byte loop is enough.
 * Every reader throws `ArgError` on malformed input so the normalizer can fall back to an unknown `command` event
 * instead of emitting a wrong one.
 */

import { argIs, BufferArgs, type CommandArgs } from '../resp/CommandArgs.js';

export class ArgError extends Error {
  override readonly name = 'ArgError';
}

/** Lower-cased ASCII text of an argument (command names, option tokens). */
export function lower(buf: Buffer): string {
  return lowerText(buf.toString('latin1'));
}

function lowerText(s: string): string {
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
  return int64In(buf, 0, buf.length, what);
}

/** `int64` of the bytes `buf[from, to)`, read in place. */
function int64In(buf: Buffer, from: number, to: number, what: string): number | string {
  const len = to - from;
  if (len === 0 || len > 20) throw new ArgError(`invalid ${what}`);
  let i = from;
  let neg = false;
  if (buf[from] === 45) {
    neg = true;
    i = from + 1;
    if (len === 1) throw new ArgError(`invalid ${what}`);
  }
  let n = 0;
  for (let j = i; j < to; j++) {
    const d = buf[j]! - 48;
    if (d < 0 || d > 9) throw new ArgError(`invalid ${what}`);
    n = n * 10 + d;
  }
  if (Number.isSafeInteger(n)) return neg ? -n : n;
  const big = BigInt(buf.toString('latin1', from, to));
  if (big > 9223372036854775807n || big < -9223372036854775808n) throw new ArgError(`${what} out of range`);
  return big.toString();
}

/** An integer that must fit a JS number (counts, offsets, indexes, timestamps). */
export function int(buf: Buffer | undefined, what = 'integer'): number {
  const n = int64(buf, what);
  if (typeof n !== 'number') throw new ArgError(`${what} out of range`);
  return n;
}

/**
 * `[-]digits` of at most 15 digits (exact in a double) as a number, or undefined for anything else (decimals,
 * exponents, infinities, a lone sign), which `floatText` reads. "-0" is -0, as Number("-0").
 */
function smallInteger(buf: Buffer, from: number, to: number): number | undefined {
  let i = from;
  const neg = buf[i] === 45;
  if (neg) i++;
  if (i === to || to - i > 15) return undefined;
  let n = 0;
  for (; i < to; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) return undefined;
    n = n * 10 + d;
  }
  return neg ? -n : n;
}

/** A double as Redis accepts it; infinities are kept (ZADD accepts "+inf"/"-inf"), NaN is rejected as Redis does. */
export function float(buf: Buffer | undefined, what = 'number'): number {
  if (buf === undefined || buf.length === 0) throw new ArgError(`missing ${what}`);
  return floatText(buf.toString('latin1'), what);
}

function floatText(s: string, what: string): number {
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

/**
 * Cursor over the arguments of one command. Names, options and numbers are read in place from the buffers the
 * arguments arrived in (CommandArgs); only `next`, `peek`, `rest` and `argv` make Buffers, for what goes into events.
 */
export class Args {
  i: number;
  private readonly src: CommandArgs;
  private all: Buffer[] | undefined;

  constructor(argv: Buffer[] | CommandArgs, start = 1) {
    this.src = Array.isArray(argv) ? new BufferArgs(argv) : argv;
    this.i = start;
  }

  /** Every argument as a Buffer (made once, on first use: for the specs that index or slice them). */
  get argv(): Buffer[] {
    if (this.all === undefined) this.all = this.src.toArray();
    return this.all;
  }

  get left(): number {
    return this.src.length - this.i;
  }

  get done(): boolean {
    return this.i >= this.src.length;
  }

  peek(): Buffer | undefined {
    return this.src.get(this.i);
  }

  next(what = 'argument'): Buffer {
    const b = this.src.get(this.i);
    if (b === undefined) throw new ArgError(`missing ${what}`);
    this.i++;
    return b;
  }

  /** Steps over the next argument without reading it. */
  private take(what: string): number {
    if (this.i >= this.src.length) throw new ArgError(`missing ${what}`);
    return this.i++;
  }

  int(what = 'integer'): number {
    const n = this.int64(what);
    if (typeof n !== 'number') throw new ArgError(`${what} out of range`);
    return n;
  }

  int64(what = 'integer'): number | string {
    const k = this.take(what);
    const s = this.src;
    return int64In(s.bufferOf(k), s.start(k), s.end(k), what);
  }

  float(what = 'number'): number {
    const k = this.take(what);
    const s = this.src;
    const from = s.start(k);
    const to = s.end(k);
    if (to === from) throw new ArgError(`missing ${what}`);
    const buf = s.bufferOf(k);
    // Most scores and timeouts are short integers: read in place, the value Number() gives for the same digits.
    const n = smallInteger(buf, from, to);
    if (n !== undefined) return n;
    return floatText(buf.toString('latin1', from, to), what);
  }

  /** True when the next argument begins with an ASCII letter (an option, not a number). */
  startsWithLetter(): boolean {
    if (this.i >= this.src.length) return false;
    const s = this.src;
    if (s.end(this.i) === s.start(this.i)) return false;
    const c = s.bufferOf(this.i)[s.start(this.i)]! | 0x20;
    return c >= 0x61 && c <= 0x7a;
  }

  token(): string {
    const k = this.take('option');
    const s = this.src;
    return lowerText(s.bufferOf(k).toString('latin1', s.start(k), s.end(k)));
  }

  /** Consumes the next argument when it equals `token` (case-insensitive). */
  eat(token: string): boolean {
    if (argIs(this.src, this.i, token)) {
      this.i++;
      return true;
    }
    return false;
  }

  rest(): Buffer[] {
    const out: Buffer[] = new Array(Math.max(0, this.src.length - this.i));
    for (let k = 0; k < out.length; k++) out[k] = this.src.get(this.i + k)!;
    this.i = this.src.length;
    return out;
  }

  end(): void {
    if (this.i < this.src.length) throw new ArgError(`unexpected argument ${lower(this.src.get(this.i)!)}`);
  }
}

/** The `numkeys key [key ...]` block of ZUNIONSTORE/LMPOP/... */
export function numbered(a: Args, what: string): Buffer[] {
  const n = a.int(`number of ${what}`);
  if (n < 0 || n > a.left) throw new ArgError(`invalid number of ${what}`);
  const out: Buffer[] = new Array(n);
  for (let k = 0; k < n; k++) out[k] = a.next();
  return out;
}

/** `field value [field value ...]` as byte pairs (pairs, not an object, so non-UTF-8 names survive). */
export function pairs(a: Args, count?: number): [Buffer, Buffer][] {
  const n = count ?? a.left / 2;
  if (!Number.isInteger(n) || n < 0 || n * 2 > a.left)
    throw new ArgError('odd number of field/value arguments');
  const out: [Buffer, Buffer][] = new Array(n);
  for (let k = 0; k < n; k++) {
    out[k] = [a.next(), a.next()];
  }
  return out;
}
