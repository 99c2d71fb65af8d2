import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { redisBinary } from '../harness/redisVersions.js';
import { useTestScope } from '../harness/TestScope.js';

const scope = useTestScope();
const redis28 = await redisBinary('2.8');

describe('stats', () => {
  // Redis 2.8 propagates EVAL verbatim: the one kind of command a real master sends that redtail cannot normalize.
  it.skipIf(!redis28 && process.env.CI !== 'true')(
    'count unknown commands, which still reach the sinks as op command',
    async () => {
      const master = await scope.server({ binary: redis28! });
      const dir = mkdtempSync(join(tmpdir(), 'redtail-stats-'));
      const p = scope.redtail(['run', '--master', master.url(), '--checkpoint', join(dir, 'cp.json')]);
      await p.waitFor(() => p.events.some((e) => e.op === 'snapshot-end'), 'the snapshot');
      await master.client().eval("redis.call('set', KEYS[1], 'v')", 1, 'scripted');
      await master.client().set('plain', 'v');
      await p.waitFor(() => p.events.some((e) => e.key === 'plain'), 'the writes');
      expect(await p.stop('SIGTERM')).toMatchObject({ code: 0 });
      const unknown = p.events.filter((e) => e.op === 'command');
      expect(unknown).toHaveLength(1);
      expect(unknown[0]).toMatchObject({ unknown: true });
      const stopped = p.logs().find((l) => l.msg === 'stopped') as { commands: Record<string, unknown> };
      expect(stopped.commands).toMatchObject({ unknown: 1, unknownByCommand: { eval: 1 } });
    },
  );
});
