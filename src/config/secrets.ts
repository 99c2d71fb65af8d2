import { readFileSync } from 'node:fs';
import { displayEndpoint, registerSecret, secretsInEndpoint, secretsInValue } from '../observe/redact.js';
import { ConfigError } from './errors.js';

/**
 * Passwords given apart from the URLs: from an environment variable, a file named by an environment variable
 * (`*_FILE`, as Kubernetes and Docker mount secrets) or a config field (`password`, `passwordFile`). One secret has
 * one source: a password given twice (say in the URL and in REDTAIL_MASTER_PASSWORD) is a configuration error
 * rather than a silent choice, since either choice surprises someone.
 */

/** A resolved secret and where it came from (for `check-config`; the value itself is never printed). */
export interface Secret {
  value: string;
  origin: string;
}

/** The secrets redtail resolves, by what they unlock. */
export type SecretName = 'master' | 'sentinel' | 'postgres' | 'kafka';

interface SecretSource {
  /** `REDTAIL_MASTER_PASSWORD`; `_FILE` is appended for the file variant. */
  env: string;
  /** Path of the config field holding the password itself and of the one naming its file. */
  field: string;
  fileField: string;
}

export const secretSources: Record<SecretName, SecretSource> = {
  master: { env: 'REDTAIL_MASTER_PASSWORD', field: 'masterPassword', fileField: 'masterPasswordFile' },
  sentinel: {
    env: 'REDTAIL_SENTINEL_PASSWORD',
    field: 'sentinel.password',
    fileField: 'sentinel.passwordFile',
  },
  postgres: {
    env: 'REDTAIL_POSTGRES_PASSWORD',
    field: 'sinkOptions.postgres.password',
    fileField: 'sinkOptions.postgres.passwordFile',
  },
  kafka: {
    env: 'REDTAIL_KAFKA_PASSWORD',
    field: 'sinkOptions.kafka.password',
    fileField: 'sinkOptions.kafka.passwordFile',
  },
};

/** A secret file's content without one trailing newline (`echo pw > file`, `kubectl create secret --from-file`). */
export function readSecretFile(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `${what}: cannot read the password file ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  const value = text.replace(/\r?\n$/, '');
  if (value === '') throw new ConfigError(`${what}: the password file ${path} is empty`);
  registerSecret(value);
  return value;
}

function get(obj: unknown, path: string): unknown {
  let cur = obj;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/**
 * The password of `name` from the environment or the config file, or undefined when neither gives one. `config`
 * is the merged configuration; `fileOrigin` names the config file for the origin text.
 */
export function resolveSecret(
  name: SecretName,
  env: NodeJS.ProcessEnv,
  config: unknown,
  fileOrigin: string,
): Secret | undefined {
  const src = secretSources[name];
  const fileVar = `${src.env}_FILE`;
  // Each source that is set, with how to read it: a file is only read when it is the one source.
  const given: { label: string; read: () => Secret }[] = [];
  const inline = env[src.env];
  if (inline) given.push({ label: src.env, read: () => ({ value: inline, origin: `env ${src.env}` }) });
  const envFile = env[fileVar];
  if (envFile)
    given.push({
      label: fileVar,
      read: () => ({ value: readSecretFile(envFile, fileVar), origin: `env ${fileVar} (${envFile})` }),
    });
  const field = get(config, src.field);
  if (field !== undefined) {
    if (typeof field !== 'string' || field === '')
      throw new ConfigError(`${src.field} must be a non-empty string`);
    given.push({ label: src.field, read: () => ({ value: field, origin: `${fileOrigin} ${src.field}` }) });
  }
  const fileField = get(config, src.fileField);
  if (fileField !== undefined) {
    if (typeof fileField !== 'string' || fileField === '')
      throw new ConfigError(`${src.fileField} must be the path of a file`);
    given.push({
      label: src.fileField,
      read: () => ({
        value: readSecretFile(fileField, src.fileField),
        origin: `${fileOrigin} ${src.fileField} (${fileField})`,
      }),
    });
  }
  if (given.length > 1)
    throw new ConfigError(
      `the ${name} password is given ${given.length} times (${given.map((g) => g.label).join(', ')}): give it once`,
    );
  const secret = given[0]?.read();
  if (secret) registerSecret(secret.value);
  return secret;
}

/** Throws when an endpoint that already holds a password is also given one apart (`what`: the secret's source). */
export function rejectSecondPassword(endpoint: string, path: string, secret: Secret | undefined): void {
  if (secret && secretsInEndpoint(endpoint).length > 0)
    throw new ConfigError(
      `${path}: ${displayEndpoint(endpoint)} holds a password and ${secret.origin} gives another: give it once`,
    );
}

/** Registers every secret found in a layer of the configuration (URLs and secret-named fields) with the scrubber. */
export function registerSecretsIn(value: unknown): void {
  for (const s of secretsInValue(value)) registerSecret(s);
}
