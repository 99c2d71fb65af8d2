/**
 * Redis glob matching on bytes, as KEYS/SCAN MATCH/PSUBSCRIBE do it (util.c stringmatchlen): `*` any run, `?` one
 * byte, `[abc]`, `[^abc]`, `[a-z]` classes, and `\` escaping the next byte. Keys are arbitrary bytes, so the match
 * never decodes them.
 */
export function globMatch(pattern: Buffer, subject: Buffer): boolean {
  return match(pattern, 0, subject, 0, 0) === MATCH;
}

const STAR = 42;
const QUESTION = 63;
const OPEN = 91;
const CLOSE = 93;
const CARET = 94;
const DASH = 45;
const BACKSLASH = 92;

const MATCH = 1;
const NO_MATCH = 0;
/**
 * The subject ran out while pattern was left: trying a later start for an enclosing `*` cannot help either, so the
 * search stops (the skipLongerMatches optimisation Redis 7.2 added against exponential patterns like `a*a*a*b`).
 */
const EXHAUSTED = -1;

/** Redis also caps `*` nesting so a hostile pattern cannot blow the stack. */
const MAX_NESTING = 1000;

function match(p: Buffer, pi: number, s: Buffer, si: number, nesting: number): number {
  if (nesting > MAX_NESTING) return NO_MATCH;
  while (pi < p.length) {
    const c = p[pi]!;
    if (c === STAR) {
      while (pi + 1 < p.length && p[pi + 1] === STAR) pi++;
      if (pi + 1 === p.length) return MATCH;
      for (let k = si; k <= s.length; k++) {
        const r = match(p, pi + 1, s, k, nesting + 1);
        if (r !== NO_MATCH) return r;
      }
      return EXHAUSTED;
    }
    if (si === s.length) return EXHAUSTED;
    if (c === QUESTION) {
      si++;
      pi++;
      continue;
    }
    if (c === OPEN) {
      pi++;
      const negate = p[pi] === CARET;
      if (negate) pi++;
      let hit = false;
      const b = s[si]!;
      while (pi < p.length && p[pi] !== CLOSE) {
        if (p[pi] === BACKSLASH && pi + 1 < p.length) {
          pi++;
          if (p[pi] === b) hit = true;
        } else if (pi + 2 < p.length && p[pi + 1] === DASH && p[pi + 2] !== CLOSE) {
          let lo = p[pi]!;
          let hi = p[pi + 2]!;
          if (lo > hi) [lo, hi] = [hi, lo];
          if (b >= lo && b <= hi) hit = true;
          pi += 2;
        } else if (p[pi] === b) hit = true;
        pi++;
      }
      // An unterminated class ends at the pattern's end, as in Redis.
      if (negate) hit = !hit;
      if (!hit) return NO_MATCH;
      if (pi < p.length) pi++;
      si++;
      continue;
    }
    if (c === BACKSLASH && pi + 1 < p.length) pi++;
    if (p[pi] !== s[si]) return NO_MATCH;
    pi++;
    si++;
  }
  return si === s.length ? MATCH : NO_MATCH;
}

/** A compiled glob: literal and `prefix*` patterns (the common cases in configs) skip the general matcher. */
export function compileGlob(pattern: string): (key: Buffer) => boolean {
  const p = Buffer.from(pattern, 'utf8');
  let special = -1;
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === STAR || c === QUESTION || c === OPEN || c === BACKSLASH) {
      special = i;
      break;
    }
  }
  if (special < 0) return (key) => key.equals(p);
  if (special === p.length - 1 && p[special] === STAR) {
    const prefix = p.subarray(0, special);
    return (key) =>
      key.length >= prefix.length && key.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
  }
  return (key) => globMatch(p, key);
}
