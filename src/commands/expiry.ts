import { ArgError, type Args } from './args.js';

/**
 * Expiry as an event carries it: absolute ms since the epoch, `null` when the command removes the TTL, `undefined`
 * when the TTL is left as it was (KEEPTTL). `approx` marks a relative expiry converted with redtail's receive time:
 * Redis 7.0+ masters rewrite every relative expiry to an absolute one before propagating (SET ... PXAT,
 * PEXPIREAT, HPEXPIREAT), so only older masters and verbatim forms produce approximate values.
 */
export interface Expiry {
  expireAt: number | null | undefined;
  approx: boolean;
}
/** An expiry at a point in time (what EX/PX/EXAT/PXAT and the EXPIRE family give). */
export interface TimedExpiry extends Expiry {
  expireAt: number;
}

export const NO_TTL = { expireAt: null, approx: false } as const satisfies Expiry;
export const KEEP_TTL = { expireAt: undefined, approx: false } as const satisfies Expiry;

/** Unit multipliers and whether the value is relative to now, for the EX/PX/EXAT/PXAT family of options. */
const UNITS: Record<string, readonly [ms: number, relative: boolean]> = {
  ex: [1000, true],
  px: [1, true],
  exat: [1000, false],
  pxat: [1, false],
};

export function isExpiryToken(tok: string): boolean {
  return UNITS[tok] !== undefined;
}

/** Reads the value of an EX/PX/EXAT/PXAT option whose token (lower-case) was already consumed. */
export function readExpiry(tok: string, a: Args, ts: number): TimedExpiry {
  const u = UNITS[tok];
  if (u === undefined) throw new ArgError(`not an expiry option: ${tok}`);
  return at(a.int('expire time') * u[0], u[1], ts);
}

/** An expiry from a time value: relative ones (EXPIRE, SETEX, HEXPIRE on old masters) are added to `ts`. */
export function at(ms: number, relative: boolean, ts: number): TimedExpiry {
  return relative ? { expireAt: ts + ms, approx: true } : { expireAt: ms, approx: false };
}

/** The payload fields of an expiry: `expireAt`, plus `expireApprox: true` only when it is approximate. */
export function expiryFields<X extends Expiry>(x: X): { expireAt: X['expireAt']; expireApprox?: true } {
  return x.approx ? { expireAt: x.expireAt, expireApprox: true } : { expireAt: x.expireAt };
}
