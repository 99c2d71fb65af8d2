import { afterAll, describe, expect, it } from 'vitest';
import { RedisServer } from './RedisServer.js';

describe('RedisServer harness', () => {
  const servers: RedisServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.stop();
  });

  it('starts a password-protected server on a free port and stops it', async () => {
    const s = await RedisServer.start({ password: 'pw' });
    servers.push(s);
    expect(s.port).not.toBe(6379);
    await s.client().set('a', '1');
    expect(await s.client().get('a')).toBe('1');
    await s.stop();
    await expect(s.client({ retryStrategy: () => null, lazyConnect: true }).connect()).rejects.toThrow();
  });
});
