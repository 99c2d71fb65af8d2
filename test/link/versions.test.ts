import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisServer } from '../harness/RedisServer.js';
import { RedtailProcess } from '../harness/RedtailProcess.js';
import { REDIS_VERSIONS, redisBinary } from '../harness/redisVersions.js';

const binaries = Object.fromEntries(
  await Promise.all(REDIS_VERSIONS.map(async (v) => [v, await redisBinary(v)])),
);
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const f of cleanup.splice(0)) await f();
});

/**
 * The handshake and stream against every master version this machine can run: 2.8 answers REPLCONF capa with an
 * error and has no ACL, 6.2 and 7.0 differ in what they rewrite. CI must have them all (see redisVersions.test.ts).
 */
describe.each(REDIS_VERSIONS)('master redis %s', (version) => {
  it.skipIf(!binaries[version] && process.env.CI !== 'true')(
    'full sync, stream, partial resync after the link is killed, clean stop',
    async () => {
      const master = await RedisServer.start({ binary: binaries[version]!, password: 'pw' });
      cleanup.push(() => master.stop());
      const dir = mkdtempSync(join(tmpdir(), 'redtail-ver-'));
      const proc = RedtailProcess.start([
        'run',
        '--master',
        master.url(),
        '--checkpoint',
        join(dir, 'cp.json'),
      ]);
      cleanup.push(() => proc.stop('SIGKILL'));
      await proc.waitFor(() => proc.events.some((e) => e.op === 'snapshot-end'), 'snapshot end');
      const c = master.client();
      for (let i = 0; i < 100; i++) await c.rpush('list', String(i));
      // `TYPE slave` is the spelling every version since 2.8.12 accepts.
      await c.call('CLIENT', 'KILL', 'TYPE', 'slave');
      for (let i = 100; i < 200; i++) await c.rpush('list', String(i));
      const end = Number((await master.info('replication')).master_repl_offset);
      await proc.waitForOffset(end);
      const pushed = proc.events.filter((e) => e.op === 'push' && e.key === 'list');
      expect(pushed.map((e) => (e.elements as string[]).join(','))).toEqual(
        Array.from({ length: 200 }, (_, i) => String(i)),
      );
      expect(master.log()).toMatch(/Partial resynchronization request .*accepted/);
      const { code } = await proc.stop('SIGTERM');
      expect(code).toBe(0);
    },
  );
});
