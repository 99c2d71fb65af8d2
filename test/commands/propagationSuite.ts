import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findSpec, handledAsUnknown } from '../../src/commands/CommandTable.js';
import { normalizeCommand } from '../../src/commands/normalize.js';
import { encodeEventLine } from '../../src/events/EventEncoder.js';
import { encodeEventString } from '../../src/events/NdjsonEncoder.js';
import { RedisServer } from '../harness/RedisServer.js';
import { ReplicationTap, type TappedCommand } from '../harness/ReplicationTap.js';
import { type RedisVersion, redisBinaryInfo } from '../harness/redisVersions.js';
import { mismatches, Near, toValidJson } from './helpers.js';
import { writeCommands } from './writeCommands.js';

/**
 * The machinery of the propagation tests: drives write commands against a real master, captures what the master
 * really propagates with a raw replica connection (ReplicationTap), normalizes that and compares the events with
 * what the issued command means. Expected events are written from the issued command and Redis's semantics, or read
 * back from the master (generated stream ids, geohash scores, field expiry times), never from normalizeCommand's
 * output. One suite per master version; the cases live in propagationCases.ts and friends.
 */

export type Arg = string | number | Buffer;
export type Cmd = Arg[];

/** The servers of one suite, for cases that need them (MIGRATE's target, the master's own INFO). */
export interface Servers {
  master: RedisServer;
  target: RedisServer;
}

/** What the running master is, for the few cases whose propagation differs between versions or defaults. */
export interface ServerFacts {
  /** `redis_version` (Valkey 8.1 reports 7.2.4, the Redis version it is compatible with). */
  version: string;
  valkey: boolean;
  /** The master's CONFIG GET * (e.g. `lazyfree-lazy-expire`, which turns the DELs it sends into UNLINKs). */
  config: Record<string, string>;
}

/** True when the master's `redis_version` is at least `major.minor`. */
export function atLeast(f: ServerFacts, major: number, minor: number): boolean {
  const [a = 0, b = 0] = f.version.split('.').map(Number);
  return a > major || (a === major && b >= minor);
}

/** The command a master sends to delete a key on its own (expired, emptied, overwritten): DEL, or UNLINK with lazyfree. */
export function serverDel(
  f: ServerFacts,
  setting: 'lazyfree-lazy-expire' | 'lazyfree-lazy-server-del',
): string {
  return f.config[setting] === 'yes' ? 'unlink' : 'del';
}

export interface Run {
  /** Receive-clock time just before the command was issued. */
  t: number;
  replies: unknown[];
  r: Redis;
  facts: ServerFacts;
}

export interface Case {
  /** The table name this case covers (`container|sub` for subcommands). */
  cmd: string;
  title?: string;
  setup?: Cmd[] | ((r: Redis, s: Servers) => Promise<Cmd[]>);
  run: Cmd[] | ((r: Redis, s: Servers) => Promise<Cmd[]>);
  /** Lower-case names of the commands the master propagates, in order (documents the rewrite). */
  via?: string[] | ((f: ServerFacts) => string[]);
  /** Issues the commands itself (e.g. a MULTI/EXEC, or waits for an expiry), after `run`; its result is the last reply. */
  act?: (r: Redis, s: Servers) => Promise<unknown>;
  expect: (x: Run) => unknown[] | Promise<unknown[]>;
  /** Database the client issues the commands in. */
  db?: number;
}

/** Relative expiries are computed by the master's clock when it runs the command; both clocks are this machine's. */
export const TOL = 2000;

/** Marker: the event must carry a txn, the same one as the other events of the case. */
export const expectTxn = Symbol('txn');

/** Commands the propagation cases drive that are not write commands of COMMAND INFO (or not table rows). */
const NOT_TABLE_ROWS = new Set(['multi', 'select', 'eval', 'fcall']);

export interface SuiteOptions {
  version: RedisVersion;
  cases: Case[];
  /** Extra master config (e.g. `enable-debug-command` for cases that switch active expiry off). */
  config?: Record<string, string>;
  /** Commands run before every case, after the FLUSHALL (e.g. switching active expiry back on). */
  reset?: Cmd[];
}

async function call(r: Redis, cmd: Cmd): Promise<unknown> {
  const [name, ...rest] = cmd;
  const reply = await r.callBuffer(String(name), ...rest);
  return decodeReply(reply);
}

function decodeReply(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (Array.isArray(v)) return v.map(decodeReply);
  return v;
}

/** Replaces txn markers with the txn of the first event that has one, so all of them must agree. */
function bindTxn(expected: unknown, txn: string): unknown {
  if (expected === expectTxn) return txn;
  if (expected instanceof Near || expected === null || typeof expected !== 'object') return expected;
  if (Array.isArray(expected)) return expected.map((e) => bindTxn(e, txn));
  return Object.fromEntries(Object.entries(expected).map(([k, v]) => [k, bindTxn(v, txn)]));
}

function expectsUnknown(expected: unknown[]): boolean {
  return expected.some((e) => (e as { op?: unknown }).op === 'command');
}

/**
 * Registers one describe block running `cases` against a master of `version` (skipped, with the reason, when this
 * machine cannot have that binary), plus the check that every write command the server reports has a case.
 */
export async function propagationSuite(o: SuiteOptions): Promise<void> {
  const info = await redisBinaryInfo(o.version);
  const title =
    info.path === null
      ? `a ${o.version} master (unavailable: ${info.reason})`
      : `events from what a ${o.version.startsWith('valkey') ? 'Valkey' : 'Redis'} ${info.exact} master really propagates`;

  describe.skipIf(info.path === null)(title, () => {
    let servers: Servers;
    let tap: ReplicationTap;
    let facts: ServerFacts;
    const clients = new Map<number, Redis>();

    function client(db: number): Redis {
      let c = clients.get(db);
      if (!c) {
        c = servers.master.client({ db });
        clients.set(db, c);
      }
      return c;
    }

    async function sync(): Promise<TappedCommand[]> {
      const repl = await servers.master.info('replication');
      await tap.waitForOffset(Number(repl.master_repl_offset));
      return tap.drain();
    }

    beforeAll(async () => {
      const binary = info.path!;
      const master = await RedisServer.start({
        binary,
        config: { 'repl-ping-replica-period': '60', ...o.config },
      });
      const target = await RedisServer.start({ binary });
      servers = { master, target };
      tap = await ReplicationTap.connect(master.port);
      const server = await master.info('server');
      const config = (await master.client().call('CONFIG', 'GET', '*')) as string[];
      facts = {
        version: server.redis_version ?? '',
        valkey: server.server_name === 'valkey',
        config: Object.fromEntries(config.flatMap((v, i) => (i % 2 === 0 ? [[v, config[i + 1]!]] : []))),
      };
    });

    afterAll(async () => {
      tap?.close();
      await servers?.master.stop();
      await servers?.target.stop();
    });

    for (const c of o.cases) {
      it(`${c.cmd}${c.title ? `: ${c.title}` : ''}`, async () => {
        const r = client(c.db ?? 0);
        await client(0).call('FLUSHALL');
        await client(0).call('FUNCTION', 'FLUSH');
        for (const cmd of o.reset ?? []) await call(client(0), cmd);
        const setup = typeof c.setup === 'function' ? await c.setup(r, servers) : (c.setup ?? []);
        for (const cmd of setup) await call(r, cmd);
        const run = typeof c.run === 'function' ? await c.run(r, servers) : c.run;
        await sync();
        const t = Date.now();
        const replies: unknown[] = [];
        for (const cmd of run) replies.push(await call(r, cmd));
        if (c.act) replies.push(await c.act(r, servers));
        const propagated = await sync();
        const wire = propagated.map((p) => p.args.map(String).join(' ')).join(' | ');
        if (c.via)
          expect(
            propagated.map((p) => p.args[0]!.toString().toLowerCase()),
            wire,
          ).toEqual(typeof c.via === 'function' ? c.via(facts) : c.via);
        const events = propagated.flatMap((p) =>
          normalizeCommand(p.args, {
            db: p.db,
            replid: tap.replid,
            offset: p.offset,
            txn: p.txn,
            ts: p.receivedAt,
          }).map((e) => {
            // The NDJSON sinks' hand-written encoder must write what the reference encoder writes, byte for byte,
            // for everything a real master propagates.
            expect(encodeEventString(e)).toBe(encodeEventLine(e));
            return toValidJson(e);
          }),
        );
        const txn = events.map((e) => (e.source as { txn?: string }).txn).find((x) => x !== undefined);
        const expected = bindTxn(await c.expect({ t, replies, r, facts }), txn ?? '<no txn>') as Record<
          string,
          unknown
        >[];
        for (const e of expected) e.db ??= c.db ?? 0;
        const wrong = mismatches(events, expected);
        expect(wrong, `propagated: ${JSON.stringify(events)} ${wire}`).toEqual([]);
        if (!expectsUnknown(expected)) for (const e of events) expect(e.op).not.toBe('command');
      });
    }

    it('covers every write command the server reports, plus the table rows it drives', async () => {
      const writes = await writeCommands(client(0));
      const covered = new Set(o.cases.map((c) => c.cmd));
      const missing = writes.map((w) => w.name).filter((n) => !covered.has(n));
      expect(missing).toEqual([]);
      for (const c of o.cases) {
        if (NOT_TABLE_ROWS.has(c.cmd)) continue;
        expect(findSpec(c.cmd) ?? handledAsUnknown[c.cmd], c.cmd).toBeDefined();
      }
    });
  });
}
