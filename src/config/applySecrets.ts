import { registerSecret, secretsInEndpoint } from '../observe/redact.js';
import type { RedtailConfig } from './Config.js';
import { ConfigError } from './errors.js';
import { rejectSecondPassword, resolveSecret } from './secrets.js';

/**
 * Resolves the passwords given apart from the URLs (env, `*_FILE`, config `password`/`passwordFile`) into the
 * fields the run uses: `masterPassword`, `sentinel.password`, `sinkOptions.postgres.password` and
 * `sinkOptions.kafka.password`; `*File` fields are consumed. Sentinel addresses given as URLs become host:port.
 */
export function applySecrets(
  c: RedtailConfig,
  env: NodeJS.ProcessEnv,
  fileOrigin: string,
  origins: Map<string, string>,
): void {
  const masters = Array.isArray(c.master) ? c.master : [c.master];
  const master = resolveSecret('master', env, c, fileOrigin);
  delete c.masterPasswordFile;
  origins.delete('masterPasswordFile');
  if (master) {
    for (const [i, m] of masters.entries())
      rejectSecondPassword(m, masters.length > 1 ? `master[${i}]` : 'master', master);
    c.masterPassword = master.value;
    origins.set('masterPassword', master.origin);
  }
  if (c.sentinel) applySentinelSecret(c.sentinel, env, c, fileOrigin, origins);
  for (const [name, schemes] of [
    ['postgres', ['postgres://', 'postgresql://']],
    ['kafka', ['kafka://', 'kafkas://']],
  ] as const) {
    const secret = resolveSecret(name, env, c, fileOrigin);
    const options = c.sinkOptions[name];
    if (options) {
      delete options.passwordFile;
      origins.delete(`sinkOptions.${name}.passwordFile`);
    }
    if (!secret) continue;
    for (const [i, spec] of c.sinks.entries())
      if (schemes.some((s) => spec.startsWith(s))) rejectSecondPassword(spec, `sinks[${i}]`, secret);
    c.sinkOptions[name] = { ...(options ?? {}), password: secret.value };
    origins.set(`sinkOptions.${name}.password`, secret.origin);
  }
}

/** `redis://[user:]password@host:port` sentinel addresses give the sentinels' password (one for all of them). */
function applySentinelSecret(
  sentinel: NonNullable<RedtailConfig['sentinel']>,
  env: NodeJS.ProcessEnv,
  c: RedtailConfig,
  fileOrigin: string,
  origins: Map<string, string>,
): void {
  const fromUrls = new Set<string>();
  sentinel.addresses = sentinel.addresses.map((a) => {
    const m = /^(rediss?):\/\/(?:([^@]*)@)?([^/?#@]+)\/?$/.exec(a);
    if (!m) return a;
    if (m[1] === 'rediss' && sentinel.tls === undefined) sentinel.tls = true;
    for (const s of secretsInEndpoint(a)) fromUrls.add(s);
    return m[3]!;
  });
  const secret = resolveSecret('sentinel', env, c, fileOrigin);
  delete sentinel.passwordFile;
  origins.delete('sentinel.passwordFile');
  if (fromUrls.size > 1)
    throw new ConfigError('sentinel addresses hold different passwords: give one for all');
  const [fromUrl] = fromUrls;
  if (fromUrl !== undefined && secret)
    throw new ConfigError(
      `a sentinel address holds a password and ${secret.origin} gives another: give it once`,
    );
  if (fromUrl !== undefined) {
    registerSecret(fromUrl);
    sentinel.password = fromUrl;
    origins.set('sentinel.password', origins.get('sentinel.addresses') ?? 'default');
  } else if (secret) {
    sentinel.password = secret.value;
    origins.set('sentinel.password', secret.origin);
  }
}
