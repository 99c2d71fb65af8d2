import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type ElementKind,
  elementSpec,
  HUGE_FIELD_TTL_SECONDS,
  type HugeRunResult,
  type HugeValueSpec,
  letterSpec,
  runHugeScenario,
} from '../../../bench/hugeValues.js';
import { redisBinaryInfo } from '../../harness/redisVersions.js';

/**
 * Issue 16 for every type: one huge element per key (a hash field's value, a set member, a zset member, a stream
 * field's value, a list element, and on Redis 8.0+ a hash field with a TTL), through the stream and in a snapshot,
 * with a real redis-server master and the real redtail binary writing the NDJSON file sink. Each element is decoded
 * back from its line in a streaming pass and compared by SHA-256 with the bytes sent; the events' other fields (field
 * name, score, field TTL) are checked too, and redtail's peak RSS must stay within the bound of hugeValues.test.ts.
 */
const MB = 1024 * 1024;
const kinds: Array<[ElementKind, number]> = [
  ['hash', 24 * MB],
  ['set', 8 * MB],
  // Exactly the size from which the writer leaves a value out of the line (HUGE_VALUE_BYTES).
  ['zset', 1 * MB],
  ['stream', 16 * MB],
];
const specs: HugeValueSpec[] = [
  ...kinds.map(([kind, size]) => elementSpec(`huge:${kind}`, size, kind)),
  letterSpec('huge:list', 2 * MB),
];
const bound = (largest: number) => 200 * MB + 2 * largest;

/** The op each command's event has on the stream. */
const STREAM_OP: Record<HugeValueSpec['command'], string> = {
  SET: 'set',
  RPUSH: 'push',
  HSET: 'hset',
  HSETEX: 'hset',
  SADD: 'sadd',
  ZADD: 'zadd',
  XADD: 'xadd',
};
const SNAPSHOT_TYPE: Record<HugeValueSpec['command'], string> = {
  SET: 'string',
  RPUSH: 'list',
  HSET: 'hash',
  HSETEX: 'hash',
  SADD: 'set',
  ZADD: 'zset',
  XADD: 'stream',
};

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function run(phase: 'stream' | 'snapshot', list: HugeValueSpec[], redisServer?: string) {
  const dir = mkdtempSync(join(tmpdir(), `redtail-hugetypes-${phase}-`));
  dirs.push(dir);
  const r = await runHugeScenario({ specs: list, phase, dir, timeoutMs: 240_000, redisServer });
  const limit = bound(r.largest);
  console.log(
    `${phase}: peak RSS ${(r.peakRss / MB).toFixed(0)} MB (bound ${(limit / MB).toFixed(0)} MB), redis replica ${(r.replicaPeakRss / MB).toFixed(0)} MB`,
  );
  expect(r.redtailExited, r.log.join('\n')).toBe(false);
  for (const k of r.keys) {
    expect(k.found.lines, `${k.key}: one event`).toBe(1);
    expect(k.found.bytes, `${k.key}: length`).toBe(list.find((s) => s.key === k.key)!.size);
    expect(k.found.sha256, `${k.key}: SHA-256 of the decoded element`).toBe(k.expected);
  }
  expect(r.peakRss, `peak RSS ${(r.peakRss / MB).toFixed(0)} MB`).toBeLessThanOrEqual(limit);
  return r;
}

/** The event of `spec`'s key, with its op and type what the command or the snapshot gives. */
function eventOf(r: HugeRunResult, spec: HugeValueSpec, phase: 'stream' | 'snapshot') {
  const ev = r.keys.find((k) => k.key === spec.key)!.found.events[0]!;
  if (phase === 'stream') expect(ev.op).toBe(STREAM_OP[spec.command]);
  else {
    expect(ev.op).toBe('snapshot');
    expect(ev.type).toBe(SNAPSHOT_TYPE[spec.command]);
  }
  return ev;
}

describe('a huge element of every type through the NDJSON file sink (issue 16)', () => {
  for (const phase of ['stream', 'snapshot'] as const) {
    it(`${phase}: hash field, set member, zset member, stream field, list element: exact, RSS bounded`, {
      timeout: 300_000,
    }, async () => {
      const r = await run(phase, specs);
      const [hash, , zset, stream] = specs as [HugeValueSpec, HugeValueSpec, HugeValueSpec, HugeValueSpec];
      // The small fields beside the huge element survive: the hash field's name, the member's score, the entry.
      const h = eventOf(r, hash, phase);
      expect(((phase === 'stream' ? h.fields : h.value) as unknown[][])[0]![0]).toBe('f');
      const z = eventOf(r, zset, phase);
      expect(((phase === 'stream' ? z.members : z.value) as unknown[][])[0]![1]).toBe(1.5);
      const x = eventOf(r, stream, phase);
      const entryFields =
        phase === 'stream'
          ? (x.fields as unknown[][])
          : (x.value as { entries: Array<{ fields: unknown[][] }> }).entries[0]!.fields;
      expect(entryFields[0]![0]).toBe('f');
      for (const s of specs) eventOf(r, s, phase);
    });
  }
});

const redis8 = await redisBinaryInfo('8.0');

describe.skipIf(redis8.path === null)(
  `a huge hash field with a TTL (${redis8.path === null ? redis8.reason : `Redis ${redis8.exact}`}; issue 16)`,
  () => {
    const ttl = elementSpec('huge:hash-ttl', 12 * MB, 'hash-ttl');
    for (const phase of ['stream', 'snapshot'] as const) {
      it(`${phase}: HSETEX's value exact, its field TTL kept, RSS bounded`, {
        timeout: 300_000,
      }, async () => {
        const before = Date.now();
        const r = await run(phase, [ttl], redis8.path ?? undefined);
        const ev = eventOf(r, ttl, phase);
        // Stream: HSETEX propagated as `HSETEX … PXAT ms` → `fieldExpireAt: ms`; snapshot: `[[field, ms]]`.
        const at = phase === 'stream' ? ev.fieldExpireAt : (ev.fieldExpireAt as unknown[][])[0]![1];
        if (phase === 'snapshot') expect((ev.fieldExpireAt as unknown[][])[0]![0]).toBe('f');
        expect(typeof at).toBe('number');
        expect(at as number).toBeGreaterThanOrEqual(before + HUGE_FIELD_TTL_SECONDS * 1000 - 60_000);
        expect(at as number).toBeLessThanOrEqual(Date.now() + HUGE_FIELD_TTL_SECONDS * 1000);
      });
    }
  },
);
