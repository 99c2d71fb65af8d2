import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { toJsonValue } from '../../src/events/EventEncoder.js';
import { RdbParser } from '../../src/rdb/RdbParser.js';
import type { RdbKeyRecord, StreamValue } from '../../src/rdb/records.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
// Beside the main checkout, or one level higher from a worktree under wt/.
const fixturesDir =
  [
    path.resolve(repoRoot, '../shared/fixtures/rdb'),
    path.resolve(repoRoot, '../../shared/fixtures/rdb'),
  ].find(existsSync) ?? path.resolve(repoRoot, '../shared/fixtures/rdb');

type Json = unknown;
interface ExpectedKey {
  db: number;
  key: Json;
  type: string;
  value?: Json;
  expireAtMs: number | null;
  fieldExpireAtMs?: Record<string, number>;
}
interface Expected {
  file: string;
  rdbVersion: string;
  complete: boolean;
  keys: ExpectedKey[];
  functions?: string[];
}

const expectations = readdirSync(fixturesDir)
  .filter((f) => f.endsWith('.expected.json'))
  .sort()
  .map((f) => JSON.parse(readFileSync(path.join(fixturesDir, f), 'utf8')) as Expected);

function parse(buf: Buffer, chunk: number) {
  const keys: RdbKeyRecord[] = [];
  const functions: string[] = [];
  const p = new RdbParser({
    onKey: (r) => keys.push(r),
    onFunction: (code) => functions.push(code.toString('utf8')),
  });
  for (let i = 0; i < buf.length; i += chunk) p.write(buf.subarray(i, i + chunk));
  const summary = p.end();
  return { keys, functions, summary };
}

/** Puts our decoded value in the fixture README's JSON shape. */
function fixtureShape(rec: RdbKeyRecord, expected: Json): Json {
  if (rec.type !== 'stream') return toJsonValue(rec.value);
  const s = rec.value as StreamValue;
  const out: Record<string, Json> = {
    entries: s.entries.map((e) => ({ id: e.id, fields: toJsonValue(e.fields) })),
  };
  // Fixtures whose truth came from typed commands list entries only; groups are compared where given.
  if (expected !== null && typeof expected === 'object' && 'groups' in expected)
    out.groups = s.groups.map((g) => ({
      name: toJsonValue(g.name),
      lastId: g.lastId,
      pending: g.pending.length,
      consumers: g.consumers.map((c) => toJsonValue(c.name)),
    }));
  return out;
}

function normalize(type: string, value: Json): Json {
  const byJson = (a: Json, b: Json) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1);
  if (type === 'set') return [...(value as Json[])].sort(byJson);
  if (type === 'hash') return [...(value as Json[])].sort(byJson);
  return value;
}

describe('third-party RDB fixtures', () => {
  it('has fixtures to check', () => {
    expect(expectations.length).toBeGreaterThanOrEqual(40);
  });

  for (const exp of expectations) {
    describe(exp.file, () => {
      const buf = readFileSync(path.join(fixturesDir, exp.file));

      for (const chunk of [buf.length, 4096, 13, 1]) {
        it(`decodes to the expected keys (chunks of ${chunk === buf.length ? 'the whole file' : chunk} bytes)`, () => {
          const { keys, functions, summary } = parse(buf, chunk);
          expect(summary.version).toBe(Number(exp.rdbVersion.replace(/^(REDIS|VALKEY)/, '')));
          expect(summary.keys).toBe(keys.length);
          const got = new Map(keys.map((r) => [`${r.db}\u0000${JSON.stringify(toJsonValue(r.key))}`, r]));
          if (exp.complete) expect(keys.length).toBe(exp.keys.length);
          for (const k of exp.keys) {
            const rec = got.get(`${k.db}\u0000${JSON.stringify(k.key)}`);
            expect(rec, `key ${JSON.stringify(k.key)} in db ${k.db}`).toBeDefined();
            expect(rec!.type).toBe(k.type);
            expect(rec!.expireAt).toBe(k.expireAtMs);
            if (k.value !== undefined) {
              expect(normalize(k.type, fixtureShape(rec!, k.value))).toEqual(normalize(k.type, k.value));
            }
            if (k.fieldExpireAtMs) {
              const fe = Object.fromEntries(
                (rec!.fieldExpireAt ?? []).map(([f, t]) => [f.toString('utf8'), t]),
              );
              expect(fe).toEqual(k.fieldExpireAtMs);
            }
          }
          if (exp.functions) expect(functions).toEqual(exp.functions);
        });
      }
    });
  }
});
