import type { Sink } from '../../src/pipeline/Sink.js';
import { parsePostgresSpec } from './config.js';
import { PostgresSink } from './PostgresSink.js';

export type { PostgresSinkConfig } from './config.js';
export { parseDuration, parsePostgresSpec } from './config.js';
export * from './errors.js';
export {
  type CurrentMaster,
  type FetchedValue,
  type Fetcher,
  type FetchResult,
  fixedMaster,
  MasterFetcher,
} from './MasterFetcher.js';
export { keyText, MirrorApplier } from './MirrorApplier.js';
export { migrate, SCHEMA_VERSION } from './migrations.js';
export {
  PostgresSink,
  type PostgresSinkDeps,
  type PostgresSinkStats,
  type WriteTiming,
} from './PostgresSink.js';

/**
 * `postgres://user@host:5432/db?schema=redtail&master=redis://...`: options come from `sinkOptions.postgres`, query
 * parameters override them. `master` (or REDTAIL_MASTER) is the server exact values are fetched from.
 */
export function createPostgresSink(spec: string, options: Record<string, unknown>): Sink {
  const merged = { ...options };
  if (merged.master === undefined && process.env.REDTAIL_MASTER) merged.master = process.env.REDTAIL_MASTER;
  return new PostgresSink(parsePostgresSpec(spec, merged));
}
