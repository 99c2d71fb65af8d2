import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandSpecs, findSpec, handledAsUnknown } from '../../src/commands/CommandTable.js';
import { RedisServer } from '../harness/RedisServer.js';
import { type WriteCommand, writeCommands } from './writeCommands.js';

let server: RedisServer;
let r: Redis;
let writes: WriteCommand[];

beforeAll(async () => {
  server = await RedisServer.start();
  r = server.client();
  writes = await writeCommands(r);
});

afterAll(async () => {
  await server?.stop();
});

describe('command table coverage against the running redis-server', () => {
  it('classifies every write command COMMAND INFO reports (subcommands included)', async () => {
    const version = ((await r.info('server')) as string).match(/redis_version:(\S+)/)?.[1];
    const unclassified = writes.map((w) => w.name).filter((n) => !findSpec(n) && !(n in handledAsUnknown));
    const inTable = writes.filter((w) => findSpec(w.name)).length;
    const unknown = writes.filter((w) => w.name in handledAsUnknown).length;
    console.info(
      `redis ${version}: ${writes.length} write commands, ${inTable} in the table, ${unknown} handled as unknown`,
    );
    expect(writes.length).toBeGreaterThan(100);
    expect(writes.some((w) => w.name === 'xgroup|create')).toBe(true);
    expect(writes.some((w) => w.name === 'function|load')).toBe(true);
    expect(unclassified).toEqual([]);
  });

  it('agrees with COMMAND INFO on where the keys are', () => {
    const wrong = writes
      .filter((w) => findSpec(w.name))
      .map((w) => ({ name: w.name, server: [w.first, w.last, w.step], table: [...findSpec(w.name)!.keys] }))
      .filter((x) => x.server.join() !== x.table.join());
    expect(wrong).toEqual([]);
  });

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
