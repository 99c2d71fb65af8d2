import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTestScope } from '../harness/TestScope.js';

const scope = useTestScope();

/**
 * A master that stops answering in the middle of the handshake (here a real one blocked by DEBUG SLEEP) is given up
 * on after the read timeout, as Redis's own replica gives up on a silent handshake after repl-timeout, and redtail
 * connects again once the master answers. Before, the link waited for the reply without any limit.
 */
describe('a master that falls silent during the handshake', () => {
  it('times out after link.readTimeoutMs, reconnects and completes the sync once the master answers', async () => {
    // PINGs every second keep an established link busier than the timeout, so only the handshake can time out.
    const master = await scope.server({
      config: { 'enable-debug-command': 'yes', 'repl-ping-replica-period': '1' },
    });
    await master.client().set('k', 'v');
    const dir = mkdtempSync(join(tmpdir(), 'redtail-hs-timeout-'));
    const config = join(dir, 'redtail.json');
    writeFileSync(config, JSON.stringify({ link: { readTimeoutMs: 1500 } }));
    // Blocks the server's event loop: it accepts connections but answers nothing until the sleep ends.
    const sleeper = master.client();
    const asleep = sleeper.call('DEBUG', 'SLEEP', '5');
    const p = scope.redtail([
      'run',
      '--log-level',
      'info',
      '--master',
      master.url(),
      '--checkpoint',
      join(dir, 'cp.json'),
      '--config',
      config,
    ]);
    const timedOut = (l: { msg?: unknown; err?: unknown }) =>
      l.msg === 'replication link lost' && /no data from master/.test(String(l.err));
    await p.waitFor(() => p.logs().some(timedOut), 'the handshake timeout');
    await asleep;
    await p.waitFor(() => p.events.some((e) => e.op === 'snapshot-end'), 'the sync after the master woke up');
    // The timeout came before any handshake completed, i.e. while the master ignored the handshake.
    const msgs = p.logs();
    const firstTimeout = msgs.findIndex(timedOut);
    const firstHandshake = msgs.findIndex((l) => l.msg === 'replication handshake done');
    expect(firstTimeout).toBeGreaterThanOrEqual(0);
    expect(firstTimeout).toBeLessThan(firstHandshake);
    expect(p.events.filter((e) => e.op === 'snapshot').map((e) => e.key)).toEqual(['k']);
    expect((await p.stop('SIGTERM')).code).toBe(0);
  });
});
