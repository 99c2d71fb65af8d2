import { ArgError, type Args, numbered, score } from '../args.js';
import type { CommandSpec, Emitter } from '../types.js';
import { cmd } from './define.js';
import { emitStore } from './keys.js';

const ZADD_FLAGS = new Set(['nx', 'xx', 'gt', 'lt', 'ch', 'incr']);

/**
 * ZADD is propagated verbatim with its flags: NX/XX/GT/LT decide per member on the replica too, so consumers get them
 * (lower-case, in the order given). With INCR the score is an increment.
 */
function zadd(a: Args, e: Emitter): void {
  const key = a.next('key');
  const flags: string[] = [];
  // A score starts with a digit, a sign or a dot (or is inf): only a letter can begin a flag, so the usual ZADD
  // key score member is told apart without making a string of the score.
  while (!a.done && a.startsWithLetter()) {
    const b = a.peek()!;
    if (b.length > 4) break;
    const t = b.toString('latin1').toLowerCase();
    if (!ZADD_FLAGS.has(t)) break;
    flags.push(t);
    a.i++;
  }
  if (a.left === 0 || a.left % 2 !== 0) throw new ArgError('ZADD needs score/member pairs');
  const members: [Buffer, number | string][] = [];
  while (!a.done) {
    const s = score(a.float('score'));
    members.push([a.next('member'), s]);
  }
  e.put({ v: 1, op: 'zadd', db: e.ctx.db, key, type: 'zset', members, flags, source: e.source(), ts: e.ts });
}

function zpop(name: string, side: 'min' | 'max'): CommandSpec {
  return cmd(name, [1, 1, 1], ['zpop'], (a, e) => {
    const key = a.next('key');
    const count = a.done ? 1 : a.int('count');
    a.end();
    e.emit('zpop', key, 'zset', { side, count });
  });
}

/** See lists.ts: the master rewrites the blocking/multi-key forms into ZPOPMIN/ZPOPMAX on the served key. */
function single(keys: Buffer[]): Buffer {
  if (keys.length !== 1) throw new ArgError('multi-key pop is ambiguous without the master rewrite');
  return keys[0]!;
}

function bzpop(name: string, side: 'min' | 'max'): CommandSpec {
  return cmd(
    name,
    [1, -2, 1],
    ['zpop'],
    (a, e) => {
      const keys = a.argv.slice(1, -1);
      a.i = a.argv.length - 1;
      a.float('timeout');
      e.emit('zpop', single(keys), 'zset', { side, count: 1 });
    },
    `ZPOP${side.toUpperCase()} key`,
  );
}

function zmpop(a: Args, e: Emitter): void {
  const keys = numbered(a, 'keys');
  const side = a.token();
  if (side !== 'min' && side !== 'max') throw new ArgError('expected MIN or MAX');
  const count = a.eat('count') ? a.int('count') : 1;
  a.end();
  e.emit('zpop', single(keys), 'zset', { side, count });
}

function remrange(name: string, by: 'score' | 'rank' | 'lex'): CommandSpec {
  return cmd(name, [1, 1, 1], ['zremrange'], (a, e) => {
    const key = a.next('key');
    if (by === 'rank') {
      const start = a.int('start');
      const stop = a.int('stop');
      a.end();
      e.emit('zremrange', key, 'zset', { by, start, stop });
      return;
    }
    const min = a.next('min');
    const max = a.next('max');
    a.end();
    e.emit('zremrange', key, 'zset', { by, min, max });
  });
}

function setOpStore(name: string): CommandSpec {
  return cmd(name, [1, 1, 1], ['store'], (a, e) => {
    const args = a.argv.slice(1);
    const dest = a.next('destination');
    emitStore(e, name, dest, 'zset', numbered(a, 'keys'), args);
  });
}

const GEO_ADD_FLAGS = new Set(['nx', 'xx', 'ch']);

/** GEOADD is a ZADD with geohash scores; the event keeps the coordinates, which is what a consumer can use. */
function geoadd(a: Args, e: Emitter): void {
  const key = a.next('key');
  const flags: string[] = [];
  while (!a.done && a.peek()!.length <= 2 && GEO_ADD_FLAGS.has(a.peek()!.toString('latin1').toLowerCase()))
    flags.push(a.token());
  if (a.left === 0 || a.left % 3 !== 0) throw new ArgError('GEOADD needs longitude/latitude/member triples');
  const members: [Buffer, number, number][] = [];
  while (!a.done) {
    const lon = a.float('longitude');
    const lat = a.float('latitude');
    members.push([a.next('member'), lon, lat]);
  }
  e.emit('geoadd', key, 'zset', { members, flags });
}

/** GEORADIUS[BYMEMBER] write only with STORE/STOREDIST; the options are scanned after the fixed arguments. */
function georadius(name: string, fixed: number): CommandSpec {
  return cmd(name, [1, 1, 1], ['store'], (a, e) => {
    const args = a.argv.slice(1);
    const key = a.next('key');
    a.i += fixed;
    if (a.i > a.argv.length) throw new ArgError('missing arguments');
    let dest: Buffer | undefined;
    while (!a.done) {
      const t = a.token();
      if (t === 'store' || t === 'storedist') dest = a.next('destination');
      else if (t === 'count') a.int('count');
    }
    if (dest === undefined) throw new ArgError(`${name} without STORE changes nothing`);
    emitStore(e, name, dest, 'zset', [key], args);
  });
}

function rangeStore(name: string): CommandSpec {
  return cmd(name, [1, 2, 1], ['store'], (a, e) => {
    const args = a.argv.slice(1);
    const dest = a.next('destination');
    const src = a.next('source');
    emitStore(e, name, dest, 'zset', [src], args);
  });
}

export const zsetCommands: CommandSpec[] = [
  cmd('zadd', [1, 1, 1], ['zadd'], zadd),
  cmd('zincrby', [1, 1, 1], ['zadd'], (a, e) => {
    const key = a.next('key');
    const s = score(a.float('increment'));
    const member = a.next('member');
    a.end();
    e.emit('zadd', key, 'zset', { members: [[member, s]], flags: ['incr'] });
  }),
  cmd('zrem', [1, 1, 1], ['zrem'], (a, e) => {
    const key = a.next('key');
    const members = a.rest();
    if (members.length === 0) throw new ArgError('missing member');
    e.emit('zrem', key, 'zset', { members });
  }),
  remrange('zremrangebyscore', 'score'),
  remrange('zremrangebyrank', 'rank'),
  remrange('zremrangebylex', 'lex'),
  zpop('zpopmin', 'min'),
  zpop('zpopmax', 'max'),
  bzpop('bzpopmin', 'min'),
  bzpop('bzpopmax', 'max'),
  cmd('zmpop', [0, 0, 0], ['zpop'], zmpop, 'ZPOPMIN|ZPOPMAX key count'),
  cmd(
    'bzmpop',
    [0, 0, 0],
    ['zpop'],
    (a, e) => {
      a.float('timeout');
      zmpop(a, e);
    },
    'ZPOPMIN|ZPOPMAX key count',
  ),
  setOpStore('zunionstore'),
  setOpStore('zinterstore'),
  setOpStore('zdiffstore'),
  rangeStore('zrangestore'),
  cmd(
    'geoadd',
    [1, 1, 1],
    ['geoadd'],
    geoadd,
    'zadd key <geohash score> member (lower-case, one pair per member)',
  ),
  georadius('georadius', 4),
  georadius('georadiusbymember', 3),
  rangeStore('geosearchstore'),
];
