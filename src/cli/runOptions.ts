import { parseArgs } from 'node:util';
import type { ConfigSources, RedtailConfig } from '../config/Config.js';

/**
 * The options of `redtail run`, shared with `redtail check-config` so that it accepts exactly what `run` accepts
 * (a command line that passes the check is a command line that runs).
 */
export const runOptions = {
  master: { type: 'string', multiple: true },
  sentinel: { type: 'string', multiple: true },
  'master-name': { type: 'string' },
  'sentinel-tls': { type: 'boolean' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-servername': { type: 'string' },
  'tls-insecure': { type: 'boolean' },
  sink: { type: 'string', multiple: true },
  checkpoint: { type: 'string' },
  spool: { type: 'string' },
  config: { type: 'string' },
  ack: { type: 'string' },
  snapshot: { type: 'string' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  http: { type: 'string' },
  'wait-for-lock': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Parses `run`'s command line (throws on unknown options) into the sources `loadConfig` merges. */
export function parseRunArgs(argv: string[]): { help: boolean; sources: ConfigSources } {
  const { values } = parseArgs({ args: argv, options: runOptions, strict: true });
  return {
    help: values.help === true,
    sources: {
      file: values.config,
      env: process.env,
      flags: {
        master: values.master,
        sentinels: values.sentinel,
        masterName: values['master-name'],
        sentinelTls: values['sentinel-tls'],
        tls: {
          caFile: values['tls-ca'],
          certFile: values['tls-cert'],
          keyFile: values['tls-key'],
          servername: values['tls-servername'],
          insecure: values['tls-insecure'],
        },
        sinks: values.sink,
        checkpoint: values.checkpoint,
        spool: values.spool,
        logLevel: values['log-level'],
        logFormat: values['log-format'] as RedtailConfig['logFormat'] | undefined,
        http: values.http,
        ack: values.ack as RedtailConfig['ack'] | undefined,
        snapshot: values.snapshot as RedtailConfig['snapshot'] | undefined,
        waitForLock: values['wait-for-lock'],
      },
    },
  };
}
