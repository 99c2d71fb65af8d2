import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { Near } from './helpers.js';
import { type Case, type Cmd, expectTxn, TOL } from './propagationSuite.js';

/**
 * Hash field expiry (Redis 7.4: HEXPIRE, HPEXPIRE, HEXPIREAT, HPEXPIREAT, HPERSIST; 8.0: HGETDEL, HGETEX, HSETEX)
 * and how 7.0's hash commands behave on fields that have a TTL, against a real 8.0 master. What 8.0.2 propagates:
 *
 * - relative times become `HPEXPIREAT key <ms> [cond] FIELDS n ...` listing only the fields whose TTL was set
 *   (missing fields and fields that fail the condition are left out; nothing at all when no field was set);
 * - a time already past deletes the fields: `HDEL key field` (several fields: one HDEL each, in MULTI/EXEC);
 * - HGETEX EX/PX/EXAT/PXAT → HPEXPIREAT (with every field named), HGETEX PERSIST → HPERSIST, HGETDEL → HDEL;
 * - HSETEX EX/PX/EXAT → HSETEX ... PXAT, KEEPTTL and FNX/FXX kept, a time already past → HDEL;
 * - a field expiring (actively, or lazily when a command touches it) → HDEL key field, the last one too (the
 *   replica drops the emptied hash itself); a write command on a lazily expired field sends that HDEL first, in
 *   MULTI/EXEC with its own propagation.
 *
 * Expected times are read back from the master (HPEXPIRETIME) or given absolutely; relative ones that can no longer
 * be read (the field has expired since) are checked against the client's clock within TOL.
 */

const FUTURE_S = 4_102_444_800; // 2100-01-01
const FUTURE_MS = 4_102_444_800_123;

/** The master's absolute expiry of each field (ms), -1 without TTL, -2 when the field does not exist. */
async function fieldTimes(r: Redis, key: string, ...fields: string[]): Promise<number[]> {
  return (await r.call('HPEXPIRETIME', key, 'FIELDS', fields.length, ...fields)) as number[];
}

/** The one expiry the listed fields share (they were set by one command). */
async function sharedTime(r: Redis, key: string, ...fields: string[]): Promise<number> {
  const times = await fieldTimes(r, key, ...fields);
  if (new Set(times).size !== 1 || times[0]! < 0)
    throw new Error(`fields ${fields.join(',')} of ${key} do not share one TTL: ${times.join(',')}`);
  return times[0]!;
}

/** The `fieldExpireAt` an hset event must carry for the field as the master now has it. */
async function fieldExpireAtNow(r: Redis, key: string, field: string): Promise<number | null> {
  const [t] = await fieldTimes(r, key, field);
  if (t === -2) throw new Error(`field ${field} of ${key} does not exist`);
  return t === -1 ? null : t!;
}

/** A fact about the master's state the case relies on; throws (failing the case) when it does not hold. */
function assertThat(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
}

/** Polls until `done` (the deadline is a failure detector, not an assertion). */
async function until(what: string, done: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Waits until the field is logically expired (HPTTL says -2) without touching it, which would expire it lazily. */
async function expiredButStored(r: Redis, key: string, field: string): Promise<void> {
  await until(`field ${field} of ${key} to pass its TTL`, async () => {
    const [ttl] = (await r.call('HPTTL', key, 'FIELDS', 1, field)) as number[];
    return ttl === -2;
  });
}

/** Active expiry off, so expired fields stay stored until a command touches them (lazy expiry). */
const ACTIVE_EXPIRE_OFF: Cmd = ['DEBUG', 'SET-ACTIVE-EXPIRE', '0'];

const abc: Cmd = ['HSET', 'h', 'a', '1', 'b', '2', 'c', '3'];

export const hashFieldExpiryCases: Case[] = [
  // HEXPIRE family
  {
    cmd: 'hexpire',
    title: 'relative seconds become HPEXPIREAT of the fields that exist',
    setup: [abc],
    run: [['HEXPIRE', 'h', 100, 'FIELDS', 3, 'a', 'b', 'zz']],
    via: ['hpexpireat'],
    expect: async ({ r, t }) => {
      const at = await sharedTime(r, 'h', 'a', 'b');
      // The master computed the time when it ran the command: 100 s after it, by this machine's clock.
      assertThat(Math.abs(at - (t + 100_000)) <= TOL, `HPEXPIRETIME ${at} is not 100 s after ${t}`);
      return [
        {
          op: 'hexpire',
          key: 'h',
          type: 'hash',
          fields: ['a', 'b'],
          expireAt: at,
          expireApprox: undefined,
          condition: undefined,
          source: { txn: undefined },
        },
      ];
    },
  },
  {
    cmd: 'hexpire',
    title: 'NX keeps the condition and only the fields that passed it',
    setup: [abc, ['HEXPIRE', 'h', 100, 'FIELDS', 1, 'a']],
    run: [['HEXPIRE', 'h', 200, 'NX', 'FIELDS', 2, 'a', 'c']],
    via: ['hpexpireat'],
    expect: async ({ r }) => [
      { op: 'hexpire', key: 'h', fields: ['c'], expireAt: await sharedTime(r, 'h', 'c'), condition: 'nx' },
    ],
  },
  {
    cmd: 'hexpire',
    title: 'a time in the past deletes the field: HDEL',
    setup: [abc],
    run: [['HEXPIRE', 'h', 0, 'FIELDS', 2, 'a', 'zz']],
    via: ['hdel'],
    expect: () => [{ op: 'hdel', key: 'h', type: 'hash', fields: ['a'], source: { txn: undefined } }],
  },
  {
    cmd: 'hexpire',
    title: 'nothing is propagated when no field was set',
    setup: [abc],
    run: [
      ['HEXPIRE', 'h', 100, 'FIELDS', 1, 'missing'],
      ['HEXPIRE', 'nokey', 100, 'FIELDS', 1, 'a'],
    ],
    via: [],
    expect: () => [],
  },
  {
    cmd: 'hpexpire',
    title: 'GT: a field without TTL counts as never expiring and is left out',
    setup: [abc, ['HEXPIRE', 'h', 100, 'FIELDS', 1, 'a']],
    run: [['HPEXPIRE', 'h', 300_000, 'GT', 'FIELDS', 2, 'a', 'b']],
    via: ['hpexpireat'],
    expect: async ({ r }) => [
      { op: 'hexpire', key: 'h', fields: ['a'], expireAt: await sharedTime(r, 'h', 'a'), condition: 'gt' },
    ],
  },
  {
    cmd: 'hexpireat',
    title: 'seconds become ms; XX leaves out the field without TTL',
    setup: [abc, ['HEXPIRE', 'h', 100, 'FIELDS', 1, 'a']],
    run: [['HEXPIREAT', 'h', FUTURE_S, 'XX', 'FIELDS', 2, 'a', 'b']],
    via: ['hpexpireat'],
    expect: () => [
      {
        op: 'hexpire',
        key: 'h',
        fields: ['a'],
        expireAt: FUTURE_S * 1000,
        condition: 'xx',
        expireApprox: undefined,
      },
    ],
  },
  {
    cmd: 'hpexpireat',
    title: 'LT applies to a field without TTL too',
    setup: [abc, ['HPEXPIREAT', 'h', FUTURE_MS + 1000, 'FIELDS', 1, 'a']],
    run: [['HPEXPIREAT', 'h', FUTURE_MS, 'LT', 'FIELDS', 2, 'a', 'b']],
    via: ['hpexpireat'],
    expect: () => [{ op: 'hexpire', key: 'h', fields: ['a', 'b'], expireAt: FUTURE_MS, condition: 'lt' }],
  },
  {
    cmd: 'hpexpireat',
    title: 'a past time on several fields: one HDEL each in MULTI/EXEC, the last one empties the hash',
    setup: [['HSET', 'h', 'a', '1', 'b', '2']],
    run: [['HPEXPIREAT', 'h', 1000, 'FIELDS', 3, 'a', 'b', 'zz']],
    via: ['hdel', 'hdel'],
    expect: () => [
      { op: 'hdel', key: 'h', fields: ['a'], source: { txn: expectTxn } },
      { op: 'hdel', key: 'h', fields: ['b'], source: { txn: expectTxn } },
    ],
  },
  {
    cmd: 'hpersist',
    title: 'propagated as issued, every field named',
    setup: [abc, ['HEXPIRE', 'h', 100, 'FIELDS', 1, 'a']],
    run: [['HPERSIST', 'h', 'FIELDS', 3, 'a', 'b', 'zz']],
    via: ['hpersist'],
    expect: () => [{ op: 'hpersist', key: 'h', type: 'hash', fields: ['a', 'b', 'zz'] }],
  },
  {
    cmd: 'hpersist',
    title: 'nothing is propagated when no field had a TTL',
    setup: [abc],
    run: [['HPERSIST', 'h', 'FIELDS', 2, 'a', 'zz']],
    via: [],
    expect: () => [],
  },
  // HGETDEL, HGETEX, HSETEX (8.0)
  {
    cmd: 'hgetdel',
    title: 'propagated as HDEL of every field named',
    setup: [abc],
    run: [['HGETDEL', 'h', 'FIELDS', 2, 'a', 'zz']],
    via: ['hdel'],
    expect: () => [{ op: 'hdel', key: 'h', fields: ['a', 'zz'] }],
  },
  {
    cmd: 'hgetdel',
    title: 'deleting the last fields deletes the key (no separate DEL)',
    setup: [['HSET', 'h', 'b', '2', 'c', '3']],
    run: [['HGETDEL', 'h', 'FIELDS', 2, 'b', 'c']],
    via: ['hdel'],
    expect: () => [{ op: 'hdel', key: 'h', fields: ['b', 'c'] }],
  },
  {
    cmd: 'hgetdel',
    title: 'nothing is propagated when no field existed',
    setup: [abc],
    run: [['HGETDEL', 'h', 'FIELDS', 1, 'zz']],
    via: [],
    expect: () => [],
  },
  {
    cmd: 'hgetex',
    title: 'EX becomes HPEXPIREAT naming every field, missing ones too',
    setup: [abc],
    run: [['HGETEX', 'h', 'EX', 100, 'FIELDS', 2, 'a', 'zz']],
    via: ['hpexpireat'],
    expect: async ({ r }) => [
      {
        op: 'hexpire',
        key: 'h',
        fields: ['a', 'zz'],
        expireAt: await sharedTime(r, 'h', 'a'),
        condition: undefined,
      },
    ],
  },
  {
    cmd: 'hgetex',
    title: 'PX and PXAT',
    setup: [abc],
    run: [
      ['HGETEX', 'h', 'PX', 100_000, 'FIELDS', 1, 'b'],
      ['HGETEX', 'h', 'PXAT', FUTURE_MS, 'FIELDS', 1, 'c'],
    ],
    via: ['hpexpireat', 'hpexpireat'],
    expect: async ({ r }) => [
      { op: 'hexpire', key: 'h', fields: ['b'], expireAt: await sharedTime(r, 'h', 'b') },
      { op: 'hexpire', key: 'h', fields: ['c'], expireAt: FUTURE_MS },
    ],
  },
  {
    cmd: 'hgetex',
    title: 'EXAT',
    setup: [abc],
    run: [['HGETEX', 'h', 'EXAT', FUTURE_S, 'FIELDS', 1, 'c']],
    via: ['hpexpireat'],
    expect: () => [{ op: 'hexpire', key: 'h', fields: ['c'], expireAt: FUTURE_S * 1000 }],
  },
  {
    cmd: 'hgetex',
    title: 'PERSIST becomes HPERSIST',
    setup: [abc, ['HEXPIRE', 'h', 100, 'FIELDS', 1, 'a']],
    run: [['HGETEX', 'h', 'PERSIST', 'FIELDS', 3, 'a', 'b', 'zz']],
    via: ['hpersist'],
    expect: () => [{ op: 'hpersist', key: 'h', fields: ['a', 'b', 'zz'] }],
  },
  {
    cmd: 'hgetex',
    title: 'a past time deletes: HDEL, one per field in MULTI/EXEC',
    setup: [abc],
    run: [
      ['HGETEX', 'h', 'PX', 0, 'FIELDS', 1, 'a'],
      ['HGETEX', 'h', 'EXAT', 1, 'FIELDS', 2, 'b', 'c'],
    ],
    via: ['hdel', 'hdel', 'hdel'],
    expect: () => [
      { op: 'hdel', key: 'h', fields: ['a'], source: { txn: undefined } },
      { op: 'hdel', key: 'h', fields: ['b'], source: { txn: expectTxn } },
      { op: 'hdel', key: 'h', fields: ['c'], source: { txn: expectTxn } },
    ],
  },
  {
    cmd: 'hgetex',
    title: 'without an option, or PERSIST on fields without TTL: nothing is propagated',
    setup: [abc],
    run: [
      ['HGETEX', 'h', 'FIELDS', 1, 'a'],
      ['HGETEX', 'h', 'PERSIST', 'FIELDS', 1, 'a'],
    ],
    via: [],
    expect: () => [],
  },
  {
    cmd: 'hsetex',
    title: 'EX becomes PXAT',
    run: [['HSETEX', 'h', 'EX', 100, 'FIELDS', 2, 'a', '1', 'b', '2']],
    via: ['hsetex'],
    expect: async ({ r }) => [
      {
        op: 'hset',
        key: 'h',
        type: 'hash',
        fields: [
          ['a', '1'],
          ['b', '2'],
        ],
        fieldExpireAt: await sharedTime(r, 'h', 'a', 'b'),
        expireApprox: undefined,
      },
    ],
  },
  {
    cmd: 'hsetex',
    title: 'PX, EXAT, and FXX with PXAT',
    setup: [['HSET', 'h', 'a', '1']],
    run: [
      ['HSETEX', 'h', 'PX', 100_000, 'FIELDS', 1, 'a', 'x'],
      ['HSETEX', 'h', 'EXAT', FUTURE_S, 'FIELDS', 1, 'c', '3'],
      ['HSETEX', 'h', 'FXX', 'PXAT', FUTURE_MS, 'FIELDS', 1, 'a', 'w'],
    ],
    via: ['hsetex', 'hsetex', 'hsetex'],
    expect: ({ t }) => [
      { op: 'hset', key: 'h', fields: [['a', 'x']], fieldExpireAt: new Near(t + 100_000, TOL) },
      { op: 'hset', key: 'h', fields: [['c', '3']], fieldExpireAt: FUTURE_S * 1000 },
      { op: 'hset', key: 'h', fields: [['a', 'w']], fieldExpireAt: FUTURE_MS },
    ],
  },
  {
    cmd: 'hsetex',
    title: 'without an expiry option the written field loses its TTL; KEEPTTL keeps it',
    setup: [['HSETEX', 'h', 'EX', 100, 'FIELDS', 2, 'a', '1', 'b', '2']],
    run: [
      ['HSETEX', 'h', 'FIELDS', 1, 'a', 'y'],
      ['HSETEX', 'h', 'KEEPTTL', 'FIELDS', 1, 'b', 'z'],
    ],
    via: ['hsetex', 'hsetex'],
    expect: async ({ r }) => {
      // What the master did: a has no TTL any more, b still has its own.
      const [a, b] = await fieldTimes(r, 'h', 'a', 'b');
      assertThat(a === -1 && b! > 0, `HPEXPIRETIME after HSETEX: a ${a}, b ${b}`);
      return [
        { op: 'hset', key: 'h', fields: [['a', 'y']], fieldExpireAt: null },
        { op: 'hset', key: 'h', fields: [['b', 'z']], fieldExpireAt: undefined },
      ];
    },
  },
  {
    cmd: 'hsetex',
    title: 'FNX/FXX that fail are not propagated',
    setup: [['HSET', 'h', 'a', '1']],
    run: [
      ['HSETEX', 'h', 'FNX', 'EX', 100, 'FIELDS', 1, 'a', 'no'],
      ['HSETEX', 'h', 'FXX', 'FIELDS', 2, 'a', '1', 'q', '2'],
    ],
    via: [],
    expect: () => [],
  },
  {
    cmd: 'hsetex',
    title: 'a past time deletes the field instead: HDEL (also on a key that did not exist)',
    setup: [['HSET', 'h', 'a', '1']],
    run: [
      ['HSETEX', 'h', 'PX', 0, 'FIELDS', 1, 'a', '0'],
      ['HSETEX', 'nk', 'PXAT', 1000, 'FIELDS', 1, 'a', '1'],
    ],
    via: ['hdel', 'hdel'],
    expect: () => [
      { op: 'hdel', key: 'h', fields: ['a'] },
      { op: 'hdel', key: 'nk', fields: ['a'] },
    ],
  },
  // 7.0's hash commands on fields with a TTL
  {
    cmd: 'hset',
    title: 'HSET/HMSET drop the TTL of the fields they write',
    setup: [['HSETEX', 'h', 'EX', 100, 'FIELDS', 2, 'a', '1', 'b', '2']],
    run: [
      ['HSET', 'h', 'a', 'x'],
      ['HMSET', 'h', 'b', 'y'],
    ],
    via: ['hset', 'hmset'],
    expect: async ({ r }) => [
      { op: 'hset', key: 'h', fields: [['a', 'x']], fieldExpireAt: await fieldExpireAtNow(r, 'h', 'a') },
      { op: 'hset', key: 'h', fields: [['b', 'y']], fieldExpireAt: await fieldExpireAtNow(r, 'h', 'b') },
    ],
  },
  {
    cmd: 'hincrby',
    title: 'HINCRBY keeps the field TTL (the event carries none, so consumers keep theirs)',
    setup: [['HSETEX', 'h', 'EX', 100, 'FIELDS', 1, 'b', '2']],
    run: [['HINCRBY', 'h', 'b', 5]],
    via: ['hincrby'],
    expect: async ({ r }) => {
      assertThat((await fieldExpireAtNow(r, 'h', 'b')) !== null, 'HINCRBY dropped the TTL of h.b');
      return [{ op: 'hincrby', key: 'h', field: 'b', delta: 5, fieldExpireAt: undefined }];
    },
  },
  {
    cmd: 'hincrbyfloat',
    title:
      'HINCRBYFLOAT keeps the field TTL on the master but is propagated as HSET, which drops it on replicas',
    setup: [['HSETEX', 'h', 'EX', 100, 'FIELDS', 1, 'c', '3']],
    run: [['HINCRBYFLOAT', 'h', 'c', '1.5']],
    via: ['hset'],
    expect: async ({ r }) => {
      // Redis 8.0.2 itself: the master still has the TTL, a real replica applying this HSET does not. The event says
      // what the stream says; the Postgres mirror fetches the field's hash from the master (docs/events.md).
      assertThat((await fieldExpireAtNow(r, 'h', 'c')) !== null, 'HINCRBYFLOAT dropped the TTL of h.c');
      return [{ op: 'hset', key: 'h', fields: [['c', '4.5']], fieldExpireAt: null }];
    },
  },
  {
    cmd: 'hsetnx',
    title: 'HSETNX on a field with a TTL does nothing and is not propagated',
    setup: [['HSETEX', 'h', 'EX', 100, 'FIELDS', 1, 'b', '2']],
    run: [['HSETNX', 'h', 'b', 'x']],
    via: [],
    expect: () => [],
  },
  {
    cmd: 'restore',
    title: 'RESTORE of a hash with field TTLs carries them in the payload',
    run: async (r) => {
      await r.call('HSETEX', 'src', 'PXAT', FUTURE_MS, 'FIELDS', 1, 'a', '1');
      await r.call('HSET', 'src', 'b', '2');
      const payload = (await r.dumpBuffer('src')) as Buffer;
      return [['RESTORE', 'k', 0, payload]];
    },
    via: ['restore'],
    expect: async ({ r }) => {
      const times = (await fieldTimes(r, 'k', 'a', 'b')).join();
      assertThat(times === `${FUTURE_MS},-1`, `field TTLs after RESTORE: ${times}`);
      return [
        {
          op: 'restore',
          key: 'k',
          payload: { base64: ((await r.dumpBuffer('k')) as Buffer).toString('base64') },
          expireAt: null,
        },
      ];
    },
  },
  // Fields expiring
  {
    cmd: 'hpexpire',
    title: 'active expiry deletes the field with HDEL',
    setup: [['HSET', 'h', 'a', '1', 'b', '2']],
    run: [['HPEXPIRE', 'h', 20, 'FIELDS', 1, 'a']],
    // HLEN counts expired fields that are still stored, and touches nothing.
    act: (r) => until('active expiry of h.a', async () => (await r.hlen('h')) === 1),
    via: ['hpexpireat', 'hdel'],
    expect: ({ t }) => [
      { op: 'hexpire', key: 'h', fields: ['a'], expireAt: new Near(t + 20, TOL) },
      { op: 'hdel', key: 'h', fields: ['a'], source: { txn: undefined } },
    ],
  },
  {
    cmd: 'hpexpire',
    title: 'active expiry of every field: one HDEL each, in expiry order, and the hash is gone',
    setup: [['HSET', 'h', 'a', '1', 'b', '2']],
    run: [
      ['HPEXPIRE', 'h', 20, 'FIELDS', 1, 'a'],
      ['HPEXPIRE', 'h', 60, 'FIELDS', 1, 'b'],
    ],
    act: (r) => until('active expiry of h', async () => (await r.exists('h')) === 0),
    via: ['hpexpireat', 'hpexpireat', 'hdel', 'hdel'],
    expect: ({ t }) => [
      { op: 'hexpire', key: 'h', fields: ['a'], expireAt: new Near(t + 20, TOL) },
      { op: 'hexpire', key: 'h', fields: ['b'], expireAt: new Near(t + 60, TOL) },
      { op: 'hdel', key: 'h', fields: ['a'] },
      { op: 'hdel', key: 'h', fields: ['b'] },
    ],
  },
  {
    cmd: 'hpexpire',
    title: 'lazy expiry: reading an expired field sends HDEL; HGETALL/HLEN only hide or count it',
    setup: [ACTIVE_EXPIRE_OFF, abc],
    run: [['HPEXPIRE', 'h', 20, 'FIELDS', 2, 'a', 'b']],
    act: async (r) => {
      await expiredButStored(r, 'h', 'a');
      await expiredButStored(r, 'h', 'b');
      await r.hgetall('h');
      await r.hlen('h');
      await r.hget('h', 'a');
      return r.hexists('h', 'b');
    },
    via: ['hpexpireat', 'hdel', 'hdel'],
    expect: ({ t }) => [
      { op: 'hexpire', key: 'h', fields: ['a', 'b'], expireAt: new Near(t + 20, TOL) },
      { op: 'hdel', key: 'h', fields: ['a'], source: { txn: undefined } },
      { op: 'hdel', key: 'h', fields: ['b'], source: { txn: undefined } },
    ],
  },
  {
    cmd: 'hexpire',
    title: 'HEXPIRE on a field whose time passed but is still stored gives it a new TTL (no HDEL)',
    setup: [ACTIVE_EXPIRE_OFF, ['HSET', 'h', 'a', '1', 'b', '2']],
    run: [['HPEXPIRE', 'h', 20, 'FIELDS', 1, 'a']],
    act: async (r) => {
      await expiredButStored(r, 'h', 'a');
      return r.call('HEXPIRE', 'h', 100, 'FIELDS', 1, 'a');
    },
    via: ['hpexpireat', 'hpexpireat'],
    expect: async ({ r, t }) => {
      assertThat((await r.hget('h', 'a')) === '1', 'h.a is not back');
      return [
        { op: 'hexpire', key: 'h', fields: ['a'], expireAt: new Near(t + 20, TOL) },
        { op: 'hexpire', key: 'h', fields: ['a'], expireAt: await sharedTime(r, 'h', 'a') },
      ];
    },
  },
  {
    cmd: 'hincrby',
    title: 'a write on a lazily expired field: HDEL first, in MULTI/EXEC with the write',
    setup: [ACTIVE_EXPIRE_OFF, abc, ['HPEXPIRE', 'h', 20, 'FIELDS', 3, 'a', 'b', 'c']],
    run: [],
    act: async (r) => {
      for (const f of ['a', 'b', 'c']) await expiredButStored(r, 'h', f);
      await r.hincrby('h', 'a', 1);
      await r.hincrbyfloat('h', 'b', '1');
      return r.hsetnx('h', 'c', 'n');
    },
    via: ['hdel', 'hincrby', 'hdel', 'hset', 'hdel', 'hsetnx'],
    expect: () => [
      { op: 'hdel', key: 'h', fields: ['a'], source: { txn: expectTxn } },
      { op: 'hincrby', key: 'h', field: 'a', delta: 1, source: { txn: expectTxn } },
      { op: 'hdel', key: 'h', fields: ['b'] },
      { op: 'hset', key: 'h', fields: [['b', '1']], fieldExpireAt: null },
      { op: 'hdel', key: 'h', fields: ['c'] },
      { op: 'hset', key: 'h', fields: [['c', 'n']], fieldExpireAt: null },
    ],
  },
  {
    cmd: 'hgetdel',
    title: 'HGETDEL of a lazily expired field: HDEL of it first, then the HDEL of every field named',
    setup: [ACTIVE_EXPIRE_OFF, ['HSET', 'h', 'a', '1', 'b', '2'], ['HPEXPIRE', 'h', 20, 'FIELDS', 1, 'a']],
    run: [],
    act: async (r) => {
      await expiredButStored(r, 'h', 'a');
      return r.call('HGETDEL', 'h', 'FIELDS', 2, 'a', 'b');
    },
    via: ['hdel', 'hdel'],
    expect: () => [
      { op: 'hdel', key: 'h', fields: ['a'], source: { txn: expectTxn } },
      { op: 'hdel', key: 'h', fields: ['a', 'b'], source: { txn: expectTxn } },
    ],
  },
  {
    cmd: 'hgetex',
    title: 'HGETEX of a lazily expired field: HDEL of it first, then the HPEXPIREAT',
    setup: [ACTIVE_EXPIRE_OFF, ['HSET', 'h', 'a', '1', 'b', '2'], ['HPEXPIRE', 'h', 20, 'FIELDS', 1, 'a']],
    run: [],
    act: async (r) => {
      await expiredButStored(r, 'h', 'a');
      return r.call('HGETEX', 'h', 'PXAT', FUTURE_MS, 'FIELDS', 2, 'a', 'b');
    },
    via: ['hdel', 'hpexpireat'],
    expect: () => [
      { op: 'hdel', key: 'h', fields: ['a'], source: { txn: expectTxn } },
      { op: 'hexpire', key: 'h', fields: ['a', 'b'], expireAt: FUTURE_MS, source: { txn: expectTxn } },
    ],
  },
];

/** Commands switching active expiry back on before every case (cases switch it off for lazy expiry). */
export const hashFieldExpiryReset: Cmd[] = [['DEBUG', 'SET-ACTIVE-EXPIRE', '1']];

/** Master config the cases need: DEBUG SET-ACTIVE-EXPIRE from the test's loopback client. */
export const hashFieldExpiryConfig: Record<string, string> = { 'enable-debug-command': 'local' };
