import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { RedisServer } from '../../harness/RedisServer.js';
import { redisBinaryInfo } from '../../harness/redisVersions.js';
import { useTestScope } from '../../harness/TestScope.js';
import { dropSchema, PG_URL, pgQuery, uniqueSchema } from './helpers.js';

/**
 * Module values (here Redis 8.0's built-in vector sets) have no mirror encoding. The snapshot leaves them out with a
 * warning; so must the stream, whose VADD the mirror can only follow by fetching the key, and a fetch that returns
 * a module value must not stall the sink (it used to be retried forever, silently, holding every later change back).
 */
const scope = useTestScope();
const info = await redisBinaryInfo('8.0');

async function mirrorOffset(schema: string): Promise<number> {
  const rows = await pgQuery<{ offset: string }>(`SELECT "offset" FROM "${schema}".checkpoints`).catch(
    () => [],
  );
  return Number(rows[0]?.offset ?? -1);
}

async function caughtUp(master: RedisServer, schema: string): Promise<void> {
  const target = Number((await master.info('replication')).master_repl_offset);
  const deadline = Date.now() + 60_000;
  while ((await mirrorOffset(schema)) < target) {
    if (Date.now() > deadline) throw new Error(`the mirror did not reach offset ${target}`);
    await sleep(50);
  }
}

describe.skipIf(info.path === null)('module values and the Postgres mirror (Redis 8.0 vector sets)', () => {
  it('leaves vector sets out, from the snapshot and from the stream, and keeps mirroring the rest', async () => {
    const master = await scope.server({ binary: info.path! });
    const c = master.client();
    await c.call('VADD', 'vs:snap', 'VALUES', '3', '0.1', '0.2', '0.3', 'a');
    await c.set('before', '1');
    const schema = uniqueSchema('mod');
    scope.defer(() => dropSchema(schema));
    const checkpoint = join(mkdtempSync(join(tmpdir(), 'redtail-mod-')), 'cp.json');
    const rt = scope.redtail([
      'run',
      '--log-level',
      'warn',
      '--master',
      master.url(),
      '--sink',
      `${PG_URL}?schema=${schema}`,
      '--checkpoint',
      checkpoint,
    ]);
    await caughtUp(master, schema);
    await c.call('VADD', 'vs:live', 'VALUES', '3', '1', '2', '3', 'b');
    await c.set('after', '2');
    await c.call('VADD', 'vs:snap', 'VALUES', '3', '0.4', '0.5', '0.6', 'c');
    await c.set('after2', '3');
    await caughtUp(master, schema);
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
