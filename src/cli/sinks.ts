import { NdjsonSink } from '../../sinks/stdout/NdjsonSink.js';
import { FileCheckpointStore } from '../checkpoint/FileCheckpointStore.js';
import { ConfigError, type RedtailConfig } from '../config/Config.js';
import type { Logger } from '../observe/logger.js';
import type { Sink } from '../pipeline/Sink.js';

/**
 * Builds the sinks named on the command line. The Kafka and Postgres sinks are loaded only when used, so their
 * client libraries cost nothing to a stdout-only run.
 */
export async function createSinks(config: RedtailConfig, logger: Logger): Promise<Sink[]> {
  const ndjson = config.sinks.filter((s) => s === 'stdout' || s.startsWith('file:'));
  const sinks: Sink[] = [];
  for (const spec of config.sinks) {
    if (spec === 'stdout' || spec.startsWith('file:')) {
      // One NDJSON sink keeps the checkpoint path as given; several get one file each.
      const idx = ndjson.indexOf(spec);
      const cpPath = ndjson.length === 1 ? config.checkpoint : `${config.checkpoint}.${idx}`;
      const checkpoints = new FileCheckpointStore(cpPath);
      if (spec === 'stdout')
        sinks.push(new NdjsonSink({ name: 'stdout', checkpoints, stream: process.stdout }));
      else {
        const path = spec.slice('file:'.length);
        if (!path) throw new ConfigError(`sink '${spec}' needs a path: file:/path/to/events.ndjson`);
        sinks.push(new NdjsonSink({ name: spec, checkpoints, path }));
      }
    } else if (spec.startsWith('kafka://')) {
      const { createKafkaSink } = await import('../../sinks/kafka/index.js');
      sinks.push(
        createKafkaSink(spec, { ...(config.sinkOptions.kafka ?? {}), logger: logger.child({ sink: spec }) }),
      );
    } else if (spec.startsWith('postgres://') || spec.startsWith('postgresql://')) {
      const { PostgresSink, parsePostgresSpec } = await import('../../sinks/postgres/index.js');
      // The mirror fetches exact values from the master for ops it cannot compute (docs/postgres.md).
      const master = Array.isArray(config.master) ? config.master[0] : config.master;
      const options = { master, ...(config.sinkOptions.postgres ?? {}) };
      const postgresLogger = logger.child({ sink: 'postgres' });
      sinks.push(new PostgresSink(parsePostgresSpec(spec, options), { logger: postgresLogger }));
    } else {
      throw new ConfigError(
        `unknown sink '${spec}': use stdout, file:PATH, kafka://host:port[,host:port] or postgres://...`,
      );
    }
  }
  return sinks;
}
