import { readFileSync } from 'node:fs';
import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisServer } from './RedisServer.js';
import { REDIS_SOURCES, REDIS_VERSIONS, type RedisVersion, redisBinaryInfo } from './redisVersions.js';

// Resolving fetches missing jars through mvn and extracts them once, so it happens at collection time; a version
// this machine cannot have is skipped locally but fails in CI, which must be able to get every one of them.
const infos = await Promise.all(REDIS_VERSIONS.map((v) => redisBinaryInfo(v)));
const inCI = process.env.CI === 'true';

/** What a 2.8 master says to a replica's `REPLCONF capa ...` (capabilities came in 3.2), and what later ones say. */
function expectedReplconf(version: RedisVersion): RegExp {
  return version === '2.8' ? /^-ERR Unrecognized REPLCONF option: capa/ : /^\+OK$/;
}

/** A raw RESP connection that reads replies line by line, as a replica does during the handshake. */
class RawConn {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private closed: Error | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiter?.();
    });
    const end = (err?: Error) => {
      this.closed = err ?? new Error('connection closed');
      this.waiter?.();
    };
    socket.on('error', end);
    socket.on('close', () => end());
  }

  static connect(port: number): Promise<RawConn> {
    return new Promise((res, rej) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => res(new RawConn(s)));
      s.once('error', rej);
    });
  }

  async command(...args: string[]): Promise<string> {
    this.socket.write(
      `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`,
    );
    return this.line();
  }

  /** The next reply line, without CRLF; lone `\n` keepalives a master sends while it prepares the RDB are skipped. */
  async line(): Promise<string> {
    for (;;) {
      while (this.buf[0] === 0x0a) this.buf = this.buf.subarray(1);
      const i = this.buf.indexOf('\r\n');
      if (i >= 0) {
        const l = this.buf.toString('latin1', 0, i);
        this.buf = this.buf.subarray(i + 2);
        return l;
      }
      await this.more();
    }
  }

  async bytes(n: number): Promise<Buffer> {
    while (this.buf.length < n) await this.more();
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  private more(): Promise<void> {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((res) => {
      this.waiter = () => {
        this.waiter = undefined;
        res();
      };
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

describe('redis version matrix', () => {
  const servers: RedisServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.stop();
  });

  it('test/redis-versions/pom.xml lists the jars redisVersions.ts fetches for versions other than 7.0', () => {
    const pom = readFileSync(new URL('../redis-versions/pom.xml', import.meta.url), 'utf8');
    const listed = [...pom.matchAll(/<dependency>([\s\S]*?)<\/dependency>/g)].map((m) => {
      const tag = (t: string) => new RegExp(`<${t}>([^<]+)</${t}>`).exec(m[1]!)?.[1];
      return `${tag('groupId')}:${tag('artifactId')}:${tag('version')}`;
    });
    const wanted = REDIS_VERSIONS.filter((v) => v !== '7.0').flatMap((v) =>
      REDIS_SOURCES[v].flatMap((s) => (s.kind === 'maven' ? [s.artifact] : [])),
    );
    expect(listed.sort()).toEqual(wanted.sort());
  });

  const missing = infos.flatMap((i) => (i.path === null ? [i.reason] : []));
  it.skipIf(missing.length > 0 && !inCI)(`this machine has redis ${REDIS_VERSIONS.join(', ')}`, () => {
    expect(missing).toEqual([]);
  });

  for (const info of infos) {
    const version = info.version;
    describe(`redis ${version}`, () => {
      it.skipIf(info.path === null)(
        'starts with the harness config and reports its version in INFO server',
        async () => {
          if (info.path === null) return;
          const server = await RedisServer.start({ binary: info.path });
          servers.push(server);
          const fields = await server.info('server');
          // Valkey keeps redis_version at 7.2.4 for client compatibility and reports itself in valkey_version.
          const reported = version.startsWith('valkey-') ? fields.valkey_version : fields.redis_version;
          expect(reported).toBe(info.exact);
          expect(reported!.startsWith(`${version.replace(/^valkey-/, '')}.`)).toBe(true);
          await server.stop();
        },
      );

      it.skipIf(info.path === null)('answers a replica handshake with a full resync and an RDB', async () => {
        if (info.path === null) return;
        const server = await RedisServer.start({ binary: info.path });
        servers.push(server);
        await server.client().set('k', 'v');
        const conn = await RawConn.connect(server.port);
        try {
          expect(await conn.command('PING')).toBe('+PONG');
          expect(await conn.command('REPLCONF', 'capa', 'eof', 'capa', 'psync2')).toMatch(
            expectedReplconf(version),
          );
          const fullresync = await conn.command('PSYNC', '?', '-1');
          expect(fullresync).toMatch(/^\+FULLRESYNC [0-9a-f]{40} \d+$/);
          const bulk = await conn.line();
          expect(bulk).toMatch(/^\$\d+$/); // disk-based sync (the harness default): a sized RDB, not $EOF:
          const rdb = await conn.bytes(Number(bulk.slice(1)));
          // Valkey 8.1 still writes RDB 11 with a REDIS header; VALKEY080 comes with Valkey 9's format 80.
          expect(rdb.toString('latin1', 0, 5)).toBe('REDIS');
          expect(rdb.includes(Buffer.from('k'))).toBe(true);
        } finally {
          conn.close();
          await server.stop();
        }
      });
    });
  }
});
