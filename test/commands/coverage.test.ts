import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandSpecs, findSpec, handledAsUnknown } from '../../src/commands/CommandTable.js';
import { RedisServer } from '../harness/RedisServer.js';
import { type RedisVersion, redisBinaryInfo } from '../harness/redisVersions.js';
import { type WriteCommand, writeCommands } from './writeCommands.js';

/**
 * The table against the write commands of every master version the suite can run: 7.0 (redis-server on PATH),
 * Redis 8.0 and Valkey 8.1. Every command COMMAND INFO flags `write` (subcommands included) is either a table row
 * with the same key positions or in `handledAsUnknown` with its reason.
 */
const VERSIONS: { version: RedisVersion; expected: { writes: number; unknown: string[] } }[] = [
  { version: '7.0', expected: { writes: 108, unknown: ['migrate', 'spop', 'xreadgroup'] } },
  {
    version: '8.0',
    expected: { writes: 119, unknown: ['migrate', 'spop', 'vadd', 'vrem', 'vsetattr', 'xreadgroup'] },
  },
  { version: 'valkey-8.1', expected: { writes: 108, unknown: ['migrate', 'spop', 'xreadgroup'] } },
];

for (const { version, expected } of VERSIONS) {
  const info = await redisBinaryInfo(version);
  const label =
    info.path === null ? `${version} (unavailable: ${info.reason})` : `${version} (${info.exact})`;

  describe.skipIf(info.path === null)(`command table coverage against a ${label} server`, () => {
    let server: RedisServer;
    let r: Redis;
    let writes: WriteCommand[];

    beforeAll(async () => {
      server = await RedisServer.start({ binary: info.path! });
      r = server.client();
      writes = await writeCommands(r);
    });

    afterAll(async () => {
      await server?.stop();
    });

    it('classifies every write command COMMAND INFO reports (subcommands included)', () => {
      const unclassified = writes.map((w) => w.name).filter((n) => !findSpec(n) && !(n in handledAsUnknown));
      const inTable = writes.filter((w) => findSpec(w.name)).length;
      const unknown = writes.filter((w) => w.name in handledAsUnknown).map((w) => w.name);
      console.info(
        `${label}: ${writes.length} write commands, ${inTable} in the table, ${unknown.length} handled as unknown`,
      );
      expect(writes.some((w) => w.name === 'xgroup|create')).toBe(true);
      expect(writes.some((w) => w.name === 'function|load')).toBe(true);
      expect(unclassified).toEqual([]);
      // The counts docs/events.md states.
      expect(writes.length).toBe(expected.writes);
      expect(unknown).toEqual(expected.unknown);
    });

    it('agrees with COMMAND INFO on where the keys are', () => {
      const wrong = writes
        .filter((w) => findSpec(w.name))
        .map((w) => ({ name: w.name, server: [w.first, w.last, w.step], table: [...findSpec(w.name)!.keys] }))
        .filter((x) => x.server.join() !== x.table.join());
      expect(wrong).toEqual([]);
    });
  });
}

describe('command table', () => {
  it('gives a reason for every command handled as unknown, and none is also in the table', () => {
    for (const [name, reason] of Object.entries(handledAsUnknown)) {
      expect(reason.length, name).toBeGreaterThan(20);
      expect(findSpec(name), name).toBeUndefined();
    }
  });

  it('only declares ops the published schema knows', () => {
    const schema = JSON.parse(
      readFileSync(new URL('../../config/event.schema.json', import.meta.url), 'utf8'),
    );
    const known = new Set(schema.properties.op.enum as string[]);
    const ops = new Set(commandSpecs.flatMap((s) => s.ops));
    expect([...ops].filter((o) => !known.has(o))).toEqual([]);
    expect(known.has('command')).toBe(true);
  });

  it('finds specs by lower, upper and mixed case', () => {
    expect(findSpec('set')?.name).toBe('set');
    expect(findSpec('SET')?.name).toBe('set');
    expect(findSpec('SeT')?.name).toBe('set');
    expect(findSpec('xgroup|create')?.name).toBe('xgroup|create');
  });
});
