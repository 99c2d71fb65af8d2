import { describe, expect, it } from 'vitest';
import { redisBinaryInfo } from '../../harness/redisVersions.js';
import { useTestScope } from '../../harness/TestScope.js';
import { mirrorCaughtUp, mirrorRun, pgQuery } from './helpers.js';

/**
 * Module values (here Redis 8.0's built-in vector sets) have no mirror encoding. The snapshot leaves them out with a
 * warning; so must the stream, whose VADD the mirror can only follow by fetching the key, and a fetch that returns
 * a module value must not stall the sink (it used to be retried forever, silently, holding every later change back).
 */
const scope = useTestScope();
const info = await redisBinaryInfo('8.0');

describe.skipIf(info.path === null)('module values and the Postgres mirror (Redis 8.0 vector sets)', () => {
  it('leaves vector sets out, from the snapshot and from the stream, and keeps mirroring the rest', async () => {
    const master = await scope.server({ binary: info.path! });
    const c = master.client();
    await c.call('VADD', 'vs:snap', 'VALUES', '3', '0.1', '0.2', '0.3', 'a');
    await c.set('before', '1');
    const { schema, start } = mirrorRun(scope, master, 'mod');
    const rt = start();
    await mirrorCaughtUp(master, schema);
    await c.call('VADD', 'vs:live', 'VALUES', '3', '1', '2', '3', 'b');
    await c.set('after', '2');
    await c.call('VADD', 'vs:snap', 'VALUES', '3', '0.4', '0.5', '0.6', 'c');
    await c.set('after2', '3');
    await mirrorCaughtUp(master, schema);
    const rows = await pgQuery<{ key: string; type: string }>(
      `SELECT key_text AS key, type FROM "${schema}".keys ORDER BY key_text`,
    );
    expect(rows).toEqual([
      { key: 'after', type: 'string' },
      { key: 'after2', type: 'string' },
      { key: 'before', type: 'string' },
    ]);
    const skipped = rt
      .logs()
      .filter((l) => String(l.msg).startsWith('module values cannot be mirrored'))
      .map((l) => l.key);
    expect(new Set(skipped)).toEqual(new Set(['vs:snap', 'vs:live']));
    expect((await rt.stop('SIGTERM')).code).toBe(0);
  });
});
