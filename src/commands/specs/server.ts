import { ArgError } from '../args.js';
import type { CommandSpec } from '../types.js';
import { cmd } from './define.js';

/** HyperLogLogs are strings (TYPE says so), so their events carry `type: "string"`. */
export const hllCommands: CommandSpec[] = [
  cmd('pfadd', [1, 1, 1], ['pfadd'], (a, e) => {
    const key = a.next('key');
    e.emit('pfadd', key, 'string', { elements: a.rest() });
  }),
  cmd('pfmerge', [1, -1, 1], ['pfmerge'], (a, e) => {
    const key = a.next('destkey');
    e.emit('pfmerge', key, 'string', { sources: a.rest() });
  }),
  // PFCOUNT on one key stores the recomputed cardinality in the HLL header and bumps server.dirty, so the master
  // propagates it verbatim; the logical value is unchanged, only the cached bytes differ.
  cmd('pfcount', [1, -1, 1], ['hll-cache'], (a, e) => {
    const key = a.next('key');
    if (!a.done) throw new ArgError('multi-key PFCOUNT writes nothing');
    e.emit('hll-cache', key, 'string');
  }),
  // PFDEBUG TODENSE/GETREG convert a sparse HLL to the dense encoding and are propagated verbatim (verified on 7.0).
  cmd('pfdebug', [2, 2, 1], ['hll-cache'], (a, e) => {
    a.next('subcommand');
    const key = a.next('key');
    a.end();
    e.emit('hll-cache', key, 'string');
  }),
];

/** FUNCTION LOAD/DELETE/FLUSH/RESTORE are propagated verbatim (7.0+); they change the server's library set. */
export const functionCommands: CommandSpec[] = [
  cmd('function|load', [0, 0, 0], ['function-load'], (a, e) => {
    const replace = a.eat('replace');
    const code = a.next('function code');
    a.end();
    e.emit('function-load', undefined, undefined, { code, replace });
  }),
  cmd('function|delete', [0, 0, 0], ['function-delete'], (a, e) => {
    const library = a.next('library name');
    a.end();
    e.emit('function-delete', undefined, undefined, { library });
  }),
  cmd('function|flush', [0, 0, 0], ['function-flush'], (a, e) => {
    let async = false;
    if (!a.done) {
      const t = a.token();
      if (t === 'async') async = true;
      else if (t !== 'sync') throw new ArgError(`unknown FUNCTION FLUSH option ${t}`);
    }
    a.end();
    e.emit('function-flush', undefined, undefined, { async });
  }),
  cmd('function|restore', [0, 0, 0], ['function-restore'], (a, e) => {
    const payload = a.next('serialized value');
    let policy: 'append' | 'replace' | 'flush' = 'append';
    if (!a.done) {
      const p = a.token();
      if (p !== 'flush' && p !== 'append' && p !== 'replace') throw new ArgError('invalid policy');
      policy = p;
    }
    a.end();
    e.emit('function-restore', undefined, undefined, { payload, policy });
  }),
];

/**
 * PUBLISH/SPUBLISH are not writes but a non-cluster master propagates them to its replicas (forceCommandPropagation
 * in publishCommand) so that replica subscribers get the message; they become `publish` events without a key.
 */
export const pubsubCommands: CommandSpec[] = [
  cmd('publish', [0, 0, 0], ['publish'], (a, e) => {
    const channel = a.next('channel');
    const message = a.next('message');
    a.end();
    e.emit('publish', undefined, undefined, { channel, message, sharded: false });
  }),
  cmd('spublish', [1, 1, 1], ['publish'], (a, e) => {
    const channel = a.next('shardchannel');
    const message = a.next('message');
    a.end();
    e.emit('publish', undefined, undefined, { channel, message, sharded: true });
  }),
];
