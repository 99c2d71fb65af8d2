import type { Message } from 'kafkajs';
import type { ChangeEvent } from '../../src/events/ChangeEvent.js';
import type { OutMessage } from './messages.js';
import { type StateRule, stateEffect } from './StateTopic.js';
import type { TopicRouter } from './TopicRouter.js';

/** Keys (raw bytes as latin1 strings, a 1:1 mapping) whose newest record in one state topic is not a tombstone. */
export interface LiveKeys {
  /** The db the topic belongs to (from the `<db>` of the template), null when the template has none. */
  db: number | null;
  keys: Set<string>;
}

export type LiveState = Map<string, LiveKeys>;

/** Reads the live keys of the given state topics (read_committed, to their end). */
export type LiveKeysReader = () => Promise<LiveState>;

/** `redtail.state.<db>` → /^redtail\.state\.(\d+)$/: which existing topics belong to the state template. */
export function stateTopicPattern(template: string): RegExp {
  const parts = template.split('<db>').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('(\\d+)')}$`);
}

export interface ReconcilePlan {
  /** The state to carry into the next batch: non-null while a snapshot is loading. */
  next: LiveState | null;
  /** Tombstones for keys the state topic holds but the completed snapshot lacks (at its snapshot-end). */
  tombstones: OutMessage[];
  /** Whether a snapshot-end completed a reconciliation in this batch. */
  completed: boolean;
}

/**
 * Makes the compacted state topic agree with a full resync's snapshot (docs/kafka.md, "State topic"). At a
 * `snapshot-begin` the sink reads which keys the state topics hold; every snapshot event removes its key from that
 * set; at `snapshot-end` the keys left over (deleted on the master while redtail could not follow, e.g. after a
 * backlog overrun) get tombstones, in the same transaction as the snapshot-end and its checkpoint.
 *
 * `plan` is pure with respect to the sink's committed state: it mutates only sets that a failed transaction's
 * retry would mutate the same way (adding and deleting the same keys in the same order is idempotent), and the
 * sink adopts `next` only after the commit.
 */
export class StateReconciler {
  /** Live keys while a snapshot loads; null otherwise. */
  private live: LiveState | null = null;

  constructor(
    private readonly router: TopicRouter,
    private readonly rules: () => Record<string, StateRule> | undefined,
  ) {}

  get active(): boolean {
    return this.live !== null;
  }

  /**
   * @param loaded caches the state topics' content read at a snapshot-begin of this batch across retries.
   */
  async plan(
    events: ChangeEvent[],
    read: LiveKeysReader,
    loaded: { base?: LiveState },
  ): Promise<ReconcilePlan> {
    let begin = -1;
    for (let i = events.length - 1; i >= 0; i--) {
      if (events[i]!.op === 'snapshot-begin') {
        begin = i;
        break;
      }
    }
    if (begin < 0 && this.live === null) return { next: null, tombstones: [], completed: false };
    let state = this.live;
    let from = 0;
    if (begin >= 0) {
      loaded.base ??= await read();
      state = loaded.base;
      // What this batch writes before the snapshot-begin is not in the topic yet.
      for (let i = 0; i < begin; i++) this.apply(state, events[i]!);
      from = begin + 1;
    }
    const tombstones: OutMessage[] = [];
    let completed = false;
    for (let i = from; i < events.length && state !== null; i++) {
      const ev = events[i]!;
      if (ev.op === 'snapshot-end') {
        for (const [topic, live] of state) {
          for (const key of live.keys) tombstones.push(tombstone(topic, key, live.db, ev.ts));
        }
        state = null;
        completed = true;
      } else if (ev.key !== undefined && ev.source.snapshot) {
        const topic = this.router.stateTopicFor(ev);
        if (topic !== null) state.get(topic)?.keys.delete(ev.key.toString('latin1'));
      }
    }
    return { next: state, tombstones, completed };
  }

  /** Adopts a committed plan. */
  committed(plan: ReconcilePlan): void {
    this.live = plan.next;
  }

  private apply(state: LiveState, ev: ChangeEvent): void {
    const topic = this.router.stateTopicFor(ev);
    if (topic === null || ev.key === undefined) return;
    const effect = stateEffect(ev, this.rules());
    if (effect === 'ignore') return;
    let live = state.get(topic);
    if (!live) {
      live = { db: ev.db, keys: new Set() };
      state.set(topic, live);
    }
    if (effect === 'tombstone') live.keys.delete(ev.key.toString('latin1'));
    else live.keys.add(ev.key.toString('latin1'));
  }
}

function tombstone(topic: string, key: string, db: number | null, ts: number): OutMessage {
  const k = Buffer.from(key, 'latin1');
  const headers: Record<string, string> = { op: 'resync' };
  if (db !== null) headers.db = String(db);
  const message: Message = { key: k, value: null, headers, timestamp: String(ts) };
  return { topic, message, size: 64 + k.length + 16 };
}
