import { ConfigError } from '../config/errors.js';
import { displayEndpoint } from '../observe/redact.js';

export type SinkKind = 'ndjson' | 'null' | 'kafka' | 'postgres';

/** Which sink a spec names; `index` is its place in `sinks`, which an error names (`sinks[1]: ...`). */
export function sinkKind(spec: string, index: number): SinkKind {
  if (spec === 'stdout') return 'ndjson';
  if (spec === 'null') return 'null';
  if (spec.startsWith('file:')) {
    if (spec.length === 'file:'.length)
      throw new ConfigError(`sinks[${index}]: 'file:' needs a path: file:/path/to/events.ndjson`);
    return 'ndjson';
  }
  if (/^kafkas?:\/\//.test(spec)) return 'kafka';
  if (/^postgres(ql)?:\/\//.test(spec)) return 'postgres';
  const scheme = /^([^:/]*):/.exec(spec)?.[1] ?? displayEndpoint(spec);
  throw new ConfigError(
    `sinks[${index}]: unknown scheme '${scheme}': use stdout, file:PATH, null, kafka://host:port[,host:port] or postgres://...`,
  );
}
