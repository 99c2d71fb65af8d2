import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fixed } from '../config/defaults.js';
import type { Logger } from './logger.js';
import type { Metrics } from './Metrics.js';

/** Why redtail is not ready; an empty list means ready. */
export type ReadinessCheck = () => string[];

export interface HttpEndpointOptions {
  /** `host:port` (`[::1]:9121` for IPv6); port 0 picks a free one. */
  listen: string;
  metrics: Metrics;
  ready: ReadinessCheck;
  logger: Logger;
  /** /healthz fails when the event loop's ticker has not run for this long (it is blocked or starved). */
  stallMs?: number;
}

/** `host:port` → its parts; throws a message naming the value when it is not one. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || !Number.isInteger(port) || port > 65535)
    throw new Error(`http address '${listen}' must be host:port, e.g. 0.0.0.0:9121 or 127.0.0.1:9121`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/**
 * The sidecar's HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (alive: the event loop turns) and
 * `/readyz` (the link streams and no sink fails). Bodies are short JSON so a person with curl sees why.
 */
export class HttpEndpoint {
  private readonly server: http.Server;
  private lastTick = Date.now();
  private readonly ticker: NodeJS.Timeout;
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 20 });

  constructor(private readonly opts: HttpEndpointOptions) {
    this.ticker = setInterval(() => {
      this.lastTick = Date.now();
    }, 500);
    this.ticker.unref();
    this.loopDelay.enable();
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`);
      });
    });
    // Keep-alive connections of a scraper must not hold a stop open.
    this.server.keepAliveTimeout = 5_000;
  }

  /** Resolves with the bound address once listening; rejects with a clear message when the port is taken. */
  async start(): Promise<AddressInfo> {
    const { host, port } = parseListen(this.opts.listen);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) =>
        reject(
          new Error(
            `cannot listen on http ${this.opts.listen}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : (err.code ?? err.message)}`,
          ),
        );
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    const addr = this.server.address() as AddressInfo;
    this.opts.logger.info({ http: `${addr.address}:${addr.port}` }, 'serving /metrics, /healthz and /readyz');
    return addr;
  }

  async stop(): Promise<void> {
    clearInterval(this.ticker);
    this.loopDelay.disable();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    switch (path) {
      case '/metrics': {
        const body = await this.opts.metrics.text();
        res.writeHead(200, { 'content-type': this.opts.metrics.contentType }).end(body);
        return;
      }
      case '/healthz': {
        const sinceTick = Date.now() - this.lastTick;
        const ok = sinceTick < (this.opts.stallMs ?? fixed.http.loopStallMs);
        json(res, ok ? 200 : 503, {
          status: ok ? 'ok' : 'stalled',
          eventLoopDelayP99Ms: Math.round(this.loopDelay.percentile(99) / 1e6),
          sinceTickMs: sinceTick,
        });
        return;
      }
      case '/readyz': {
        const reasons = this.opts.ready();
        json(res, reasons.length === 0 ? 200 : 503, { ready: reasons.length === 0, reasons });
        return;
      }
      default:
        json(res, 404, { error: 'not found', paths: ['/metrics', '/healthz', '/readyz'] });
    }
  }
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
}
