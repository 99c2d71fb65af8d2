import { NdjsonSink } from '../../sinks/stdout/NdjsonSink.js';
import { FileCheckpointStore } from '../checkpoint/FileCheckpointStore.js';
import type { RedtailConfig } from '../config/Config.js';
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
  const ndjson = config.sinks.filter((s) => s === 'stdout' || s.startsWith('file:'));
  const sinks: Sink[] = [];
  for (const [index, spec] of config.sinks.entries()) {
    const kind = sinkKind(spec, index);
    if (kind === 'ndjson') {
      // One NDJSON sink keeps the checkpoint path as given; several get one file each.
      const idx = ndjson.indexOf(spec);
      const cpPath = ndjson.length === 1 ? config.checkpoint : `${config.checkpoint}.${idx}`;
      const checkpoints = new FileCheckpointStore(cpPath);
      if (spec === 'stdout')
        sinks.push(new NdjsonSink({ name: 'stdout', checkpoints, stream: process.stdout }));
      else sinks.push(new NdjsonSink({ name: spec, checkpoints, path: spec.slice('file:'.length) }));
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
