import { readFileSync } from 'node:fs';
import net from 'node:net';

/**
 * The lowest port the kernel hands out for outgoing connections and for `listen(0)`. A listening port taken from
 * that range can be grabbed as the local port of any client connection in the short window before the server binds
 * it, or while a test restarts that server on the same port; ports below it never are.
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : 32768;
  } catch {
    return 32768; // Linux's default where /proc is not there
  }
}

const FLOOR = 10_000;

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A free loopback port below the ephemeral range (see ephemeralLow), or one from the kernel when that range leaves
 * no room. A tiny race with other test workers remains; callers retry on EADDRINUSE.
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow();
  if (low - FLOOR >= 1000) {
    for (let i = 0; i < 50; i++) {
      const port = FLOOR + Math.floor(Math.random() * (low - FLOOR));
      if (await canListen(port)) return port;
    }
  }
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') return reject(new Error('no port'));
      srv.close(() => resolve(addr.port));
    });
  });
}
