import { Near } from './helpers.js';
import {
  atLeast,
  type Case,
  type Cmd,
  expectTxn,
  type ServerFacts,
  serverDel,
  TOL,
} from './propagationSuite.js';

/**
 * One case (or more) for every write command of Redis 7.0, plus the non-write commands a master propagates
 * (PUBLISH, PFCOUNT, EVAL, FCALL) and MULTI/EXEC and SELECT. They hold for every master from 7.0 on: the 7.0, 8.0 and
 * Valkey 8.1 suites all run them (propagation*.test.ts). Expected events come from the issued command, Redis's
 * semantics, or the master's reply or state, never from normalizeCommand's output.
 */

const FN =
  '#!lua name=lib\nredis.register_function("f", function(keys) return redis.call("set", keys[1], "fv") end)';
const BIN = Buffer.from([0xff, 0xfe, 0x00, 0x41]);

const groupIdAfterXclaim = (f: ServerFacts) => atLeast(f, 7, 4) || f.valkey;

const streamWithPending: Cmd[] = [
  ['XADD', 's', '1-1', 'f', 'v'],
  ['XGROUP', 'CREATE', 's', 'g', '0'],
  ['XREADGROUP', 'GROUP', 'g', 'c', 'STREAMS', 's', '>'],
];

export const coreCases: Case[] = [
  // strings
  {
    cmd: 'set',
    title: 'SET EX is propagated as PXAT',
    run: [['SET', 'k', 'v', 'EX', 100]],
    via: ['set'],
    expect: ({ t }) => [
      { op: 'set', key: 'k', type: 'string', value: 'v', expireAt: new Near(t + 100_000, TOL) },
    ],
  },
  {
    cmd: 'set',
    title: 'SET with binary key/value, no TTL',
    setup: [['SET', BIN, 'old', 'EX', 100]],
    run: [['SET', BIN, BIN]],
    expect: () => [
      {
        op: 'set',
        key: { base64: BIN.toString('base64') },
        value: { base64: BIN.toString('base64') },
        expireAt: null,
      },
    ],
  },
  {
    cmd: 'set',
    title: 'SET PXAT, GET is dropped',
    setup: [['SET', 'k', 'old']],
    run: [['SET', 'k', 'v', 'GET', 'PXAT', 4_102_444_800_000]],
    expect: () => [{ op: 'set', key: 'k', value: 'v', expireAt: 4_102_444_800_000, expireApprox: undefined }],
  },
  {
    cmd: 'set',
    title: 'SET EXAT',
    run: [['SET', 'k', 'v', 'EXAT', 4_102_444_800]],
    expect: () => [{ op: 'set', key: 'k', value: 'v', expireAt: 4_102_444_800_000 }],
  },
  {
    cmd: 'set',
    title: 'SET KEEPTTL leaves expireAt out',
    setup: [['SET', 'k', 'v', 'EX', 100]],
    run: [['SET', 'k', 'w', 'KEEPTTL']],
    expect: () => [{ op: 'set', key: 'k', value: 'w', expireAt: undefined }],
  },
  {
    cmd: 'setnx',
    run: [['SETNX', 'k', 'v']],
    expect: () => [{ op: 'set', key: 'k', value: 'v', expireAt: null }],
  },
  {
    cmd: 'setex',
    run: [['SETEX', 'k', 100, 'v']],
    via: ['set'],
    expect: ({ t }) => [{ op: 'set', key: 'k', value: 'v', expireAt: new Near(t + 100_000, TOL) }],
  },
  {
    cmd: 'psetex',
    run: [['PSETEX', 'k', 100_000, 'v']],
    via: ['set'],
    expect: ({ t }) => [{ op: 'set', key: 'k', value: 'v', expireAt: new Near(t + 100_000, TOL) }],
  },
  {
    cmd: 'getset',
    setup: [['SET', 'k', 'v', 'EX', 100]],
    run: [['GETSET', 'k', 'w']],
    via: ['set'],
    expect: () => [{ op: 'set', key: 'k', value: 'w', expireAt: null }],
  },
  {
    cmd: 'mset',
    run: [['MSET', 'a', '1', 'b', '2']],
    expect: () => [
      { op: 'set', key: 'a', value: '1', expireAt: null, source: { seq: 0 } },
      { op: 'set', key: 'b', value: '2', expireAt: null, source: { seq: 1 } },
    ],
  },
  {
    cmd: 'msetnx',
    run: [['MSETNX', 'a', '1', 'b', '2']],
    expect: () => [
      { op: 'set', key: 'a', value: '1', expireAt: null },
      { op: 'set', key: 'b', value: '2', expireAt: null },
    ],
  },
  {
    cmd: 'append',
    setup: [['SET', 'k', 'a']],
    run: [['APPEND', 'k', 'bc']],
    expect: () => [{ op: 'append', key: 'k', type: 'string', value: 'bc' }],
  },
  {
    cmd: 'setrange',
    run: [['SETRANGE', 'k', 5, 'xy']],
    expect: () => [{ op: 'setrange', key: 'k', offset: 5, value: 'xy' }],
  },
  { cmd: 'incr', run: [['INCR', 'k']], expect: () => [{ op: 'incrby', key: 'k', type: 'string', delta: 1 }] },
  { cmd: 'decr', run: [['DECR', 'k']], expect: () => [{ op: 'incrby', key: 'k', delta: -1 }] },
  { cmd: 'incrby', run: [['INCRBY', 'k', -7]], expect: () => [{ op: 'incrby', key: 'k', delta: -7 }] },
  {
    cmd: 'incrby',
    title: 'beyond 2^53 the delta is a decimal string',
    run: [['INCRBY', 'k', '9007199254740993']],
    expect: () => [{ op: 'incrby', key: 'k', delta: '9007199254740993' }],
  },
  { cmd: 'decrby', run: [['DECRBY', 'k', 3]], expect: () => [{ op: 'incrby', key: 'k', delta: -3 }] },
  {
    cmd: 'incrbyfloat',
    setup: [['SET', 'k', '10', 'EX', 100]],
    run: [['INCRBYFLOAT', 'k', '1.5']],
    via: ['set'],
    expect: () => [{ op: 'set', key: 'k', value: '11.5', expireAt: undefined }],
  },
  {
    cmd: 'getdel',
    setup: [['SET', 'k', 'v']],
    run: [['GETDEL', 'k']],
    via: ['del'],
    expect: () => [{ op: 'del', key: 'k' }],
  },
  {
    cmd: 'getex',
    setup: [['SET', 'k', 'v']],
    run: [['GETEX', 'k', 'PX', 100_000]],
    via: ['pexpireat'],
    expect: ({ t }) => [{ op: 'expire', key: 'k', expireAt: new Near(t + 100_000, TOL) }],
  },
  {
    cmd: 'getex',
    title: 'GETEX PERSIST',
    setup: [['SET', 'k', 'v', 'EX', 100]],
    run: [['GETEX', 'k', 'PERSIST']],
    via: ['persist'],
    expect: () => [{ op: 'persist', key: 'k', expireAt: null }],
  },
  {
    cmd: 'setbit',
    run: [['SETBIT', 'k', 7, 1]],
    expect: () => [{ op: 'setbit', key: 'k', type: 'string', offset: 7, bit: 1 }],
  },
  {
    cmd: 'bitfield',
    run: [
      ['BITFIELD', 'k', 'SET', 'u8', 0, 200, 'GET', 'u8', 0, 'OVERFLOW', 'SAT', 'INCRBY', 'i5', '#1', -3],
    ],
    expect: () => [
      {
        op: 'bitfield',
        key: 'k',
        ops: [
          { kind: 'set', encoding: 'u8', offset: '0', value: 200 },
          { kind: 'overflow', behavior: 'sat' },
          { kind: 'incrby', encoding: 'i5', offset: '#1', increment: -3 },
        ],
      },
    ],
  },
  {
    cmd: 'bitop',
    setup: [
      ['SET', 'a', 'x'],
      ['SET', 'b', 'y'],
    ],
    run: [['BITOP', 'AND', 'd', 'a', 'b']],
    expect: () => [{ op: 'bitop', key: 'd', type: 'string', operation: 'and', sources: ['a', 'b'] }],
  },
  // keyspace
  {
    cmd: 'del',
    setup: [
      ['SET', 'a', '1'],
      ['SET', 'b', '2'],
    ],
    run: [['DEL', 'a', 'b', 'missing']],
    expect: () => [
      { op: 'del', key: 'a', source: { seq: 0 } },
      { op: 'del', key: 'b', source: { seq: 1 } },
      { op: 'del', key: 'missing', source: { seq: 2 } },
    ],
  },
  {
    cmd: 'unlink',
    setup: [
      ['SET', 'a', '1'],
      ['SET', 'b', '2'],
    ],
    run: [['UNLINK', 'a', 'b']],
    expect: () => [
      { op: 'del', key: 'a' },
      { op: 'del', key: 'b' },
    ],
  },
  {
    cmd: 'expire',
    setup: [['SET', 'k', 'v']],
    run: [['EXPIRE', 'k', 100, 'NX']],
    via: ['pexpireat'],
    expect: ({ t }) => [
      { op: 'expire', key: 'k', expireAt: new Near(t + 100_000, TOL), expireApprox: undefined },
    ],
  },
  {
    cmd: 'pexpire',
    setup: [['SET', 'k', 'v']],
    run: [['PEXPIRE', 'k', 100_000]],
    via: ['pexpireat'],
    expect: ({ t }) => [{ op: 'expire', key: 'k', expireAt: new Near(t + 100_000, TOL) }],
  },
  {
    cmd: 'expireat',
    setup: [['SET', 'k', 'v']],
    run: [['EXPIREAT', 'k', 4_102_444_800]],
    expect: () => [{ op: 'expire', key: 'k', expireAt: 4_102_444_800_000 }],
  },
  {
    cmd: 'pexpireat',
    setup: [['SET', 'k', 'v']],
    run: [['PEXPIREAT', 'k', 4_102_444_800_123]],
    expect: () => [{ op: 'expire', key: 'k', expireAt: 4_102_444_800_123 }],
  },
  {
    cmd: 'expire',
    title: 'an expiry in the past deletes the key',
    setup: [['SET', 'k', 'v']],
    run: [['EXPIRE', 'k', -1]],
    // UNLINK when the master runs with lazyfree-lazy-expire (Valkey 8's default).
    via: (f) => [serverDel(f, 'lazyfree-lazy-expire')],
    expect: () => [{ op: 'del', key: 'k' }],
  },
  {
    cmd: 'persist',
    setup: [['SET', 'k', 'v', 'EX', 100]],
    run: [['PERSIST', 'k']],
    expect: () => [{ op: 'persist', key: 'k', expireAt: null }],
  },
  {
    cmd: 'rename',
    setup: [['SET', 'a', '1']],
    run: [['RENAME', 'a', 'b']],
    expect: () => [{ op: 'rename', key: 'a', destKey: 'b' }],
  },
  {
    cmd: 'renamenx',
    setup: [['SET', 'a', '1']],
    run: [['RENAMENX', 'a', 'b']],
    expect: () => [{ op: 'rename', key: 'a', destKey: 'b' }],
  },
  {
    cmd: 'move',
    setup: [['SET', 'k', 'v']],
    run: [['MOVE', 'k', 3]],
    expect: () => [{ op: 'move', key: 'k', destDb: 3 }],
  },
  {
    cmd: 'copy',
    setup: [['SET', 'k', 'v']],
    run: [['COPY', 'k', 'k2', 'DB', 2, 'REPLACE']],
    expect: () => [{ op: 'copy', key: 'k', destKey: 'k2', destDb: 2, replace: true }],
  },
  {
    cmd: 'copy',
    title: 'COPY in a non-zero db defaults the destination db to it',
    db: 4,
    setup: [['SET', 'k', 'v']],
    run: [['COPY', 'k', 'k2']],
    expect: () => [{ op: 'copy', db: 4, key: 'k', destKey: 'k2', destDb: 4, replace: false }],
  },
  {
    cmd: 'restore',
    setup: async (r) => {
      await r.set('src', 'v');
      return [['DEL', 'src']];
    },
    run: async (r) => {
      await r.set('src', 'hello');
      const payload = (await r.dumpBuffer('src')) as Buffer;
      return [['RESTORE', 'k', 100_000, payload]];
    },
    expect: async ({ t, r }) => [
      {
        op: 'restore',
        key: 'k',
        payload: { base64: ((await r.dumpBuffer('k')) as Buffer).toString('base64') },
        replace: false,
        expireAt: new Near(t + 100_000, TOL),
      },
    ],
  },
  {
    cmd: 'restore-asking',
    run: async (r) => {
      await r.set('src', 'hello');
      const payload = (await r.dumpBuffer('src')) as Buffer;
      return [['RESTORE-ASKING', 'k', 0, payload, 'REPLACE']];
    },
    expect: () => [{ op: 'restore', key: 'k', replace: true, expireAt: null }],
  },
  {
    cmd: 'flushdb',
    run: [['FLUSHDB', 'ASYNC']],
    expect: () => [{ op: 'flushdb', key: undefined, async: true }],
  },
  { cmd: 'flushall', run: [['FLUSHALL']], expect: () => [{ op: 'flushall', async: false }] },
  { cmd: 'swapdb', run: [['SWAPDB', 0, 1]], expect: () => [{ op: 'swapdb', db1: 0, db2: 1 }] },
  {
    cmd: 'sort',
    setup: [['RPUSH', 'l', 'b', 'a']],
    run: [['SORT', 'l', 'ALPHA', 'STORE', 'd']],
    expect: () => [
      {
        op: 'store',
        key: 'd',
        type: 'list',
        command: 'sort',
        sources: ['l'],
        args: ['l', 'ALPHA', 'STORE', 'd'],
      },
    ],
  },
  {
    cmd: 'migrate',
    setup: [['SET', 'k', 'v']],
    run: async (_r, s) => [['MIGRATE', '127.0.0.1', s.target.port, 'k', 0, 5000]],
    via: ['del'],
    expect: () => [{ op: 'del', key: 'k' }],
  },
  // lists
  {
    cmd: 'lpush',
    run: [['LPUSH', 'l', 'a', 'b']],
    expect: () => [{ op: 'push', key: 'l', type: 'list', side: 'left', elements: ['a', 'b'] }],
  },
  {
    cmd: 'lpushx',
    setup: [['RPUSH', 'l', 'x']],
    run: [['LPUSHX', 'l', 'a']],
    expect: () => [{ op: 'push', key: 'l', side: 'left', elements: ['a'] }],
  },
  {
    cmd: 'rpush',
    run: [['RPUSH', 'l', 'a']],
    expect: () => [{ op: 'push', key: 'l', side: 'right', elements: ['a'] }],
  },
  {
    cmd: 'rpushx',
    setup: [['RPUSH', 'l', 'x']],
    run: [['RPUSHX', 'l', 'a', 'b']],
    expect: () => [{ op: 'push', key: 'l', side: 'right', elements: ['a', 'b'] }],
  },
  {
    cmd: 'lpop',
    setup: [['RPUSH', 'l', 'a', 'b', 'c']],
    run: [['LPOP', 'l', 2]],
    expect: () => [{ op: 'pop', key: 'l', side: 'left', count: 2 }],
  },
  {
    cmd: 'rpop',
    setup: [['RPUSH', 'l', 'a', 'b']],
    run: [['RPOP', 'l']],
    expect: () => [{ op: 'pop', key: 'l', side: 'right', count: 1 }],
  },
  {
    cmd: 'blpop',
    setup: [['RPUSH', 'l', 'a']],
    run: [['BLPOP', 'x', 'l', 0]],
    via: ['lpop'],
    expect: () => [{ op: 'pop', key: 'l', side: 'left', count: 1 }],
  },
  {
    cmd: 'brpop',
    setup: [['RPUSH', 'l', 'a']],
    run: [['BRPOP', 'l', 0]],
    via: ['rpop'],
    expect: () => [{ op: 'pop', key: 'l', side: 'right', count: 1 }],
  },
  {
    cmd: 'lmpop',
    setup: [['RPUSH', 'l', 'a', 'b', 'c']],
    run: [['LMPOP', 2, 'x', 'l', 'RIGHT', 'COUNT', 2]],
    via: ['rpop'],
    expect: () => [{ op: 'pop', key: 'l', side: 'right', count: 2 }],
  },
  {
    cmd: 'blmpop',
    setup: [['RPUSH', 'l', 'a', 'b', 'c']],
    run: [['BLMPOP', 0, 1, 'l', 'LEFT']],
    via: ['lpop'],
    expect: () => [{ op: 'pop', key: 'l', side: 'left', count: 1 }],
  },
  {
    cmd: 'lmove',
    setup: [['RPUSH', 'l', 'a', 'b']],
    run: [['LMOVE', 'l', 'l2', 'LEFT', 'RIGHT']],
    expect: () => [{ op: 'lmove', key: 'l', destKey: 'l2', from: 'left', to: 'right' }],
  },
  {
    cmd: 'blmove',
    setup: [['RPUSH', 'l', 'a', 'b']],
    run: [['BLMOVE', 'l', 'l2', 'RIGHT', 'LEFT', 0]],
    via: ['lmove'],
    expect: () => [{ op: 'lmove', key: 'l', destKey: 'l2', from: 'right', to: 'left' }],
  },
  {
    cmd: 'rpoplpush',
    setup: [['RPUSH', 'l', 'a', 'b']],
    run: [['RPOPLPUSH', 'l', 'l2']],
    expect: () => [{ op: 'lmove', key: 'l', destKey: 'l2', from: 'right', to: 'left' }],
  },
  {
    cmd: 'brpoplpush',
    setup: [['RPUSH', 'l', 'a', 'b']],
    run: [['BRPOPLPUSH', 'l', 'l2', 0]],
    via: ['rpoplpush'],
    expect: () => [{ op: 'lmove', key: 'l', destKey: 'l2', from: 'right', to: 'left' }],
  },
  {
    cmd: 'linsert',
    setup: [['RPUSH', 'l', 'a', 'c']],
    run: [['LINSERT', 'l', 'BEFORE', 'c', 'b']],
    expect: () => [{ op: 'linsert', key: 'l', position: 'before', pivot: 'c', element: 'b' }],
  },
  {
    cmd: 'lset',
    setup: [['RPUSH', 'l', 'a']],
    run: [['LSET', 'l', -1, 'z']],
    expect: () => [{ op: 'lset', key: 'l', index: -1, element: 'z' }],
  },
  {
    cmd: 'lrem',
    setup: [['RPUSH', 'l', 'a', 'b', 'a']],
    run: [['LREM', 'l', -2, 'a']],
    expect: () => [{ op: 'lrem', key: 'l', count: -2, element: 'a' }],
  },
  {
    cmd: 'ltrim',
    setup: [['RPUSH', 'l', 'a', 'b', 'c']],
    run: [['LTRIM', 'l', 1, -1]],
    expect: () => [{ op: 'ltrim', key: 'l', start: 1, stop: -1 }],
  },
  // sets
  {
    cmd: 'sadd',
    run: [['SADD', 's', 'a', BIN]],
    expect: () => [{ op: 'sadd', key: 's', type: 'set', members: ['a', { base64: BIN.toString('base64') }] }],
  },
  {
    cmd: 'srem',
    setup: [['SADD', 's', 'a', 'b']],
    run: [['SREM', 's', 'a']],
    expect: () => [{ op: 'srem', key: 's', members: ['a'] }],
  },
  {
    cmd: 'smove',
    setup: [['SADD', 's', 'a']],
    run: [['SMOVE', 's', 't', 'a']],
    expect: () => [{ op: 'smove', key: 's', destKey: 't', member: 'a' }],
  },
  {
    cmd: 'spop',
    setup: [['SADD', 's', 'a', 'b']],
    run: [['SPOP', 's']],
    via: ['srem'],
    expect: ({ replies }) => [{ op: 'srem', key: 's', members: [replies[0]] }],
  },
  {
    cmd: 'spop',
    title: 'SPOP with a count: one SREM per member in a transaction (7.0), one SREM of all of them (7.2+)',
    setup: [['SADD', 's', 'a', 'b', 'c', 'd']],
    run: [['SPOP', 's', 2]],
    via: (f) => (atLeast(f, 7, 2) ? ['srem'] : ['srem', 'srem']),
    expect: ({ replies, facts }) =>
      atLeast(facts, 7, 2)
        ? [{ op: 'srem', key: 's', members: replies[0], source: { txn: undefined } }]
        : (replies[0] as string[]).map((m) => ({
            op: 'srem',
            key: 's',
            members: [m],
            source: { txn: expectTxn },
          })),
  },
  {
    cmd: 'spop',
    title: 'SPOP of more than 1024 members: SREMs of up to 1024 members each (7.2+) in one transaction',
    setup: [['SADD', 's', ...Array.from({ length: 1500 }, (_, i) => `m${i}`)]],
    run: [['SPOP', 's', 1100]],
    expect: ({ replies, facts }) => {
      const popped = replies[0] as string[];
      const size = atLeast(facts, 7, 2) ? 1024 : 1;
      const out: unknown[] = [];
      for (let i = 0; i < popped.length; i += size)
        out.push({ op: 'srem', key: 's', members: popped.slice(i, i + size), source: { txn: expectTxn } });
      return out;
    },
  },
  {
    cmd: 'spop',
    title: 'SPOP of every member deletes the key',
    setup: [['SADD', 's', 'a', 'b']],
    run: [['SPOP', 's', 5]],
    via: (f) => [serverDel(f, 'lazyfree-lazy-server-del')],
    expect: () => [{ op: 'del', key: 's' }],
  },
  ...['sinterstore', 'sunionstore', 'sdiffstore'].map(
    (name): Case => ({
      cmd: name,
      setup: [
        ['SADD', 'a', '1', '2'],
        ['SADD', 'b', '2', '3'],
      ],
      run: [[name.toUpperCase(), 'd', 'a', 'b']],
      expect: () => [
        { op: 'store', key: 'd', type: 'set', command: name, sources: ['a', 'b'], args: ['d', 'a', 'b'] },
      ],
    }),
  ),
  // sorted sets and geo
  {
    cmd: 'zadd',
    setup: [['ZADD', 'z', 5, 'a']],
    run: [['ZADD', 'z', 'NX', 'CH', '1.5', 'a', '+inf', 'b', '-2e3', BIN]],
    expect: () => [
      {
        op: 'zadd',
        key: 'z',
        type: 'zset',
        flags: ['nx', 'ch'],
        members: [
          ['a', 1.5],
          ['b', 'inf'],
          [{ base64: BIN.toString('base64') }, -2000],
        ],
      },
    ],
  },
  {
    cmd: 'zadd',
    title: 'ZADD GT INCR',
    setup: [['ZADD', 'z', 5, 'a']],
    run: [['ZADD', 'z', 'GT', 'INCR', 2, 'a']],
    expect: () => [{ op: 'zadd', key: 'z', flags: ['gt', 'incr'], members: [['a', 2]] }],
  },
  {
    cmd: 'zincrby',
    run: [['ZINCRBY', 'z', '2.5', 'a']],
    expect: () => [{ op: 'zadd', key: 'z', flags: ['incr'], members: [['a', 2.5]] }],
  },
  {
    cmd: 'zrem',
    setup: [['ZADD', 'z', 1, 'a', 2, 'b']],
    run: [['ZREM', 'z', 'a', 'b']],
    expect: () => [{ op: 'zrem', key: 'z', members: ['a', 'b'] }],
  },
  {
    cmd: 'zremrangebyscore',
    setup: [['ZADD', 'z', 1, 'a', 2, 'b']],
    run: [['ZREMRANGEBYSCORE', 'z', '(1', '+inf']],
    expect: () => [{ op: 'zremrange', key: 'z', by: 'score', min: '(1', max: '+inf' }],
  },
  {
    cmd: 'zremrangebyrank',
    setup: [['ZADD', 'z', 1, 'a', 2, 'b']],
    run: [['ZREMRANGEBYRANK', 'z', 0, -2]],
    expect: () => [{ op: 'zremrange', key: 'z', by: 'rank', start: 0, stop: -2 }],
  },
  {
    cmd: 'zremrangebylex',
    setup: [['ZADD', 'z', 0, 'a', 0, 'b']],
    run: [['ZREMRANGEBYLEX', 'z', '[a', '(b']],
    expect: () => [{ op: 'zremrange', key: 'z', by: 'lex', min: '[a', max: '(b' }],
  },
  {
    cmd: 'zpopmin',
    setup: [['ZADD', 'z', 1, 'a', 2, 'b']],
    run: [['ZPOPMIN', 'z']],
    expect: () => [{ op: 'zpop', key: 'z', side: 'min', count: 1 }],
  },
  {
    cmd: 'zpopmax',
    setup: [['ZADD', 'z', 1, 'a', 2, 'b']],
    run: [['ZPOPMAX', 'z', 2]],
    expect: () => [{ op: 'zpop', key: 'z', side: 'max', count: 2 }],
  },
  {
    cmd: 'bzpopmin',
    setup: [['ZADD', 'z', 1, 'a']],
    run: [['BZPOPMIN', 'x', 'z', 0]],
    via: ['zpopmin'],
    expect: () => [{ op: 'zpop', key: 'z', side: 'min', count: 1 }],
  },
  {
    cmd: 'bzpopmax',
    setup: [['ZADD', 'z', 1, 'a']],
    run: [['BZPOPMAX', 'z', 0]],
    via: ['zpopmax'],
    expect: () => [{ op: 'zpop', key: 'z', side: 'max', count: 1 }],
  },
  {
    cmd: 'zmpop',
    setup: [['ZADD', 'z', 1, 'a', 2, 'b']],
    run: [['ZMPOP', 2, 'x', 'z', 'MAX', 'COUNT', 2]],
    via: ['zpopmax'],
    expect: () => [{ op: 'zpop', key: 'z', side: 'max', count: 2 }],
  },
  {
    cmd: 'bzmpop',
    setup: [['ZADD', 'z', 1, 'a', 2, 'b']],
    run: [['BZMPOP', 0, 1, 'z', 'MIN']],
    via: ['zpopmin'],
    expect: () => [{ op: 'zpop', key: 'z', side: 'min', count: 1 }],
  },
  ...['zunionstore', 'zinterstore', 'zdiffstore'].map(
    (name): Case => ({
      cmd: name,
      setup: [
        ['ZADD', 'a', 1, 'x', 2, 'y'],
        ['ZADD', 'b', 2, 'x'],
      ],
      run: [[name.toUpperCase(), 'd', 2, 'a', 'b']],
      expect: () => [
        {
          op: 'store',
          key: 'd',
          type: 'zset',
          command: name,
          sources: ['a', 'b'],
          args: ['d', '2', 'a', 'b'],
        },
      ],
    }),
  ),
  {
    cmd: 'zrangestore',
    setup: [['ZADD', 'a', 1, 'x', 2, 'y']],
    run: [['ZRANGESTORE', 'd', 'a', 0, 0]],
    expect: () => [{ op: 'store', key: 'd', type: 'zset', command: 'zrangestore', sources: ['a'] }],
  },
  {
    cmd: 'geoadd',
    run: [['GEOADD', 'g', '13.361389', '38.115556', 'Palermo', '15.087269', '37.502669', 'Catania']],
    via: ['zadd'],
    expect: async ({ r }) => [
      {
        op: 'zadd',
        key: 'g',
        type: 'zset',
        flags: [],
        members: [
          ['Palermo', Number(await r.zscore('g', 'Palermo'))],
          ['Catania', Number(await r.zscore('g', 'Catania'))],
        ],
      },
    ],
  },
  {
    cmd: 'georadius',
    setup: [['GEOADD', 'g', '13.361389', '38.115556', 'Palermo']],
    run: [['GEORADIUS', 'g', 15, 37, 200, 'km', 'STORE', 'gs']],
    expect: () => [{ op: 'store', key: 'gs', type: 'zset', command: 'georadius', sources: ['g'] }],
  },
  {
    cmd: 'georadiusbymember',
    setup: [['GEOADD', 'g', '13.361389', '38.115556', 'Palermo']],
    run: [['GEORADIUSBYMEMBER', 'g', 'Palermo', 10, 'km', 'COUNT', 1, 'STOREDIST', 'gs']],
    expect: () => [{ op: 'store', key: 'gs', command: 'georadiusbymember', sources: ['g'] }],
  },
  {
    cmd: 'geosearchstore',
    setup: [['GEOADD', 'g', '13.361389', '38.115556', 'Palermo']],
    run: [['GEOSEARCHSTORE', 'gs', 'g', 'FROMLONLAT', 15, 37, 'BYRADIUS', 200, 'km']],
    expect: () => [{ op: 'store', key: 'gs', command: 'geosearchstore', sources: ['g'] }],
  },
  // hashes
  {
    cmd: 'hset',
    run: [['HSET', 'h', BIN, 'v', 'b', '2']],
    expect: () => [
      {
        op: 'hset',
        key: 'h',
        type: 'hash',
        fields: [
          [{ base64: BIN.toString('base64') }, 'v'],
          ['b', '2'],
        ],
        fieldExpireAt: null,
      },
    ],
  },
  {
    cmd: 'hmset',
    run: [['HMSET', 'h', 'a', '1', 'b', '2']],
    expect: () => [
      {
        op: 'hset',
        key: 'h',
        fields: [
          ['a', '1'],
          ['b', '2'],
        ],
      },
    ],
  },
  {
    cmd: 'hsetnx',
    run: [['HSETNX', 'h', 'f', 'v']],
    expect: () => [{ op: 'hset', key: 'h', fields: [['f', 'v']] }],
  },
  {
    cmd: 'hincrby',
    run: [['HINCRBY', 'h', 'f', -5]],
    expect: () => [{ op: 'hincrby', key: 'h', field: 'f', delta: -5 }],
  },
  {
    cmd: 'hincrbyfloat',
    setup: [['HSET', 'h', 'f', '1']],
    run: [['HINCRBYFLOAT', 'h', 'f', '2.5']],
    via: ['hset'],
    expect: () => [{ op: 'hset', key: 'h', fields: [['f', '3.5']] }],
  },
  {
    cmd: 'hdel',
    setup: [['HSET', 'h', 'a', '1', 'b', '2']],
    run: [['HDEL', 'h', 'a', 'b']],
    expect: () => [{ op: 'hdel', key: 'h', fields: ['a', 'b'] }],
  },
  // streams
  {
    cmd: 'xadd',
    run: [['XADD', 's', '*', 'f', 'v', BIN, 'w']],
    expect: ({ replies }) => [
      {
        op: 'xadd',
        key: 's',
        type: 'stream',
        id: replies[0],
        fields: [
          ['f', 'v'],
          [{ base64: BIN.toString('base64') }, 'w'],
        ],
        trim: undefined,
      },
    ],
  },
  {
    cmd: 'xadd',
    title: 'XADD with exact MAXLEN',
    setup: [['XADD', 's', '1-1', 'f', 'v']],
    run: [['XADD', 's', 'MAXLEN', 1, '2-1', 'f', 'v']],
    expect: () => [
      { op: 'xadd', key: 's', id: '2-1', trim: { strategy: 'maxlen', exact: true, threshold: '1' } },
    ],
  },
  {
    cmd: 'xadd',
    title: 'approximate trims are propagated as the exact result',
    setup: [['XADD', 's', '1-1', 'f', 'v']],
    run: [['XADD', 's', 'NOMKSTREAM', 'MINID', '~', '0', 'LIMIT', 10, '*', 'f', 'v']],
    expect: async ({ replies, r }) => [
      {
        op: 'xadd',
        key: 's',
        id: replies[0],
        // 7.0 rewrites an approximate MINID to the id of the first entry left, as an exact trim.
        trim: {
          strategy: 'minid',
          exact: true,
          threshold: (await r.xrange('s', '-', '+', 'COUNT', 1))[0]![0],
          limit: 10,
        },
      },
    ],
  },
  {
    cmd: 'xtrim',
    setup: [
      ['XADD', 's', '1-1', 'f', 'v'],
      ['XADD', 's', '2-1', 'f', 'v'],
    ],
    run: [['XTRIM', 's', 'MAXLEN', '=', 1]],
    expect: () => [{ op: 'xtrim', key: 's', trim: { strategy: 'maxlen', exact: true, threshold: '1' } }],
  },
  {
    cmd: 'xdel',
    setup: [['XADD', 's', '1-1', 'f', 'v']],
    run: [['XDEL', 's', '1-1', '9-9']],
    expect: () => [{ op: 'xdel', key: 's', ids: ['1-1', '9-9'] }],
  },
  {
    cmd: 'xsetid',
    setup: [['XADD', 's', '1-1', 'f', 'v']],
    run: [['XSETID', 's', '5-0', 'ENTRIESADDED', 3, 'MAXDELETEDID', '2-0']],
    expect: () => [{ op: 'xsetid', key: 's', id: '5-0', entriesAdded: 3, maxDeletedId: '2-0' }],
  },
  {
    cmd: 'xgroup|create',
    run: [['XGROUP', 'CREATE', 's', 'g', '0', 'MKSTREAM', 'ENTRIESREAD', 0]],
    expect: () => [{ op: 'xgroup-create', key: 's', group: 'g', id: '0', mkstream: true, entriesRead: 0 }],
  },
  {
    cmd: 'xgroup|create',
    title: 'XGROUP CREATE $',
    setup: [['XADD', 's', '1-1', 'f', 'v']],
    run: [['XGROUP', 'CREATE', 's', 'g', '$']],
    expect: () => [{ op: 'xgroup-create', key: 's', group: 'g', mkstream: false }],
  },
  {
    cmd: 'xgroup|setid',
    setup: [
      ['XADD', 's', '1-1', 'f', 'v'],
      ['XGROUP', 'CREATE', 's', 'g', '0'],
    ],
    run: [['XGROUP', 'SETID', 's', 'g', '1-1', 'ENTRIESREAD', 1]],
    expect: () => [{ op: 'xgroup-setid', key: 's', group: 'g', id: '1-1', entriesRead: 1 }],
  },
  {
    cmd: 'xgroup|destroy',
    setup: [['XGROUP', 'CREATE', 's', 'g', '0', 'MKSTREAM']],
    run: [['XGROUP', 'DESTROY', 's', 'g']],
    expect: () => [{ op: 'xgroup-destroy', key: 's', group: 'g' }],
  },
  {
    cmd: 'xgroup|createconsumer',
    setup: [['XGROUP', 'CREATE', 's', 'g', '0', 'MKSTREAM']],
    run: [['XGROUP', 'CREATECONSUMER', 's', 'g', 'c']],
    expect: () => [{ op: 'xgroup-createconsumer', key: 's', group: 'g', consumer: 'c' }],
  },
  {
    cmd: 'xgroup|delconsumer',
    setup: [
      ['XGROUP', 'CREATE', 's', 'g', '0', 'MKSTREAM'],
      ['XGROUP', 'CREATECONSUMER', 's', 'g', 'c'],
    ],
    run: [['XGROUP', 'DELCONSUMER', 's', 'g', 'c']],
    expect: () => [{ op: 'xgroup-delconsumer', key: 's', group: 'g', consumer: 'c' }],
  },
  {
    cmd: 'xreadgroup',
    setup: [
      ['XADD', 's', '1-1', 'f', 'v'],
      ['XGROUP', 'CREATE', 's', 'g', '0'],
    ],
    run: [['XREADGROUP', 'GROUP', 'g', 'c', 'STREAMS', 's', '>']],
    // Redis 7.4+ and Valkey 8 (which reports redis_version 7.2.4) also send the group's new last-delivered id and
    // entries-read after the XCLAIMs; 7.0 and 7.2 only did with NOACK.
    via: (f) => (groupIdAfterXclaim(f) ? ['xclaim', 'xgroup'] : ['xclaim']),
    expect: ({ t, facts }) => [
      {
        op: 'xclaim',
        key: 's',
        group: 'g',
        consumer: 'c',
        ids: ['1-1'],
        time: new Near(t, TOL),
        retryCount: 1,
        force: true,
        justId: true,
        lastId: '1-1',
      },
      ...(groupIdAfterXclaim(facts)
        ? [
            {
              op: 'xgroup-setid',
              key: 's',
              group: 'g',
              id: '1-1',
              entriesRead: 1,
              source: { txn: expectTxn },
            },
          ]
        : []),
    ],
  },
  {
    cmd: 'xclaim',
    setup: streamWithPending,
    run: [['XCLAIM', 's', 'g', 'c2', 0, '1-1']],
    expect: () => [{ op: 'xclaim', key: 's', group: 'g', consumer: 'c2', ids: ['1-1'] }],
  },
  {
    cmd: 'xautoclaim',
    setup: streamWithPending,
    run: [['XAUTOCLAIM', 's', 'g', 'c2', 0, '0-0']],
    via: ['xclaim'],
    expect: () => [{ op: 'xclaim', key: 's', group: 'g', consumer: 'c2', ids: ['1-1'] }],
  },
  {
    cmd: 'xack',
    setup: streamWithPending,
    run: [['XACK', 's', 'g', '1-1']],
    expect: () => [{ op: 'xack', key: 's', group: 'g', ids: ['1-1'] }],
  },
  // hyperloglog
  {
    cmd: 'pfadd',
    run: [['PFADD', 'hll', 'a', 'b']],
    expect: () => [{ op: 'pfadd', key: 'hll', type: 'string', elements: ['a', 'b'] }],
  },
  {
    cmd: 'pfmerge',
    setup: [
      ['PFADD', 'a', 'x'],
      ['PFADD', 'b', 'y'],
    ],
    run: [['PFMERGE', 'd', 'a', 'b']],
    expect: () => [{ op: 'pfmerge', key: 'd', sources: ['a', 'b'] }],
  },
  {
    cmd: 'pfcount',
    setup: [['PFADD', 'hll', 'a', 'b']],
    run: [['PFCOUNT', 'hll']],
    expect: () => [{ op: 'hll-cache', key: 'hll', type: 'string' }],
  },
  {
    cmd: 'pfdebug',
    setup: [['PFADD', 'hll', 'a']],
    run: [['PFDEBUG', 'TODENSE', 'hll']],
    expect: () => [{ op: 'hll-cache', key: 'hll' }],
  },
  // functions, scripts, pub/sub
  {
    cmd: 'function|load',
    run: [['FUNCTION', 'LOAD', 'REPLACE', FN]],
    expect: () => [{ op: 'function-load', key: undefined, code: FN, replace: true }],
  },
  {
    cmd: 'function|delete',
    setup: [['FUNCTION', 'LOAD', FN]],
    run: [['FUNCTION', 'DELETE', 'lib']],
    expect: () => [{ op: 'function-delete', library: 'lib' }],
  },
  {
    cmd: 'function|flush',
    setup: [['FUNCTION', 'LOAD', FN]],
    run: [['FUNCTION', 'FLUSH', 'SYNC']],
    expect: () => [{ op: 'function-flush', async: false }],
  },
  {
    cmd: 'function|restore',
    run: async (r) => {
      await r.call('FUNCTION', 'LOAD', FN);
      const dump = (await r.callBuffer('FUNCTION', 'DUMP')) as Buffer;
      await r.call('FUNCTION', 'FLUSH');
      return [['FUNCTION', 'RESTORE', dump, 'REPLACE']];
    },
    expect: async ({ r }) => [
      {
        op: 'function-restore',
        payload: { base64: ((await r.callBuffer('FUNCTION', 'DUMP')) as Buffer).toString('base64') },
        policy: 'replace',
      },
    ],
  },
  {
    cmd: 'fcall',
    setup: [['FUNCTION', 'LOAD', FN]],
    run: [['FCALL', 'f', 1, 'fk']],
    via: ['set'],
    expect: () => [{ op: 'set', key: 'fk', value: 'fv', expireAt: null }],
  },
  {
    cmd: 'eval',
    title: 'scripts arrive as their effects inside MULTI/EXEC',
    run: [['EVAL', "redis.call('set', KEYS[1], '5'); redis.call('incrby', KEYS[1], 2)", 1, 'ek']],
    via: ['set', 'incrby'],
    expect: () => [
      { op: 'set', key: 'ek', value: '5', source: { txn: expectTxn } },
      { op: 'incrby', key: 'ek', delta: 2, source: { txn: expectTxn } },
    ],
  },
  {
    cmd: 'publish',
    run: [['PUBLISH', 'ch', 'hello']],
    expect: () => [{ op: 'publish', key: undefined, channel: 'ch', message: 'hello', sharded: false }],
  },
  {
    cmd: 'multi',
    title: 'MULTI/EXEC groups the events of several commands under one txn',
    run: [],
    act: async (r) => r.multi().set('a', '1').lpush('l', 'x').exec(),
    expect: () => [
      { op: 'set', key: 'a', source: { txn: expectTxn } },
      { op: 'push', key: 'l', source: { txn: expectTxn } },
    ],
  },
  {
    cmd: 'select',
    title: 'events carry the db selected on the stream',
    db: 7,
    run: [['SET', 'k', 'v']],
    expect: () => [{ op: 'set', db: 7, key: 'k' }],
  },
];
