import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeDiffs, MirrorHarness, pgQuery, rng } from './helpers.js';

/**
 * The mirror's semantics against a real redis-server: each test runs commands on the master, feeds exactly what it
 * propagated to the sink, and compares every key of the master with the `keys` table.
 */
/**
 * Run twice: with the default `bigCollectionMembers`, and with 3, so that every collection of 3 members or more is
 * stored one row per member (docs/postgres.md, "Big collections") and every op below runs on row-stored values too:
 * member-addressed ops on partial values, the others on wholly loaded ones, conversions both ways.
 */
describe.each([
  { label: 'inline collections', sinkOptions: {} },
  { label: 'collections of 3+ members in member rows', sinkOptions: { bigCollectionMembers: 3 } },
])('mirror model vs redis-server ($label)', ({ sinkOptions }) => {
  let h: MirrorHarness;
  beforeAll(async () => {
    h = await MirrorHarness.start({}, sinkOptions);
  });
  afterAll(async () => {
    await h?.stop();
  });

  async function expectAgree(): Promise<void> {
    const r = await h.verify();
    expect(r.differences.length, describeDiffs(r)).toBe(0);
    // Member rows: each row-stored key has exactly `member_rows` rows in its type's table, and no row is orphaned.
    const bad = await pgQuery(
      `WITH m AS (SELECT db, key, 'hash' AS t FROM "${h.schema}".hash_fields
                  UNION ALL SELECT db, key, 'set' FROM "${h.schema}".set_members
                  UNION ALL SELECT db, key, 'zset' FROM "${h.schema}".zset_members
                  UNION ALL SELECT db, key, 'list' FROM "${h.schema}".list_items),
            c AS (SELECT db, key, t, count(*) AS n FROM m GROUP BY db, key, t)
       SELECT k.key, k.member_rows, c.n FROM "${h.schema}".keys k FULL JOIN c ON c.db = k.db AND c.key = k.key AND c.t = k.type
       WHERE k.member_rows IS DISTINCT FROM c.n`,
    );
    expect(bad).toEqual([]);
  }

  it('verify notices a wrong value, a missing key and an extra key', async () => {
    await h.run([
      ['set', 'probe1', 'a'],
      ['set', 'probe2', 'b'],
    ]);
    expect((await h.verify()).keys).toBeGreaterThanOrEqual(2);
    await pgQuery(`UPDATE "${h.schema}".keys SET value = '"wrong"' WHERE key = 'probe1'::bytea`);
    await pgQuery(`DELETE FROM "${h.schema}".keys WHERE key = 'probe2'::bytea`);
    await pgQuery(
      `INSERT INTO "${h.schema}".keys (db, key, type, value, updated_offset, snapshot_gen) VALUES (0, 'extra'::bytea, 'string', '"x"', 0, 0)`,
    );
    const r = await h.verify();
    expect(r.differences.map((d) => d.key.toString()).sort()).toEqual(['extra', 'probe1', 'probe2']);
    await h.run([['del', 'probe1', 'probe2', 'extra']]);
    expect((await h.verify()).differences).toEqual([]);
  });

  it('strings: set variants, append, setrange, incr, incrbyfloat, setbit, bitop, bitfield, getex, hll', async () => {
    await h.run([
      ['set', 's1', 'hello'],
      ['append', 's1', ' world'],
      ['append', 's2', 'new'],
      ['setrange', 's1', 3, 'XY'],
      ['setrange', 's3', 5, 'pad'],
      ['setrange', 's4', 0, ''],
      ['set', 'n', '10'],
      ['incr', 'n'],
      ['incrby', 'n', -25],
      ['decr', 'n2'],
      ['decrby', 'n', '9223372036854775'],
      ['incrbyfloat', 'f', '1.5'],
      ['incrbyfloat', 'f', '1e3'],
      ['setbit', 'bits', 77, 1],
      ['setbit', 'bits', 3, 1],
      ['setbit', 'bits', 77, 0],
      ['set', 'b1', Buffer.from([0xff, 0x0f, 0x00])],
      ['set', 'b2', Buffer.from([0x0f])],
      ['bitop', 'and', 'band', 'b1', 'b2'],
      ['bitop', 'or', 'bor', 'b1', 'b2', 'missing'],
      ['bitop', 'xor', 'bxor', 'b1', 'b2'],
      ['bitop', 'not', 'bnot', 'b1'],
      ['bitop', 'and', 'bempty', 'missing1', 'missing2'],
      ['bitfield', 'bf', 'set', 'u8', 0, 200, 'incrby', 'i5', 100, 7],
      ['set', 'ttl1', 'v', 'ex', 1000],
      ['set', 'ttl1', 'w', 'keepttl'],
      ['set', 'ttl2', 'v', 'px', 500000],
      ['getex', 'ttl2', 'persist'],
      ['setex', 'ttl3', 100, 'x'],
      ['getex', 'ttl3', 'pxat', Date.now() + 600000],
      ['psetex', 'ttl4', 100000, 'y'],
      ['getset', 'ttl4', 'z'],
      ['mset', 'm1', 'a', 'm2', 'b'],
      ['msetnx', 'm3', 'c', 'm4', 'd'],
      ['setnx', 'm5', 'e'],
      ['getdel', 'm1'],
      ['pfadd', 'hll', 'a', 'b', 'c'],
      ['pfadd', 'hll2', 'c', 'd'],
      ['pfmerge', 'hll3', 'hll', 'hll2'],
      ['pfcount', 'hll'],
      ['set', Buffer.from([0xc3, 0x28, 0x00]), Buffer.from([0x00, 0xfe])],
    ]);
    await expectAgree();
  });

  it('lists: push/pop/lmove/linsert/lset/lrem/ltrim, blocking forms', async () => {
    await h.run([
      ['rpush', 'l1', 'a', 'b', 'c', 'a', 'b', 'a'],
      ['lpush', 'l1', 'x', 'y'],
      ['lpushx', 'nol', 'z'],
      ['rpushx', 'l1', 'tail'],
      ['lpop', 'l1'],
      ['rpop', 'l1', 2],
      ['lrem', 'l1', 1, 'a'],
      ['lrem', 'l1', -1, 'b'],
      ['linsert', 'l1', 'before', 'c', 'B'],
      ['linsert', 'l1', 'after', 'c', 'C'],
      ['linsert', 'l1', 'after', 'nope', 'C'],
      ['lset', 'l1', -1, 'last'],
      ['rpush', 'l2', 1, 2, 3, 4, 5, 6, 7, 8],
      ['ltrim', 'l2', 1, -2],
      ['ltrim', 'l2', -100, 100],
      ['lmove', 'l2', 'l3', 'left', 'right'],
      ['lmove', 'l2', 'l2', 'right', 'left'],
      ['rpoplpush', 'l2', 'l3'],
      ['blpop', 'l3', 0.01],
      ['brpoplpush', 'l2', 'l4', 0.01],
      ['lmpop', 2, 'l2', 'l3', 'right', 'count', 2],
      ['rpush', 'l5', 'only'],
      ['lpop', 'l5'],
      ['rpush', 'l6', 'a', 'b'],
      ['ltrim', 'l6', 5, 10],
      ['rpush', 'l7', 'a', 'a', 'a'],
      ['lrem', 'l7', 0, 'a'],
    ]);
    await expectAgree();
  });

  it('sets: sadd/srem/smove/spop/store ops', async () => {
    await h.run([
      ['sadd', 'st1', 'a', 'b', 'c', 'd'],
      ['sadd', 'st2', 'c', 'd', 'e'],
      ['srem', 'st1', 'a', 'zz'],
      ['smove', 'st1', 'st3', 'b'],
      ['smove', 'st1', 'st3', 'nope'],
      ['sinterstore', 'si', 'st1', 'st2'],
      ['sunionstore', 'su', 'st1', 'st2', 'st3'],
      ['sdiffstore', 'sd', 'st2', 'st1'],
      ['sinterstore', 'sempty', 'st1', 'missing'],
      ['sadd', 'sp', 1, 2, 3, 4, 5, 6, 7, 8, 9],
      ['spop', 'sp'],
      ['spop', 'sp', 3],
      ['srandmember', 'sp'],
      ['sadd', 'sone', 'x'],
      ['srem', 'sone', 'x'],
      ['sadd', 'int', 1, 2, 3],
      ['sadd', 'int', 'x'],
    ]);
    await expectAgree();
  });

  it('sorted sets: zadd flags, incr, ranges, pops, stores, geo', async () => {
    await h.run([
      ['zadd', 'z1', 1, 'a', 2, 'b', 3, 'c', 4, 'd', 5, 'e'],
      ['zadd', 'z1', 'nx', 10, 'a', 6, 'f'],
      ['zadd', 'z1', 'xx', 20, 'b', 7, 'g'],
      ['zadd', 'z1', 'gt', 'ch', 0, 'c', 30, 'd', 8, 'h'],
      ['zadd', 'z1', 'lt', 1, 'e', 100, 'f'],
      ['zadd', 'z1', 'incr', 2.5, 'a'],
      ['zincrby', 'z1', -1.25, 'new'],
      ['zadd', 'z1', '-inf', 'minf', '+inf', 'pinf'],
      ['zrem', 'z1', 'g', 'nope'],
      ['zadd', 'z2', 0, 'a', 0, 'b', 0, 'c', 0, 'd', 0, 'e', 0, 'f'],
      ['zremrangebylex', 'z2', '[b', '(d'],
      ['zremrangebyscore', 'z1', '(1', 3],
      ['zremrangebyrank', 'z1', 0, 0],
      ['zremrangebyrank', 'z1', -2, -1],
      ['zpopmin', 'z1'],
      ['zpopmax', 'z1', 2],
      ['bzpopmin', 'z2', 0.01],
      ['zmpop', 1, 'z2', 'max', 'count', 2],
      ['zadd', 'za', 1, 'x', 2, 'y', 3, 'z'],
      ['zadd', 'zb', 10, 'y', 20, 'z', 30, 'w'],
      ['sadd', 'zs', 'x', 'w'],
      ['zunionstore', 'zu', 3, 'za', 'zb', 'zs', 'weights', 1, 2, 3],
      ['zinterstore', 'zi', 2, 'za', 'zb', 'aggregate', 'max'],
      ['zunionstore', 'zmin', 2, 'za', 'zb', 'aggregate', 'min'],
      ['zdiffstore', 'zd', 2, 'za', 'zb'],
      ['zrangestore', 'zr', 'za', 0, 1],
      ['zadd', 'zinf', '+inf', 'a'],
      ['zadd', 'zninf', '-inf', 'a'],
      ['zunionstore', 'znan', 2, 'zinf', 'zninf'],
      ['geoadd', 'geo', 13.361389, 38.115556, 'Palermo', 15.087269, 37.502669, 'Catania'],
      ['geosearchstore', 'geo2', 'geo', 'fromlonlat', 15, 37, 'byradius', 200, 'km', 'asc'],
      ['zadd', 'zgone', 1, 'a'],
      ['zrem', 'zgone', 'a'],
    ]);
    await expectAgree();
  });

  it('hashes: hset/hsetnx/hmset/hincrby/hincrbyfloat/hdel', async () => {
    await h.run([
      ['hset', 'h1', 'a', 1, 'b', 2, 'c', 3],
      ['hsetnx', 'h1', 'a', 100],
      ['hsetnx', 'h1', 'd', 4],
      ['hmset', 'h1', 'e', 5],
      ['hincrby', 'h1', 'a', 10],
      ['hincrby', 'h1', 'new', -3],
      ['hincrbyfloat', 'h1', 'f', '0.1'],
      ['hincrbyfloat', 'h1', 'f', '0.2'],
      ['hdel', 'h1', 'b', 'zz'],
      ['hset', 'h2', 'x', 'y'],
      ['hdel', 'h2', 'x'],
      ['hset', 'h3', Buffer.from([0xff, 0x00]), Buffer.from([0x80])],
    ]);
    await expectAgree();
  });

  it('streams: xadd/xtrim/xdel/xsetid and consumer groups', async () => {
    await h.run([
      ['xadd', 'x1', '1-1', 'f', 'v'],
      ['xadd', 'x1', '*', 'f', 'v2'],
      ['xadd', 'x1', '*', 'g', 'w'],
      ['xadd', 'x1', 'maxlen', '=', 2, '*', 'h', 'x'],
      ['xadd', 'x1', 'maxlen', '~', 1, '*', 'i', 'y'],
      ['xdel', 'x1', '1-1'],
      ['xadd', 'x2', '5-0', 'a', 'b'],
      ['xadd', 'x2', '6-*', 'a', 'b'],
      ['xadd', 'x2', '6-*', 'a', 'c'],
      ['xdel', 'x2', '6-0'],
      ['xtrim', 'x2', 'minid', '6-1'],
      ['xadd', 'x3', 'nomkstream', '*', 'a', 'b'],
      ['xadd', 'x4', '*', 'a', 1],
      ['xadd', 'x4', '*', 'a', 2],
      ['xadd', 'x4', '*', 'a', 3],
      ['xgroup', 'create', 'x4', 'g1', '0'],
      ['xgroup', 'create', 'x5', 'g1', '$', 'mkstream'],
      ['xreadgroup', 'group', 'g1', 'c1', 'count', 2, 'streams', 'x4', '>'],
      ['xack', 'x4', 'g1', '0-0'],
      ['xgroup', 'createconsumer', 'x4', 'g1', 'c2'],
      ['xgroup', 'setid', 'x4', 'g1', '0'],
      ['xsetid', 'x2', '99-0'],
      ['xtrim', 'x4', 'maxlen', 1],
    ]);
    await expectAgree();
  });

  it('keyspace: expire/persist/rename/copy/move/restore/swapdb/flushdb/scripts/transactions', async () => {
    const c = h.redis;
    await c.set('dumped', 'payload-value');
    const dump = await c.dumpBuffer('dumped');
    await h.run([
      ['set', 'k1', 'v1'],
      ['expire', 'k1', 1000],
      ['pexpire', 'k1', 2000000],
      ['persist', 'k1'],
      ['expireat', 'k1', Math.floor(Date.now() / 1000) + 5000],
      ['rename', 'k1', 'k2'],
      ['set', 'k3', 'x'],
      ['renamenx', 'k2', 'k3'],
      ['renamenx', 'k2', 'k4'],
      ['copy', 'k4', 'k5'],
      ['copy', 'k4', 'k5', 'replace'],
      ['copy', 'k4', 'k6', 'db', 1],
      ['move', 'k5', 2],
      ['restore', 'r1', 0, dump!],
      ['restore', 'r1', 100000, dump!, 'replace'],
      ['set', 'gone', 'x'],
      ['pexpire', 'gone', 1],
      ['select', 1],
      ['set', 'db1key', 'v'],
      ['swapdb', 0, 3],
      [
        'eval',
        "redis.call('set', KEYS[1], 'lua'); redis.call('rpush', KEYS[2], 'a', 'b'); return 1",
        2,
        'ev1',
        'ev2',
      ],
      ['multi'],
      ['set', 't1', 1],
      ['incr', 't1'],
      ['lpush', 'tl', 'x'],
      ['exec'],
      ['swapdb', 0, 3],
      ['sort', 'tl', 'alpha', 'store', 'sorted'],
    ]);
    await new Promise((r) => setTimeout(r, 20));
    await h.run([['get', 'gone']]);
    await expectAgree();
    await h.run([['flushdb'], ['set', 'after', 'flush']]);
    await expectAgree();
    await h.run([['flushall']]);
    await expectAgree();
  });

  it('a randomized workload over every type agrees', async () => {
    const r = rng(42);
    const pick = <T>(a: T[]): T => a[Math.floor(r() * a.length)]!;
    const k = () => `rk${Math.floor(r() * 30)}`;
    const m = () => `m${Math.floor(r() * 12)}`;
    const n = () => Math.floor(r() * 20) - 5;
    const gens: Array<() => Array<string | number>> = [
      () => ['set', k(), `v${n()}`],
      () => ['append', k(), 'ab'],
      () => ['incrby', k(), n()],
      () => ['setrange', k(), Math.floor(r() * 8), 'zz'],
      () => ['rpush', k(), m(), m()],
      () => ['lpush', k(), m()],
      () => ['lpop', k(), 2],
      () => ['lrem', k(), n(), m()],
      () => ['ltrim', k(), n(), n()],
      () => ['linsert', k(), pick(['before', 'after']), m(), m()],
      () => ['lmove', k(), k(), pick(['left', 'right']), pick(['left', 'right'])],
      () => ['sadd', k(), m(), m()],
      () => ['srem', k(), m()],
      () => ['smove', k(), k(), m()],
      () => ['sunionstore', k(), k(), k()],
      () => ['sinterstore', k(), k(), k()],
      () => ['zadd', k(), ...(r() < 0.5 ? [pick(['nx', 'xx', 'gt', 'lt'])] : []), n(), m()],
      () => ['zincrby', k(), n(), m()],
      () => ['zrem', k(), m()],
      () => ['zremrangebyrank', k(), n(), n()],
      () => ['zremrangebyscore', k(), n(), n()],
      () => ['zpopmin', k()],
      () => ['zunionstore', k(), 2, k(), k()],
      () => ['hset', k(), m(), `${n()}`],
      () => ['hincrby', k(), m(), n()],
      () => ['hdel', k(), m()],
      () => ['xadd', k(), 'maxlen', Math.floor(r() * 5), '*', m(), 'v'],
      () => ['del', k()],
      () => ['expire', k(), 1000 + Math.floor(r() * 1000)],
      () => ['persist', k()],
      () => ['rename', k(), k()],
      () => ['copy', k(), k(), 'replace'],
      () => ['spop', k()],
    ];
    for (let round = 0; round < 4; round++) {
      const cmds: Array<Array<string | number>> = [];
      for (let i = 0; i < 500; i++) cmds.push(pick(gens)());
      await h.run(cmds, 37);
      await expectAgree();
    }
    const [row] = await pgQuery<{ n: string }>(
      `SELECT count(*) AS n FROM "${h.schema}".keys WHERE member_rows IS NOT NULL`,
    );
    if ('bigCollectionMembers' in sinkOptions) expect(Number(row?.n)).toBeGreaterThan(0);
    else expect(Number(row?.n)).toBe(0);
  });
});
