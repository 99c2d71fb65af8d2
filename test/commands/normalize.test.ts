import { describe, expect, it } from 'vitest';
import {
  isControlCommand,
  isSelect,
  normalizeCommand,
  normalizeCounters,
  resetNormalizeCounters,
  selectDb,
} from '../../src/commands/normalize.js';
import { argv, ctx, expectEvents, Near, norm, validateJson } from './helpers.js';

const T = ctx.ts;

describe('envelope', () => {
  it('carries v, db, source with seq per command, txn when given, and ts', () => {
    const evs = norm(['MSET', 'a', '1', 'b', '2'], { db: 3, txn: '42', offset: 777 });
    expectEvents(evs, [
      {
        v: 1,
        op: 'set',
        db: 3,
        key: 'a',
        source: { replid: ctx.replid, offset: 777, seq: 0, txn: '42', snapshot: false },
        ts: T,
      },
      { v: 1, op: 'set', db: 3, key: 'b', source: { seq: 1, txn: '42' }, ts: T },
    ]);
    expect(norm(['SET', 'k', 'v'])[0]!.source).toEqual({
      replid: ctx.replid,
      offset: 100,
      seq: 0,
      snapshot: false,
    });
  });

  it('accepts any casing of the command name', () => {
    for (const name of ['set', 'SET', 'sEt']) expectEvents(norm([name, 'k', 'v']), [{ op: 'set', key: 'k' }]);
    expectEvents(norm(['xGroup', 'CreAte', 's', 'g', '0']), [{ op: 'xgroup-create', group: 'g' }]);
  });

  it('keeps non-UTF-8 bytes as base64', () => {
    const bin = Buffer.from([0xc3, 0x28]);
    expectEvents(norm(['HSET', bin, bin, 'v']), [
      { key: { base64: 'wyg=' }, fields: [[{ base64: 'wyg=' }, 'v']] },
    ]);
  });

  it('leaves control commands to the pipeline', () => {
    for (const c of [['SELECT', '2'], ['MULTI'], ['exec'], ['PING'], ['REPLCONF', 'GETACK', '*']]) {
      expect(isControlCommand(argv(...c))).toBe(true);
      expect(normalizeCommand(argv(...c), ctx)).toEqual([]);
    }
    expect(isControlCommand(argv('SET', 'k', 'v'))).toBe(false);
    expect(isSelect(argv('select', '5'))).toBe(true);
    expect(selectDb(argv('SELECT', '5'))).toBe(5);
  });
});

describe('unknown commands are never dropped', () => {
  it('module and future commands become op "command" with the raw args, and are counted', () => {
    resetNormalizeCounters();
    expectEvents(norm(['JSON.SET', 'doc', '$', '{}']), [
      { op: 'command', unknown: true, key: undefined, args: ['JSON.SET', 'doc', '$', '{}'] },
    ]);
    norm(['json.set', 'doc', '$', '{}']);
    expect(normalizeCounters.unknown).toBe(2);
    expect(normalizeCounters.unknownByCommand.get('json.set')).toBe(2);
    expect(normalizeCounters.commands).toBe(2);
    expect(normalizeCounters.events).toBe(2);
  });

  it('a table command whose arguments do not parse falls back to "command" with a reason', () => {
    resetNormalizeCounters();
    expectEvents(norm(['SET', 'k']), [
      { op: 'command', unknown: true, args: ['SET', 'k'], reason: 'unparsed: missing value' },
    ]);
    expectEvents(norm(['MSET', 'a', '1', 'b']), [{ op: 'command', args: ['MSET', 'a', '1', 'b'] }]);
    expectEvents(norm(['EXPIRE', 'k', 'soon']), [{ op: 'command' }]);
    expect(normalizeCounters.parseErrors).toBe(3);
    expect(normalizeCounters.unknownByCommand.get('mset')).toBe(1);
  });

  it('verbatim scripts (masters before 5.0, or lua-replicate-commands no) are unknown with reason "script"', () => {
    expectEvents(norm(['EVAL', 'return 1', '0']), [{ op: 'command', unknown: true, reason: 'script' }]);
    expectEvents(norm(['evalsha', 'abc', '0']), [{ op: 'command', reason: 'script' }]);
    expectEvents(norm(['SCRIPT', 'LOAD', 'return 1']), [{ op: 'command', reason: 'script' }]);
  });

  it('random or ambiguous verbatim forms stay unknown instead of guessing', () => {
    expectEvents(norm(['SPOP', 's']), [{ op: 'command', unknown: true }]);
    expectEvents(norm(['BLPOP', 'a', 'b', '0']), [
      { op: 'command', reason: 'unparsed: multi-key pop is ambiguous without the master rewrite' },
    ]);
    expectEvents(norm(['BLPOP', 'a', '0']), [{ op: 'pop', key: 'a', side: 'left', count: 1 }]);
    expectEvents(norm(['LMPOP', '2', 'a', 'b', 'LEFT']), [{ op: 'command' }]);
    expectEvents(norm(['BZPOPMAX', 'z', '1.5']), [{ op: 'zpop', key: 'z', side: 'max', count: 1 }]);
  });
});

describe('relative expiries (masters before 7.0 send them verbatim) are converted with ts and flagged', () => {
  it('SET EX/PX, SETEX, PSETEX', () => {
    expectEvents(norm(['SET', 'k', 'v', 'EX', '10']), [{ expireAt: T + 10_000, expireApprox: true }]);
    expectEvents(norm(['SET', 'k', 'v', 'PX', '10']), [{ expireAt: T + 10, expireApprox: true }]);
    expectEvents(norm(['SETEX', 'k', '10', 'v']), [
      { op: 'set', value: 'v', expireAt: T + 10_000, expireApprox: true },
    ]);
    expectEvents(norm(['PSETEX', 'k', '10', 'v']), [{ expireAt: T + 10 }]);
    expectEvents(norm(['SET', 'k', 'v', 'PXAT', '5']), [{ expireAt: 5, expireApprox: undefined }]);
  });

  it('EXPIRE, PEXPIRE, GETEX, RESTORE', () => {
    expectEvents(norm(['EXPIRE', 'k', '10']), [{ op: 'expire', expireAt: T + 10_000, expireApprox: true }]);
    expectEvents(norm(['PEXPIRE', 'k', '10', 'GT']), [{ op: 'expire', expireAt: T + 10 }]);
    expectEvents(norm(['EXPIREAT', 'k', '10']), [
      { op: 'expire', expireAt: 10_000, expireApprox: undefined },
    ]);
    expectEvents(norm(['GETEX', 'k', 'EXAT', '10']), [{ op: 'expire', expireAt: 10_000 }]);
    expectEvents(norm(['GETEX', 'k', 'PERSIST']), [{ op: 'persist', expireAt: null }]);
    expectEvents(norm(['GETEX', 'k']), [{ op: 'command' }]);
    expectEvents(norm(['RESTORE', 'k', '10', 'x', 'REPLACE', 'IDLETIME', '5', 'FREQ', '3']), [
      { op: 'restore', expireAt: T + 10, expireApprox: true, replace: true, idleTime: 5, frequency: 3 },
    ]);
    expectEvents(norm(['RESTORE', 'k', '10', 'x', 'ABSTTL']), [
      { op: 'restore', expireAt: 10, expireApprox: undefined },
    ]);
  });
});

describe('strings', () => {
  it('collapse INCR/DECR/INCRBY/DECRBY into incrby with a signed delta', () => {
    expectEvents(norm(['incr', 'k']), [{ op: 'incrby', type: 'string', delta: 1 }]);
    expectEvents(norm(['DECR', 'k']), [{ op: 'incrby', delta: -1 }]);
    expectEvents(norm(['DECRBY', 'k', '-4']), [{ op: 'incrby', delta: 4 }]);
    expectEvents(norm(['DECRBY', 'k', '9223372036854775807']), [
      { op: 'incrby', delta: '-9223372036854775807' },
    ]);
    expectEvents(norm(['INCRBY', 'k', '1.5']), [{ op: 'command' }]);
    expectEvents(norm(['INCRBY', 'k', '99999999999999999999']), [{ op: 'command' }]);
  });

  it('INCRBYFLOAT verbatim keeps the exact decimal text', () => {
    expectEvents(norm(['INCRBYFLOAT', 'k', '0.1']), [{ op: 'incrbyfloat', delta: '0.1' }]);
  });

  it('MSETEX (8.4) gives every key the shared expiry; DELEX (8.4) and SET IF* (8.4) are plain on the stream', () => {
    expectEvents(norm(['MSETEX', '2', 'a', '1', 'b', '2', 'XX', 'PXAT', '99']), [
      { op: 'set', key: 'a', value: '1', expireAt: 99 },
      { op: 'set', key: 'b', value: '2', expireAt: 99 },
    ]);
    expectEvents(norm(['MSETEX', '1', 'a', '1', 'KEEPTTL']), [{ op: 'set', expireAt: undefined }]);
    expectEvents(norm(['DELEX', 'k', 'IFEQ', 'v']), [{ op: 'del', key: 'k' }]);
    expectEvents(norm(['SET', 'k', 'v', 'IFEQ', 'old', 'PXAT', '7']), [{ op: 'set', expireAt: 7 }]);
    expectEvents(norm(['SET', 'k', 'v', 'NX', 'GET']), [{ op: 'set', expireAt: null }]);
    expectEvents(norm(['SET', 'k', 'v', 'BOGUS']), [{ op: 'command' }]);
  });

  it('BITFIELD keeps writes and OVERFLOW, drops GETs; BITOP names its sources', () => {
    expectEvents(norm(['BITFIELD', 'k', 'GET', 'u4', '0', 'INCRBY', 'u4', '#2', '1']), [
      { op: 'bitfield', ops: [{ kind: 'incrby', encoding: 'u4', offset: '#2', increment: 1 }] },
    ]);
    expectEvents(norm(['BITFIELD', 'k', 'OVERFLOW', 'nope']), [{ op: 'command' }]);
    expectEvents(norm(['BITOP', 'DIFF', 'd', 'a', 'b']), [
      { op: 'bitop', key: 'd', operation: 'diff', sources: ['a', 'b'] },
    ]);
    expectEvents(norm(['SETBIT', 'k', '3', '2']), [{ op: 'command' }]);
  });
});

describe('lists, sets, zsets, geo', () => {
  it('lists', () => {
    expectEvents(norm(['LPUSHX', 'l', 'a', 'b']), [
      { op: 'push', type: 'list', side: 'left', elements: ['a', 'b'] },
    ]);
    expectEvents(norm(['RPOP', 'l', '3']), [{ op: 'pop', side: 'right', count: 3 }]);
    expectEvents(norm(['LMPOP', '1', 'l', 'RIGHT', 'COUNT', '2']), [
      { op: 'pop', key: 'l', side: 'right', count: 2 },
    ]);
    expectEvents(norm(['BLMPOP', '0.5', '1', 'l', 'LEFT']), [
      { op: 'pop', key: 'l', side: 'left', count: 1 },
    ]);
    expectEvents(norm(['BLMOVE', 'a', 'b', 'LEFT', 'LEFT', '0']), [
      { op: 'lmove', destKey: 'b', from: 'left', to: 'left' },
    ]);
    expectEvents(norm(['LINSERT', 'l', 'AFTER', 'p', 'e']), [{ op: 'linsert', position: 'after' }]);
    expectEvents(norm(['LINSERT', 'l', 'BESIDE', 'p', 'e']), [{ op: 'command' }]);
  });

  it('sets', () => {
    expectEvents(norm(['SINTERSTORE', 'd', 'a', 'b']), [
      {
        op: 'store',
        key: 'd',
        type: 'set',
        command: 'sinterstore',
        sources: ['a', 'b'],
        args: ['d', 'a', 'b'],
      },
    ]);
  });

  it('zsets: flags, infinite scores, ranges', () => {
    expectEvents(norm(['ZADD', 'z', 'XX', 'LT', 'CH', '-inf', 'a', '1e2', 'b']), [
      {
        op: 'zadd',
        flags: ['xx', 'lt', 'ch'],
        members: [
          ['a', '-inf'],
          ['b', 100],
        ],
      },
    ]);
    expectEvents(norm(['ZADD', 'z', 'nan', 'a']), [{ op: 'command' }]);
    expectEvents(norm(['ZADD', 'z', '1']), [{ op: 'command' }]);
    expectEvents(norm(['ZUNIONSTORE', 'd', '2', 'a', 'b', 'WEIGHTS', '1', '2', 'AGGREGATE', 'MAX']), [
      { op: 'store', key: 'd', type: 'zset', sources: ['a', 'b'] },
    ]);
    expectEvents(norm(['ZMPOP', '1', 'z', 'MIN']), [{ op: 'zpop', side: 'min', count: 1 }]);
  });

  it('GEOADD verbatim (masters before 7.0 send it; 7.0 sends zadd with the geohash score)', () => {
    expectEvents(norm(['GEOADD', 'g', 'NX', 'CH', '13.5', '38.1', 'P', '15', '37', 'C']), [
      {
        op: 'geoadd',
        type: 'zset',
        flags: ['nx', 'ch'],
        members: [
          ['P', 13.5, 38.1],
          ['C', 15, 37],
        ],
      },
    ]);
    expectEvents(norm(['GEORADIUS', 'g', '15', '37', '200', 'km']), [{ op: 'command' }]);
    expectEvents(norm(['GEORADIUS', 'g', '15', '37', '200', 'km', 'COUNT', '1', 'ANY', 'STOREDIST', 'd']), [
      { op: 'store', key: 'd', command: 'georadius', sources: ['g'] },
    ]);
  });
});

describe('hashes, including field expiry (7.4+) and HSETEX/HGETEX/HGETDEL (8.0)', () => {
  it('HSET/HMSET/HSETNX clear field TTLs; HINCRBYFLOAT verbatim keeps the decimal', () => {
    expectEvents(norm(['HMSET', 'h', 'a', '1']), [{ op: 'hset', fields: [['a', '1']], fieldExpireAt: null }]);
    expectEvents(norm(['HSET', 'h', 'a']), [{ op: 'command' }]);
    expectEvents(norm(['HINCRBYFLOAT', 'h', 'f', '1.25']), [
      { op: 'hincrbyfloat', field: 'f', delta: '1.25' },
    ]);
  });

  it('HEXPIRE family becomes hexpire with an absolute time and the condition', () => {
    expectEvents(norm(['HPEXPIREAT', 'h', '1000', 'NX', 'FIELDS', '2', 'a', 'b']), [
      {
        op: 'hexpire',
        type: 'hash',
        fields: ['a', 'b'],
        expireAt: 1000,
        condition: 'nx',
        expireApprox: undefined,
      },
    ]);
    expectEvents(norm(['HEXPIRE', 'h', '10', 'FIELDS', '1', 'a']), [
      { op: 'hexpire', expireAt: T + 10_000, expireApprox: true, condition: undefined },
    ]);
    expectEvents(norm(['HPEXPIRE', 'h', '10', 'FIELDS', '1', 'a']), [{ expireAt: T + 10 }]);
    expectEvents(norm(['HEXPIREAT', 'h', '10', 'FIELDS', '1', 'a']), [{ expireAt: 10_000 }]);
    expectEvents(norm(['HEXPIRE', 'h', '10', 'FIELDS', '2', 'a']), [{ op: 'command' }]);
    expectEvents(norm(['HPERSIST', 'h', 'FIELDS', '1', 'a']), [{ op: 'hpersist', fields: ['a'] }]);
  });

  it('HSETEX sets fields with their expiry (or keeps it), HGETEX/HGETDEL map to hexpire/hpersist/hdel', () => {
    expectEvents(norm(['HSETEX', 'h', 'FNX', 'PXAT', '500', 'FIELDS', '2', 'a', '1', 'b', '2']), [
      {
        op: 'hset',
        fields: [
          ['a', '1'],
          ['b', '2'],
        ],
        fieldExpireAt: 500,
      },
    ]);
    expectEvents(norm(['HSETEX', 'h', 'KEEPTTL', 'FIELDS', '1', 'a', '1']), [
      { op: 'hset', fieldExpireAt: undefined },
    ]);
    expectEvents(norm(['HSETEX', 'h', 'EX', '5', 'FIELDS', '1', 'a', '1']), [
      { op: 'hset', fieldExpireAt: T + 5000, expireApprox: true },
    ]);
    expectEvents(norm(['HSETEX', 'h', 'FIELDS', '2', 'a', '1']), [{ op: 'command' }]);
    expectEvents(norm(['HGETEX', 'h', 'PERSIST', 'FIELDS', '1', 'a']), [{ op: 'hpersist', fields: ['a'] }]);
    expectEvents(norm(['HGETEX', 'h', 'PX', '100', 'FIELDS', '1', 'a']), [
      { op: 'hexpire', expireAt: T + 100 },
    ]);
    expectEvents(norm(['HGETEX', 'h', 'FIELDS', '1', 'a']), [{ op: 'command' }]);
    expectEvents(norm(['HGETDEL', 'h', 'FIELDS', '2', 'a', 'b']), [{ op: 'hdel', fields: ['a', 'b'] }]);
  });
});

describe('streams', () => {
  it('XADD options, including 8.2 reference policies; malformed ids fall back', () => {
    expectEvents(norm(['XADD', 's', 'KEEPREF', 'MAXLEN', '~', '100', 'LIMIT', '5', '1-*', 'f', 'v']), [
      {
        op: 'xadd',
        id: '1-*',
        policy: 'keepref',
        trim: { strategy: 'maxlen', exact: false, threshold: '100', limit: 5 },
      },
    ]);
    expectEvents(norm(['XADD', 's', 'IDMP', 'p', '1', '1-1', 'f', 'v']), [{ op: 'command' }]);
    expectEvents(norm(['XADD', 's', '1-1', 'f']), [{ op: 'command' }]);
    expectEvents(norm(['XADD', 's', 'x-1', 'f', 'v']), [{ op: 'command' }]);
  });

  it('XDELEX/XACKDEL (8.2), XCLAIM options, XAUTOCLAIM verbatim, XSETID, XGROUP SETID', () => {
    expectEvents(norm(['XDELEX', 's', 'ACKED', 'IDS', '2', '1-1', '2-2']), [
      { op: 'xdel', ids: ['1-1', '2-2'], policy: 'acked' },
    ]);
    expectEvents(norm(['XDELEX', 's', 'IDS', '2', '1-1']), [{ op: 'command' }]);
    expectEvents(norm(['XACKDEL', 's', 'g', 'DELREF', 'IDS', '1', '1-1']), [
      { op: 'xackdel', group: 'g', ids: ['1-1'], policy: 'delref' },
    ]);
    expectEvents(
      norm([
        'XCLAIM',
        's',
        'g',
        'c',
        '10',
        '1-1',
        '2',
        'IDLE',
        '5',
        'RETRYCOUNT',
        '3',
        'FORCE',
        'LASTID',
        '9-9',
      ]),
      [
        {
          op: 'xclaim',
          ids: ['1-1', '2'],
          minIdle: 10,
          idle: 5,
          retryCount: 3,
          force: true,
          lastId: '9-9',
          justId: undefined,
        },
      ],
    );
    expectEvents(norm(['XAUTOCLAIM', 's', 'g', 'c', '10', '0-0', 'COUNT', '5', 'JUSTID']), [
      { op: 'xautoclaim', start: '0-0', count: 5, justId: true },
    ]);
    expectEvents(norm(['XSETID', 's', '5-5']), [{ op: 'xsetid', id: '5-5' }]);
    expectEvents(norm(['XGROUP', 'SETID', 's', 'g', '$']), [
      { op: 'xgroup-setid', id: '$', entriesRead: undefined },
    ]);
    expectEvents(norm(['XGROUP', 'HELP']), [{ op: 'command' }]);
  });
});

describe('server-wide ops', () => {
  it('functions, flushes, swapdb, publish', () => {
    expectEvents(norm(['FUNCTION', 'RESTORE', Buffer.from([1, 2, 0xff])]), [
      { op: 'function-restore', payload: { base64: 'AQL/' }, policy: 'append' },
    ]);
    expectEvents(norm(['FUNCTION', 'FLUSH', 'ASYNC']), [{ op: 'function-flush', async: true }]);
    expectEvents(norm(['FLUSHALL', 'NOW']), [{ op: 'command' }]);
    expectEvents(norm(['SPUBLISH', 'c', 'm']), [{ op: 'publish', sharded: true }]);
    expectEvents(norm(['PFCOUNT', 'a', 'b']), [{ op: 'command' }]);
  });
});

describe('event schema', () => {
  const snap = (value: unknown, type: string, extra: Record<string, unknown> = {}) => ({
    v: 1,
    op: 'snapshot',
    db: 0,
    key: 'k',
    type,
    value,
    expireAt: null,
    source: { replid: 'r', offset: 0, seq: 0, snapshot: true },
    ts: 1,
    ...extra,
  });

  it('accepts the snapshot shapes of every type and the control markers', () => {
    expect(validateJson(snap('v', 'string'))).toBeNull();
    expect(validateJson(snap({ base64: 'AA==' }, 'string'))).toBeNull();
    expect(validateJson(snap(['a', { base64: 'AA==' }], 'list'))).toBeNull();
    expect(
      validateJson(
        snap(
          [
            ['a', 1.5],
            ['b', 'inf'],
            ['c', 'nan'],
          ],
          'zset',
        ),
      ),
    ).toBeNull();
    expect(validateJson(snap([['f', 'v']], 'hash', { expireAt: 5 }))).toBeNull();
    expect(
      validateJson(
        snap({ entries: [{ id: '1-1', fields: [['f', 'v']] }], groups: [{ name: 'g' }] }, 'stream'),
      ),
    ).toBeNull();
    expect(
      validateJson(snap({ module: 'ReJSON-RL', encver: 3, raw: { base64: 'AA==' } }, 'module')),
    ).toBeNull();
    for (const op of ['snapshot-begin', 'snapshot-end', 'resync'])
      expect(
        validateJson({
          v: 1,
          op,
          db: 0,
          source: { replid: 'r', offset: 0, seq: 0, snapshot: true },
          ts: 1,
          rdbSize: 10,
        }),
      ).toBeNull();
  });

  it('is strict on the envelope and on op payloads', () => {
    const ok = {
      v: 1,
      op: 'del',
      db: 0,
      key: 'k',
      source: { replid: 'r', offset: 1, seq: 0, snapshot: false },
      ts: 1,
    };
    expect(validateJson(ok)).toBeNull();
    expect(validateJson({ ...ok, v: 2 })).not.toBeNull();
    expect(validateJson({ ...ok, op: 'nope' })).not.toBeNull();
    expect(validateJson({ ...ok, extra: 1 })).not.toBeNull();
    expect(validateJson({ ...ok, key: undefined })).not.toBeNull();
    expect(validateJson({ ...ok, source: { ...ok.source, seq: -1 } })).not.toBeNull();
    expect(validateJson({ ...ok, op: 'set' })).not.toBeNull();
    expect(validateJson({ ...ok, op: 'set', value: 'v', expireAt: 'soon' })).not.toBeNull();
    expect(validateJson({ ...ok, op: 'flushdb', async: false })).not.toBeNull();
    expect(validateJson({ ...ok, op: 'snapshot', type: 'string', value: 'v' })).not.toBeNull();
  });

  it('every relative expiry is within the receive-time tolerance', () => {
    expectEvents(norm(['SET', 'k', 'v', 'EX', '1'], { ts: Date.now() }), [
      { expireAt: new Near(Date.now() + 1000, 50) },
    ]);
  });
});
