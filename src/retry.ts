/**
 * Capped exponential backoff with "equal jitter": the delay for attempt n (0-based) is drawn uniformly from
 * [d/2, d) with d = min(max, initial * 2^n). The random half keeps many redtail instances (or one instance's several
 * clients) from retrying against a restarted server in lockstep; the fixed half keeps a retry from firing at once.
 */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number): number {
  const d = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return d / 2 + Math.random() * (d / 2);
}
