import { ArgError, type Args } from '../args.js';
import { at, expiryFields, NO_TTL } from '../expiry.js';
import type { CommandSpec, Emitter, RedisType } from '../types.js';
import { cmd } from './define.js';

function delEach(a: Args, e: Emitter): void {
  if (a.done) throw new ArgError('missing key');
  while (!a.done) e.emit('del', a.next(), undefined);
}

/**
 * EXPIRE family. Conditions (NX/XX/GT/LT, 7.0+) are dropped: only an expiry that was applied is propagated, and
 * 7.0+ masters send it as `PEXPIREAT key <abs-ms>`. A time in the past means the key is gone; masters send DEL in
 * that case, and a consumer given such an `expire` event must treat it the same way.
 */
function expire(name: string, unitMs: number, relative: boolean): CommandSpec {
  return cmd(
    name,
    [1, 1, 1],
    ['expire'],
    (a, e) => {
      const key = a.next('key');
      const t = a.int('time');
      if (!a.done) {
        const c = a.token();
        if (c !== 'nx' && c !== 'xx' && c !== 'gt' && c !== 'lt') throw new ArgError(`unknown option ${c}`);
      }
      a.end();
      // What expiryFields gives, as one literal (PEXPIREAT is on the hot path: Emitter.put).
      const { expireAt, approx } = at(t * unitMs, relative, e.ts);
      const { db } = e.ctx;
      if (approx)
        e.put({ v: 1, op: 'expire', db, key, expireAt, expireApprox: true, source: e.source(), ts: e.ts });
      else e.put({ v: 1, op: 'expire', db, key, expireAt, source: e.source(), ts: e.ts });
    },
    name === 'pexpireat' ? undefined : 'PEXPIREAT key ms',
  );
}

/** Shared by the `*STORE` family: the destination is replaced by a result only the master computed. */
export function emitStore(
  e: Emitter,
  command: string,
  dest: Buffer,
  type: RedisType,
  sources: Buffer[],
  args: Buffer[],
): void {
  e.emit('store', dest, type, { command, sources, args });
}

function sort(a: Args, e: Emitter): void {
  const args = a.argv.slice(1);
  const key = a.next('key');
  let dest: Buffer | undefined;
  while (!a.done) {
    const tok = a.token();
    if (tok === 'by' || tok === 'get') a.next(tok);
    else if (tok === 'limit') {
      a.int('offset');
      a.int('count');
    } else if (tok === 'store') dest = a.next('destination');
    else if (tok !== 'asc' && tok !== 'desc' && tok !== 'alpha')
      throw new ArgError(`unknown SORT option ${tok}`);
  }
  // SORT without STORE only reads; a master never propagates it.
  if (dest === undefined) throw new ArgError('SORT without STORE changes nothing');
  emitStore(e, 'sort', dest, 'list', [key], args);
}

function restore(a: Args, e: Emitter): void {
  const key = a.next('key');
  const ttl = a.int('ttl');
  const payload = a.next('serialized value');
  let replace = false;
  let absttl = false;
  let idleTime: number | undefined;
  let frequency: number | undefined;
  while (!a.done) {
    const tok = a.token();
    if (tok === 'replace') replace = true;
    else if (tok === 'absttl') absttl = true;
    else if (tok === 'idletime') idleTime = a.int('idletime');
    else if (tok === 'freq') frequency = a.int('freq');
    else throw new ArgError(`unknown RESTORE option ${tok}`);
  }
  // RESTORE's ttl 0 means "no expiry"; 7.0+ masters propagate relative ttls unchanged, so they stay approximate.
  const x = ttl === 0 ? NO_TTL : at(ttl, !absttl, e.ts);
  e.emit('restore', key, undefined, { payload, replace, idleTime, frequency, ...expiryFields(x) });
}

function flush(op: 'flushdb' | 'flushall'): (a: Args, e: Emitter) => void {
  return (a, e) => {
    let async = false;
    if (!a.done) {
      const tok = a.token();
      if (tok === 'async') async = true;
      else if (tok !== 'sync') throw new ArgError(`unknown ${op} option ${tok}`);
    }
    a.end();
    e.emit(op, undefined, undefined, { async });
  };
}

export const keyCommands: CommandSpec[] = [
  cmd('del', [1, -1, 1], ['del'], delEach),
  cmd('unlink', [1, -1, 1], ['del'], delEach),
  expire('expire', 1000, true),
  expire('pexpire', 1, true),
  expire('expireat', 1000, false),
  expire('pexpireat', 1, false),
  cmd('persist', [1, 1, 1], ['persist'], (a, e) => {
    const key = a.next('key');
    a.end();
    e.emit('persist', key, undefined, { expireAt: null });
  }),
  cmd('rename', [1, 2, 1], ['rename'], (a, e) => {
    const key = a.next('key');
    const destKey = a.next('newkey');
    a.end();
    e.emit('rename', key, undefined, { destKey });
  }),
  // Propagated only when the rename happened, so it is a plain rename on the stream.
  cmd('renamenx', [1, 2, 1], ['rename'], (a, e) => {
    const key = a.next('key');
    const destKey = a.next('newkey');
    a.end();
    e.emit('rename', key, undefined, { destKey });
  }),
  cmd('move', [1, 1, 1], ['move'], (a, e) => {
    const key = a.next('key');
    const destDb = a.int('db');
    a.end();
    e.emit('move', key, undefined, { destDb });
  }),
  cmd('copy', [1, 2, 1], ['copy'], (a, e) => {
    const key = a.next('source');
    const destKey = a.next('destination');
    let destDb = e.ctx.db;
    let replace = false;
    while (!a.done) {
      const tok = a.token();
      if (tok === 'db') destDb = a.int('db');
      else if (tok === 'replace') replace = true;
      else throw new ArgError(`unknown COPY option ${tok}`);
    }
    e.emit('copy', key, undefined, { destKey, destDb, replace });
  }),
  cmd('restore', [1, 1, 1], ['restore'], restore),
  cmd('restore-asking', [1, 1, 1], ['restore'], restore),
  cmd('flushdb', [0, 0, 0], ['flushdb'], flush('flushdb')),
  cmd('flushall', [0, 0, 0], ['flushall'], flush('flushall')),
  cmd('swapdb', [0, 0, 0], ['swapdb'], (a, e) => {
    const db1 = a.int('index1');
    const db2 = a.int('index2');
    a.end();
    e.emit('swapdb', undefined, undefined, { db1, db2 });
  }),
  cmd('sort', [1, 1, 1], ['store'], sort),
];
