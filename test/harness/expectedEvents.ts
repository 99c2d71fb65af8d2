import { normalizeCommand } from '../../src/commands/normalize.js';
import { toJsonValue } from '../../src/events/EventEncoder.js';
import type { JsonEvent } from './RedtailProcess.js';
import type { TappedCommand } from './ReplicationTap.js';

/** An event's identity and content, without what legitimately differs between two runs (receive time, txn id). */
export function fingerprint(e: JsonEvent | Record<string, unknown>): string {
  const { ts: _ts, source, ...rest } = e as JsonEvent;
  return JSON.stringify({ ...rest, offset: source.offset, seq: source.seq, inTxn: source.txn !== undefined });
}

/** What redtail should have emitted for the master's stream after `after`, derived from the tap's recording. */
export function expectedFrom(commands: TappedCommand[], after: number): string[] {
  const out: string[] = [];
  for (const c of commands) {
    if (c.offset <= after) continue;
    if (c.args[0]!.toString('latin1').toLowerCase() === 'replconf') continue;
    const ctx = {
      db: c.db,
      replid: 'x',
      offset: c.offset,
      ts: 0,
      ...(c.txn !== undefined ? { txn: c.txn } : {}),
    };
    for (const e of normalizeCommand(c.args, ctx)) out.push(fingerprint(toJsonValue(e) as JsonEvent));
  }
  return out;
}
