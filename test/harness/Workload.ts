import type { Redis } from 'ioredis';
import { prng } from './prng.js';

/** Re-exported for tests that drive a workload and need the same PRNG. */
export { prng };

/**
 * A steady write workload over every data type, with expiries, deletes, MULTI/EXEC transactions and a Lua script,
 * on a small keyspace so that commands collide. It runs until `stop()` and can switch to another master
 * (failover) with `retarget`.
 */
export class Workload {
  private running = false;
  private loop: Promise<void> | null = null;
  private client: Redis;
  commands = 0;
  errors = 0;

  constructor(
    client: Redis,
    private readonly seed = 1,
    private readonly pauseMs = 1,
  ) {
    this.client = client;
  }

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  retarget(client: Redis): void {
    this.client = client;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private async run(): Promise<void> {
    const rnd = prng(this.seed);
    const pick = (n: number) => Math.floor(rnd() * n);
    while (this.running) {
      const c = this.client;
      const k = pick(50);
      try {
        switch (pick(12)) {
          case 0:
            await c.set(`str:${k}`, `v${this.commands}`, 'EX', 1000 + pick(1000));
            break;
          case 1:
            await c.incrby(`cnt:${k}`, pick(10) - 5);
            break;
          case 2:
            await c.rpush(`list:${k}`, `a${this.commands}`, `b${this.commands}`);
            break;
          case 3:
            await c.lpop(`list:${k}`);
            break;
          case 4:
            await c.sadd(`set:${k}`, `m${pick(20)}`);
            break;
          case 5:
            await c.zadd(`zset:${k}`, pick(1000) / 10, `m${pick(20)}`);
            break;
          case 6:
            await c.hset(`hash:${k}`, `f${pick(10)}`, `v${this.commands}`);
            break;
          case 7:
            await c.xadd(`stream:${k % 5}`, '*', 'n', String(this.commands));
            break;
          case 8:
            await c.del(`str:${k}`, `list:${k}`);
            break;
          case 9:
            await c.expire(`hash:${k}`, 500 + pick(500));
            break;
          case 10:
            await c
              .multi()
              .set(`tx:${k}`, String(this.commands))
              .incr(`txcnt:${k}`)
              .sadd(`txset:${k}`, String(pick(5)))
              .exec();
            break;
          default:
            await c.eval(
              "redis.call('set', KEYS[1], ARGV[1]); return redis.call('incr', KEYS[2])",
              2,
              `lua:${k}`,
              `luacnt:${k}`,
              String(this.commands),
            );
        }
        this.commands++;
      } catch {
        // A master that is being restarted or demoted refuses writes for a moment; the workload just goes on.
        this.errors++;
        await new Promise((r) => setTimeout(r, 20));
      }
      if (this.pauseMs > 0 && this.commands % 20 === 0) await new Promise((r) => setTimeout(r, this.pauseMs));
    }
  }
}
