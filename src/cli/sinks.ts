import { resolve } from 'node:path';
import { NullSink } from '../../sinks/null/NullSink.js';
import { NdjsonSink } from '../../sinks/stdout/NdjsonSink.js';
import { FileCheckpointStore } from '../checkpoint/FileCheckpointStore.js';
import { type RedtailConfig, spoolDir } from '../config/Config.js';
import { ConfigError } from '../config/errors.js';
import type { MasterAddress } from '../link/MasterAddress.js';
import type { MasterTls } from '../link/tls.js';
import type { Logger } from '../observe/logger.js';
import { displayEndpoint } from '../observe/redact.js';
import type { Sink } from '../pipeline/Sink.js';
import { sinkKind } from './sinkKind.js';

/**
 * Builds the sinks named on the command line. The Kafka and Postgres sinks are loaded only when used, so their
 * client libraries cost nothing to a stdout-only run. `connectedMaster` names the master the replication link is
 * connected to at the moment (null before its first handshake); `masterTls` the TLS settings for a rediss:// URL in
 * a sink's own `master` option; `masterStale` asks the link to find the master now, when a sink's fetch found the
 * connected one failed or demoted.
 */
export async function createSinks(
  config: RedtailConfig,
  logger: Logger,
  connectedMaster: () => MasterAddress | null,
  masterTls?: MasterTls,
  masterStale?: (reason: string) => void,
): Promise<Sink[]> {
  const sinks: Sink[] = [];
  for (const [index, spec] of config.sinks.entries()) {
    const kind = sinkKind(spec, index);
    if (kind === 'ndjson') {
      const checkpoints = new FileCheckpointStore(ndjsonCheckpointPath(config, spec));
      if (spec === 'stdout')
        sinks.push(new NdjsonSink({ name: 'stdout', checkpoints, stream: process.stdout }));
      else sinks.push(new NdjsonSink({ name: spec, checkpoints, path: filePath(spec) }));
    } else if (kind === 'null') {
      sinks.push(new NullSink());
    } else if (kind === 'kafka') {
      const { createKafkaSink } = await import('../../sinks/kafka/index.js');
      sinks.push(
        createKafkaSink(spec, {
          ...(config.sinkOptions.kafka ?? {}),
          logger: logger.child({ sink: displayEndpoint(spec) }),
        }),
      );
    } else {
      const { PostgresSink, parsePostgresSpec } = await import('../../sinks/postgres/index.js');
      // The mirror fetches exact values for ops it cannot compute (docs/postgres.md), placed in the stream by the
      // ROLE offset read with them: they must come from where the stream comes from, the master the link is
      // connected to. A failover changes it; the first --master URL would then be a replica, or down.
      const postgresLogger = logger.child({ sink: 'postgres' });
      sinks.push(
        new PostgresSink(parsePostgresSpec(spec, config.sinkOptions.postgres ?? {}), {
          logger: postgresLogger,
          currentMaster: connectedMaster,
          masterTls,
          masterStale,
        }),
      );
    }
  }
  return sinks;
}

const isNdjson = (spec: string) => spec === 'stdout' || spec.startsWith('file:');

function filePath(spec: string): string {
  const path = spec.slice('file:'.length);
  if (!path) throw new ConfigError(`sink '${spec}' needs a path: file:/path/to/events.ndjson`);
  return path;
}

/** One NDJSON sink keeps the checkpoint path as given; several get one file each. */
function ndjsonCheckpointPath(config: RedtailConfig, spec: string): string {
  const ndjson = config.sinks.filter(isNdjson);
  return ndjson.length === 1 ? config.checkpoint : `${config.checkpoint}.${ndjson.indexOf(spec)}`;
}

/**
 * The local files the sinks write: each stdout/file sink's checkpoint and each file sink's events file. They are
 * locked before any sink opens (src/checkpoint/StateLock.ts). Kafka and Postgres keep their state remotely.
 */
export function localStatePaths(config: RedtailConfig): string[] {
  const specs = config.sinks.filter(isNdjson);
  const twice = specs.find((s, i) => specs.indexOf(s) !== i);
  if (twice) throw new ConfigError(`sink '${twice}' is given twice; every event would be written twice`);
  const paths: { path: string; role: string }[] = [];
  for (const spec of specs) {
    paths.push({ path: ndjsonCheckpointPath(config, spec), role: 'checkpoint' });
    if (spec !== 'stdout') paths.push({ path: filePath(spec), role: `sink ${spec}` });
  }
  // The spool is local state of every deployment, Kafka- and Postgres-only ones too: two processes appending to
  // one spool would interleave two copies of the stream.
  if (config.spool.enabled) paths.push({ path: spoolDir(config), role: 'spool' });
  for (const [i, a] of paths.entries())
    for (const b of paths.slice(i + 1))
      if (resolve(a.path) === resolve(b.path))
        throw new ConfigError(
          `${a.role} and ${b.role} name the same file ${a.path}; give each its own (--checkpoint, file:PATH)`,
        );
  return paths.map((p) => p.path);
}
