import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizeCommand } from '../../src/commands/normalize.js';
import { RedisServer } from '../harness/RedisServer.js';
import { ReplicationTap } from '../harness/ReplicationTap.js';
import { redisBinary } from '../harness/redisVersions.js';
import { mismatches, Near, toValidJson } from './helpers.js';

/**
 * Masters before 7.0 propagate relative expiries (SET ... PX, EXPIRE, PEXPIRE) instead of absolute ones; redtail
 * turns them into `expireAt` with its receive time and flags them `expireApprox`. Checked against a real 6.2 master
 * when the version matrix can provide one (test/harness/redisVersions.ts); skipped otherwise.
 */
const binary = await redisBinary('6.2');

describe.skipIf(binary === null)('a Redis 6.2 master (relative expiries on the stream)', () => {
  let master: RedisServer;
  let tap: ReplicationTap;
  let r: Redis;

  beforeAll(async () => {
    master = await RedisServer.start({ binary: binary! });
    r = master.client();
    tap = await ReplicationTap.connect(master.port);
  });

  afterAll(async () => {
    tap?.close();
    await master?.stop();
  });

  async function propagate(cmd: (string | number)[]) {
    await r.set('k', 'v');
    await tap.waitForOffset(Number((await master.info('replication')).master_repl_offset));
    tap.drain();
    const t = Date.now();
    await r.call(String(cmd[0]), ...cmd.slice(1));
    await tap.waitForOffset(Number((await master.info('replication')).master_repl_offset));
    const got = tap.drain();
    const events = got.flatMap((p) =>
      normalizeCommand(p.args, { db: p.db, replid: tap.replid, offset: p.offset, ts: p.receivedAt }).map(
        toValidJson,
      ),
    );
    return { t, got: got.map((p) => p.args.map(String).join(' ')), events };
  }

  const cases: [(string | number)[], string, string][] = [
    [['SET', 'k', 'v', 'EX', 100], 'SET k v PX 100000', 'set'],
    [['SETEX', 'k', 100, 'v'], 'SET k v PX 100000', 'set'],
    [['EXPIRE', 'k', 100], 'EXPIRE k 100', 'expire'],
    [['PEXPIRE', 'k', 100_000], 'PEXPIRE k 100000', 'expire'],
    [['GETEX', 'k', 'EX', 100], 'PEXPIRE k 100000', 'expire'],
  ];
  for (const [cmd, wire, op] of cases) {
    it(`${cmd.join(' ')} arrives as ${wire} and becomes an approximate absolute expiry`, async () => {
      const { t, got, events } = await propagate(cmd);
      expect(got).toEqual([wire]);
      expect(
        mismatches(events, [{ op, key: 'k', expireAt: new Near(t + 100_000, 2000), expireApprox: true }]),
      ).toEqual([]);
    });
  }
});
