import { ArgError, type Args, numbered } from '../args.js';
import type { CommandSpec, Emitter } from '../types.js';
import { cmd } from './define.js';

type Side = 'left' | 'right';

function side(a: Args): Side {
  const t = a.token();
  if (t !== 'left' && t !== 'right') throw new ArgError(`expected LEFT or RIGHT, got ${t}`);
  return t;
}

function push(name: string, s: Side): CommandSpec {
  return cmd(name, [1, 1, 1], ['push'], (a, e) => {
    const key = a.next('key');
    const elements = a.rest();
    if (elements.length === 0) throw new ArgError('missing element');
    e.put({
      v: 1,
      op: 'push',
      db: e.ctx.db,
      key,
      type: 'list',
      side: s,
      elements,
      source: e.source(),
      ts: e.ts,
    });
  });
}

function emitPop(e: Emitter, key: Buffer, s: Side, count: number): void {
  e.emit('pop', key, 'list', { side: s, count });
}

function pop(name: string, s: Side): CommandSpec {
  return cmd(name, [1, 1, 1], ['pop'], (a, e) => {
    const key = a.next('key');
    const count = a.done ? 1 : a.int('count');
    a.end();
    emitPop(e, key, s, count);
  });
}

/**
 * Blocking and multi-key pops are rewritten by the master into a pop on the key that was served (BLPOP → LPOP,
 * LMPOP → LPOP key count). A verbatim form is only deterministic with a single key; with several keys the served one
 * is unknown, so parsing fails and the command is passed on as `command`.
 */
function single(keys: Buffer[]): Buffer {
  if (keys.length !== 1) throw new ArgError('multi-key pop is ambiguous without the master rewrite');
  return keys[0]!;
}

function bpop(name: string, s: Side): CommandSpec {
  return cmd(
    name,
    [1, -2, 1],
    ['pop'],
    (a, e) => {
      const keys = a.argv.slice(1, -1);
      a.i = a.argv.length - 1;
      a.float('timeout');
      emitPop(e, single(keys), s, 1);
    },
    `${s === 'left' ? 'LPOP' : 'RPOP'} key`,
  );
}

function mpop(a: Args, e: Emitter): void {
  const keys = numbered(a, 'keys');
  const s = side(a);
  let count = 1;
  if (a.eat('count')) count = a.int('count');
  a.end();
  emitPop(e, single(keys), s, count);
}

function lmove(name: string, fixed: [Side, Side] | undefined, blocking: boolean): CommandSpec {
  return cmd(
    name,
    [1, 2, 1],
    ['lmove'],
    (a, e) => {
      const key = a.next('source');
      const destKey = a.next('destination');
      const [from, to] = fixed ?? [side(a), side(a)];
      if (blocking) a.float('timeout');
      a.end();
      e.emit('lmove', key, 'list', { destKey, from, to });
    },
    blocking || name === 'rpoplpush'
      ? fixed
        ? 'RPOPLPUSH source destination'
        : 'LMOVE source destination from to'
      : undefined,
  );
}

export const listCommands: CommandSpec[] = [
  push('lpush', 'left'),
  push('lpushx', 'left'),
  push('rpush', 'right'),
  push('rpushx', 'right'),
  pop('lpop', 'left'),
  pop('rpop', 'right'),
  bpop('blpop', 'left'),
  bpop('brpop', 'right'),
  cmd('lmpop', [0, 0, 0], ['pop'], mpop, 'LPOP|RPOP key count'),
  cmd(
    'blmpop',
    [0, 0, 0],
    ['pop'],
    (a, e) => {
      a.float('timeout');
      mpop(a, e);
    },
    'LPOP|RPOP key count',
  ),
  lmove('lmove', undefined, false),
  lmove('blmove', undefined, true),
  lmove('rpoplpush', ['right', 'left'], false),
  lmove('brpoplpush', ['right', 'left'], true),
  cmd('linsert', [1, 1, 1], ['linsert'], (a, e) => {
    const key = a.next('key');
    const position = a.token();
    if (position !== 'before' && position !== 'after') throw new ArgError('expected BEFORE or AFTER');
    const pivot = a.next('pivot');
    const element = a.next('element');
    a.end();
    e.emit('linsert', key, 'list', { position, pivot, element });
  }),
  cmd('lset', [1, 1, 1], ['lset'], (a, e) => {
    const key = a.next('key');
    const index = a.int('index');
    const element = a.next('element');
    a.end();
    e.emit('lset', key, 'list', { index, element });
  }),
  cmd('lrem', [1, 1, 1], ['lrem'], (a, e) => {
    const key = a.next('key');
    const count = a.int('count');
    const element = a.next('element');
    a.end();
    e.emit('lrem', key, 'list', { count, element });
  }),
  cmd('ltrim', [1, 1, 1], ['ltrim'], (a, e) => {
    const key = a.next('key');
    const start = a.int('start');
    const stop = a.int('stop');
    a.end();
    e.emit('ltrim', key, 'list', { start, stop });
  }),
];
