import { ArgError } from '../args.js';
import type { CommandSpec } from '../types.js';
import { cmd } from './define.js';
import { emitStore } from './keys.js';

function members(name: string, op: 'sadd' | 'srem'): CommandSpec {
  return cmd(name, [1, 1, 1], [op], (a, e) => {
    const key = a.next('key');
    const list = a.rest();
    if (list.length === 0) throw new ArgError('missing member');
    e.put({ v: 1, op, db: e.ctx.db, key, type: 'set', members: list, source: e.source(), ts: e.ts });
  });
}

function store(name: string): CommandSpec {
  return cmd(name, [1, -1, 1], ['store'], (a, e) => {
    const args = a.argv.slice(1);
    const dest = a.next('destination');
    const sources = a.rest();
    if (sources.length === 0) throw new ArgError('missing source key');
    emitStore(e, name, dest, 'set', sources, args);
  });
}

export const setCommands: CommandSpec[] = [
  members('sadd', 'sadd'),
  members('srem', 'srem'),
  cmd('smove', [1, 2, 1], ['smove'], (a, e) => {
    const key = a.next('source');
    const destKey = a.next('destination');
    const member = a.next('member');
    a.end();
    e.emit('smove', key, 'set', { destKey, member });
  }),
  store('sinterstore'),
  store('sunionstore'),
  store('sdiffstore'),
];
