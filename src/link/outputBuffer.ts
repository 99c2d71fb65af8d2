import { Redis } from 'ioredis';
import type { MasterAddress } from './MasterAddress.js';
import { ioredisTarget } from './tls.js';

/**
 * The master's limits that decide when it drops a replica that does not read: `client-output-buffer-limit` (its
 * replica class: hard limit, soft limit, soft seconds) and `repl-backlog-size` (since Redis 7 replicas share the
 * backlog's buffer, so the effective hard limit is the larger of the two). Best effort, for the error message only:
 * an ACL user without CONFIG, or a master that went away, gives nulls.
 */
export async function describeOutputBufferLimit(
  address: MasterAddress,
): Promise<{ limit: string | null; replBacklogSize: string | null }> {
  const client = new Redis({
    ...ioredisTarget(address),
    lazyConnect: true,
    connectTimeout: 2_000,
    commandTimeout: 2_000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    const limits = (await client.config('GET', 'client-output-buffer-limit')) as string[];
    const backlog = (await client.config('GET', 'repl-backlog-size')) as string[];
    const replica = /(?:^|\s)(?:replica|slave) (\d+) (\d+) (\d+)/.exec(limits[1] ?? '');
    return {
      limit: replica ? `replica ${replica[1]} ${replica[2]} ${replica[3]}` : null,
      replBacklogSize: backlog[1] ?? null,
    };
  } catch {
    return { limit: null, replBacklogSize: null };
  } finally {
    client.disconnect();
  }
}
