import { RedtailError } from '../../src/errors.js';

/**
 * Typed failures of the Postgres sink. `fatal` errors stop redtail without advancing the checkpoint: retrying the
 * same batch would fail the same way, and skipping it would lose events.
 */
export class PostgresSinkError extends RedtailError {
  override readonly name: string = 'PostgresSinkError';
  /** SQLSTATE of the underlying Postgres error, when there is one. */
  readonly code: string | undefined;

  constructor(message: string, code?: string, options?: { cause?: unknown }) {
    super(message, { fatal: true, cause: options?.cause });
    this.code = code;
  }
}

/** A spec or option the sink cannot use (exit status 2 in the CLI, like other configuration errors). */
export class PostgresConfigError extends PostgresSinkError {
  override readonly name = 'PostgresConfigError';
}

/** Constraint, permission or schema errors: a human must fix the database; nothing was committed. */
export class PostgresSchemaError extends PostgresSinkError {
  override readonly name = 'PostgresSchemaError';
}

/** A value whose JSON encoding exceeds what a jsonb column holds (255 MB); see docs/postgres.md. */
export class ValueTooLargeError extends PostgresSinkError {
  override readonly name = 'ValueTooLargeError';
}

/** The mirror cannot apply an event exactly and no master connection is configured to fetch the value. */
export class MirrorError extends PostgresSinkError {
  override readonly name = 'MirrorError';
}

/** SQLSTATE classes that mean "the server or the connection is unavailable", worth waiting for. */
const TRANSIENT_CLASSES = ['08', '53', '57', '40'];

/**
 * True for failures that a retry can cure: the connection dropped or was refused, the server is starting or shutting
 * down (57P0x), out of resources (53xxx), serialization failure or deadlock (40xxx).
 */
export function isTransient(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : '';
  if (/^E[A-Z]+$/.test(code)) return true; // ECONNREFUSED, ECONNRESET, ETIMEDOUT, EPIPE ...
  if (code.length === 5 && TRANSIENT_CLASSES.includes(code.slice(0, 2))) return true;
  const msg = typeof e?.message === 'string' ? e.message : '';
  return /Connection terminated|connection timeout|Client has encountered a connection error|not queryable/i.test(
    msg,
  );
}

/** Wraps a non-transient Postgres error with a message that says what to fix. */
export function describePgError(err: unknown, what: string): PostgresSinkError {
  const e = err as { code?: string; message?: string; detail?: string; table?: string; constraint?: string };
  const code = e?.code;
  const base = `${what}: ${e?.message ?? String(err)}${e?.detail ? ` (${e.detail})` : ''}`;
  if (code === '54000' || code === '54001' || /exceeds the maximum|too large|total size of jsonb/i.test(base))
    return new ValueTooLargeError(
      `${base}; a value's JSON encoding must stay below Postgres's 255 MB jsonb limit`,
      code,
      { cause: err },
    );
  if (code?.startsWith('42501'))
    return new PostgresSchemaError(
      `${base}; grant the sink's user USAGE and CREATE on the schema and read/write on its tables`,
      code,
      { cause: err },
    );
  if (code?.startsWith('23'))
    return new PostgresSchemaError(
      `${base}; a constraint${e.constraint ? ` (${e.constraint})` : ''} on ${e.table ?? 'a sink table'} rejected the batch, which the sink's own schema never does: check for triggers or constraints added to it`,
      code,
      { cause: err },
    );
  if (code?.startsWith('42'))
    return new PostgresSchemaError(
      `${base}; the sink's tables differ from what its migrations created`,
      code,
      {
        cause: err,
      },
    );
  return new PostgresSinkError(base, code, { cause: err });
}
