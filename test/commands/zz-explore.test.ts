import { it } from 'vitest';
import { RedisServer } from '../harness/RedisServer.js';
import { ReplicationTap } from '../harness/ReplicationTap.js';

it('explore', async () => {
  const s = await RedisServer.start({ config: { 'lua-replicate-commands': 'yes' } }).catch(() =>
    RedisServer.start(),
  );
  const c = s.client();
  const tap = await ReplicationTap.connect(s.port);
  const cmds: string[][] = JSON.parse(process.env.CMDS!);
  for (const cmd of cmds) {
    let r: unknown;
    try {
      r = await c.call(cmd[0]!, ...cmd.slice(1));
    } catch (e) {
      r = `ERR ${(e as Error).message}`;
    }
    const info = await s.info('replication');
    await tap.waitForOffset(Number(info.master_repl_offset));
    const got = tap.drain();
    console.log(
      JSON.stringify(cmd),
      '=>',
      JSON.stringify(r)?.slice(0, 80),
      '\n   ',
      got
        .map((g) => `${g.txn ? 'T ' : ''}${g.args.map((x) => x.toString('latin1')).join(' ')}`)
        .join('\n    '),
    );
  }
  tap.close();
  await s.stop();
});
