import { RdbDump, type RdbDumpArgs } from './RdbDump.js';

const USAGE = `usage: redtail rdb FILE [--db N] [--key-pattern GLOB] [--type TYPE] [--stats [--deep]] [--ignore-checksum]
                  [--markers] [--stream-threshold BYTES]

Prints every key of an RDB file as one NDJSON snapshot event per line (docs/rdb.md).
  --db N               only keys of database N
  --key-pattern GLOB   only keys matching a Redis-style glob (*, ?, [abc], [^a-z], \\x)
  --type TYPE          only keys of this type (string, list, set, zset, hash, stream, module)
  --stats              print counts per type and encoding, bytes and speed instead of the keys
  --deep               with --stats: decode every value too (default: walk the framing and verify the CRC)
  --ignore-checksum    read a file whose CRC64 trailer does not match
  --markers            also print the snapshot-begin and snapshot-end control events
  --stream-threshold B values larger than B bytes come out in parts (part/last fields)
`;

const TYPES = new Set(['string', 'list', 'set', 'zset', 'hash', 'stream', 'module']);

class UsageError extends Error {}

function parseArgs(argv: string[]): RdbDumpArgs {
  const a: RdbDumpArgs = {
    file: '',
    db: null,
    pattern: null,
    type: null,
    stats: false,
    deep: false,
    ignoreChecksum: false,
    markers: false,
    streamThreshold: undefined,
  };
  const value = (i: number, flag: string): string => {
    const v = argv[i];
    if (v === undefined) throw new UsageError(`${flag} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    switch (arg) {
      case '--db': {
        const n = Number(value(++i, arg));
        if (!Number.isInteger(n) || n < 0) throw new UsageError('--db needs a database number');
        a.db = n;
        break;
      }
      case '--key-pattern':
        a.pattern = value(++i, arg);
        break;
      case '--type': {
        const t = value(++i, arg);
        if (!TYPES.has(t)) throw new UsageError(`unknown type ${t}`);
        a.type = t;
        break;
      }
      case '--stream-threshold': {
        const n = Number(value(++i, arg));
        if (!Number.isInteger(n) || n <= 0) throw new UsageError('--stream-threshold needs a byte count');
        a.streamThreshold = n;
        break;
      }
      case '--stats':
        a.stats = true;
        break;
      case '--deep':
        a.deep = true;
        break;
      case '--ignore-checksum':
        a.ignoreChecksum = true;
        break;
      case '--markers':
        a.markers = true;
        break;
      case '-h':
      case '--help':
        throw new UsageError('');
      default:
        if (arg.startsWith('-') || a.file) throw new UsageError(`unexpected argument ${arg}`);
        a.file = arg;
    }
  }
  if (!a.file) throw new UsageError('missing FILE');
  return a;
}

/** `redtail rdb FILE ...`; resolves to the process exit code. */
export async function rdbCommand(argv: string[]): Promise<number> {
  let args: RdbDumpArgs;
  try {
    args = parseArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    if (err.message) process.stderr.write(`redtail rdb: ${err.message}\n`);
    process.stderr.write(USAGE);
    return err.message ? 2 : 0;
  }
  return new RdbDump(args).run();
}
