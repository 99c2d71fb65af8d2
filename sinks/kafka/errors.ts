import { RedtailError } from '../../src/errors.js';

/**
 * Typed errors of the Kafka sink. kafkajs reports failures as a chain of wrappers (NumberOfRetriesExceeded around
 * a ProtocolError around ...); `classifyKafkaError` walks that chain once so callers decide on one readable class:
 * `fatal` errors need an operator (credentials, ACLs, configuration), the others are retried.
 */

export class KafkaSinkError extends RedtailError {
  override readonly name: string = 'KafkaSinkError';
  /** Retried unless a subclass says otherwise (`fatal`: retrying cannot help; the pipeline stops and reports). */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { fatal: false, cause: options?.cause });
  }
}

/** The spec or options are wrong. */
export class KafkaConfigError extends KafkaSinkError {
  override readonly name = 'KafkaConfigError';
  override readonly fatal = true;
}

/** No broker of the list answered (connection refused, DNS, TLS handshake, timeouts). Retried with backoff. */
export class KafkaUnreachableError extends KafkaSinkError {
  override readonly name = 'KafkaUnreachableError';
  constructor(
    readonly brokers: readonly string[],
    cause: unknown,
  ) {
    super(`cannot reach Kafka brokers ${brokers.join(',')}: ${describeCause(cause)}`, { cause });
  }
}

/** Authentication (SASL) or an ACL refused an operation. */
export class KafkaAuthorizationError extends KafkaSinkError {
  override readonly name = 'KafkaAuthorizationError';
  override readonly fatal = true;
  constructor(
    readonly kafkaCode: string,
    what: string,
    cause: unknown,
  ) {
    super(`Kafka refused ${what}: ${kafkaCode} (${hintFor(kafkaCode)})`, { cause });
  }
}

/** A topic the sink needs does not exist and the sink may not create it. */
export class KafkaTopicMissingError extends KafkaSinkError {
  override readonly name = 'KafkaTopicMissingError';
  override readonly fatal = true;
  constructor(
    readonly topic: string,
    reason: string,
  ) {
    super(`Kafka topic ${topic} does not exist and ${reason}; create it or enable createTopics`);
  }
}

/** The offsets topic would lose checkpoints (not compacted, or retention deletes them). */
export class KafkaOffsetsTopicError extends KafkaSinkError {
  override readonly name = 'KafkaOffsetsTopicError';
  override readonly fatal = true;
}

/**
 * Another producer with the same transactionalId started: two redtail instances write the same stream. Continuing
 * would duplicate events, so the older instance stops.
 */
export class KafkaProducerFencedError extends KafkaSinkError {
  override readonly name = 'KafkaProducerFencedError';
  override readonly fatal = true;
  constructor(
    readonly transactionalId: string,
    cause: unknown,
  ) {
    super(
      `producer with transactionalId ${transactionalId} was fenced: another redtail instance uses the same ` +
        `transactionalId (or a transaction outlived transaction.timeout.ms); stopping to avoid duplicates`,
      { cause },
    );
  }
}

/** The broker rejected a record (batch) as too large even after the sink's size policy. */
export class KafkaMessageTooLargeError extends KafkaSinkError {
  override readonly name = 'KafkaMessageTooLargeError';
  constructor(
    readonly bytes: number,
    cause: unknown,
  ) {
    super(`Kafka rejected ${bytes} bytes as too large: ${describeCause(cause)}`, { cause });
  }
}

/** Anything else kafkajs or the broker reported; retried. */
export class KafkaTransientError extends KafkaSinkError {
  override readonly name = 'KafkaTransientError';
}

const AUTH_CODES = new Set([
  'TOPIC_AUTHORIZATION_FAILED',
  'GROUP_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'SASL_AUTHENTICATION_FAILED',
  'ILLEGAL_SASL_STATE',
  'UNSUPPORTED_SASL_MECHANISM',
  'DELEGATION_TOKEN_AUTHORIZATION_FAILED',
]);

const FENCED_CODES = new Set(['PRODUCER_FENCED', 'INVALID_PRODUCER_EPOCH', 'TRANSACTIONAL_ID_NOT_FOUND']);

const TOO_LARGE_CODES = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD']);

const UNREACHABLE_NAMES = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSBrokerNotFound',
  'KafkaJSRequestTimeoutError',
  'KafkaJSNoBrokerAvailableError',
]);

function hintFor(code: string): string {
  switch (code) {
    case 'SASL_AUTHENTICATION_FAILED':
    case 'ILLEGAL_SASL_STATE':
    case 'UNSUPPORTED_SASL_MECHANISM':
      return 'check the SASL mechanism, username and password';
    case 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED':
      return 'grant Write and Describe on the TransactionalId, or set exactlyOnce=false';
    case 'GROUP_AUTHORIZATION_FAILED':
      return 'grant Read on the consumer group the sink uses to read its offsets topic';
    case 'CLUSTER_AUTHORIZATION_FAILED':
      return 'grant IdempotentWrite/Create on the cluster, or create the topics beforehand';
    default:
      return 'grant the principal Describe/Write/Create on the topics';
  }
}

function describeCause(cause: unknown): string {
  if (cause instanceof Error) return cause.message;
  return String(cause);
}

interface Chained {
  name?: string;
  type?: string;
  message?: string;
  cause?: unknown;
  originalError?: unknown;
  errors?: unknown[];
}

/** Every error in a kafkajs wrapper chain, outermost first. */
export function errorChain(err: unknown): Chained[] {
  const out: Chained[] = [];
  const seen = new Set<unknown>();
  const queue: unknown[] = [err];
  while (queue.length > 0 && out.length < 32) {
    const e = queue.shift();
    if (e === null || typeof e !== 'object' || seen.has(e)) continue;
    seen.add(e);
    const c = e as Chained;
    out.push(c);
    queue.push(c.cause, c.originalError);
    if (Array.isArray(c.errors)) queue.push(...c.errors);
  }
  return out;
}

/** The Kafka protocol error code names (`TOPIC_AUTHORIZATION_FAILED`, ...) anywhere in the chain. */
export function kafkaCodes(err: unknown): string[] {
  return errorChain(err)
    .map((e) => e.type)
    .filter((t): t is string => typeof t === 'string');
}

export function isTooLarge(err: unknown): boolean {
  return kafkaCodes(err).some((c) => TOO_LARGE_CODES.has(c));
}

export function isFenced(err: unknown): boolean {
  if (kafkaCodes(err).some((c) => FENCED_CODES.has(c))) return true;
  return errorChain(err).some((e) => /fenced|Invalid producer epoch/i.test(e.message ?? ''));
}

/**
 * Maps whatever kafkajs threw to one sink error. `what` names the operation for the message ("produce to
 * redtail.0", "create topic x", ...).
 */
export function classifyKafkaError(
  err: unknown,
  ctx: { brokers: readonly string[]; what: string; transactionalId?: string },
): KafkaSinkError {
  if (err instanceof KafkaSinkError) return err;
  const chain = errorChain(err);
  const codes = kafkaCodes(err);
  const auth = codes.find((c) => AUTH_CODES.has(c));
  if (auth) return new KafkaAuthorizationError(auth, ctx.what, err);
  if (chain.some((e) => e.name === 'KafkaJSSASLAuthenticationError'))
    return new KafkaAuthorizationError('SASL_AUTHENTICATION_FAILED', ctx.what, err);
  if (ctx.transactionalId !== undefined && isFenced(err))
    return new KafkaProducerFencedError(ctx.transactionalId, err);
  if (isTooLarge(err)) return new KafkaMessageTooLargeError(0, err);
  if (
    chain.some(
      (e) => UNREACHABLE_NAMES.has(e.name ?? '') || /ECONNREFUSED|ENOTFOUND|ETIMEDOUT/.test(e.message ?? ''),
    )
  )
    return new KafkaUnreachableError(ctx.brokers, innermost(err));
  if (chain.some((e) => e.name === 'KafkaJSGroupCoordinatorNotFound'))
    return new KafkaTransientError(
      `${ctx.what} failed: no coordinator found (kafkajs hides the broker's reason; a missing Describe ACL on the ` +
        'TransactionalId or Read ACL on the consumer group looks like this too)',
      { cause: err },
    );
  return new KafkaTransientError(`${ctx.what} failed: ${describeCause(innermost(err))}`, { cause: err });
}

function innermost(err: unknown): unknown {
  const chain = errorChain(err);
  return chain.length > 0 ? chain[chain.length - 1] : err;
}
