import { afterEach } from 'vitest';
import { RedisServer, type RedisServerOptions } from './RedisServer.js';
import { RedtailProcess } from './RedtailProcess.js';
import { ReplicationTap } from './ReplicationTap.js';

/**
 * What one test started (servers, taps, redtail processes, anything with a cleanup), torn down in reverse order
 * after the test whether it passed or not. `useTestScope()` at the top of a test file gives one.
 */
export class TestScope {
  private readonly cleanups: (() => Promise<unknown> | unknown)[] = [];

  /** Runs `f` at teardown. */
  defer(f: () => Promise<unknown> | unknown): void {
    this.cleanups.push(f);
  }

  async server(opts: RedisServerOptions = {}): Promise<RedisServer> {
    const s = await RedisServer.start(opts);
    this.defer(() => s.stop());
    return s;
  }

  /** An independent plain replica recording the master's stream from now on. */
  async tap(s: RedisServer): Promise<ReplicationTap> {
    const t = await ReplicationTap.connect(s.port, '127.0.0.1', s.options.password);
    this.defer(() => t.close());
    return t;
  }

  /** `redtail <args>` as a child process, SIGKILLed at teardown if still running. */
  redtail(args: string[], env: NodeJS.ProcessEnv = {}): RedtailProcess {
    const p = RedtailProcess.start(args, env);
    this.defer(() => p.stop('SIGKILL'));
    return p;
  }

  async dispose(): Promise<void> {
    for (const f of this.cleanups.splice(0).reverse()) await f();
  }
}

export function useTestScope(): TestScope {
  const scope = new TestScope();
  afterEach(() => scope.dispose());
  return scope;
}
