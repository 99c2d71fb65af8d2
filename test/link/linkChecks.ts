import { expect } from 'vitest';
import type { RedisServer } from '../harness/RedisServer.js';
import type { JsonEvent, RedtailProcess } from '../harness/RedtailProcess.js';

/** Shared checks of the replica link tests (replication.test.ts, tls.test.ts). */

export const text = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

/** Stream (not snapshot) events whose key starts with `prefix`. */
export const writes = (events: JsonEvent[], prefix: string) =>
  events.filter((e) => !e.source.snapshot && typeof e.key === 'string' && e.key.startsWith(prefix));

export async function masterOffset(s: RedisServer): Promise<number> {
  return Number((await s.info('replication')).master_repl_offset);
}

/**
 * 900 writes with two `CLIENT KILL TYPE replica` between them: each arrives exactly once and in order, the master
 * accepted a partial resync, and there was only the first snapshot.
 */
export async function expectExactlyOnceAcrossReplicaKills(
  m: RedisServer,
  proc: RedtailProcess,
): Promise<void> {
  const c = m.client();
  let n = 0;
  for (; n < 300; n++) await c.set(`k:${n}`, String(n));
  await c.call('CLIENT', 'KILL', 'TYPE', 'replica');
  for (; n < 600; n++) await c.set(`k:${n}`, String(n));
  await c.call('CLIENT', 'KILL', 'TYPE', 'replica');
  for (; n < 900; n++) await c.set(`k:${n}`, String(n));
  await proc.waitForOffset(await masterOffset(m));
  const got = writes(proc.events, 'k:').map((e) => Number(text(e.key).slice(2)));
  expect(got).toEqual(Array.from({ length: 900 }, (_, k) => k));
  expect(m.log()).toMatch(/Partial resynchronization request from .* accepted/);
  expect(proc.events.filter((e) => e.op === 'snapshot-begin')).toHaveLength(1);
}
