/**
 * Secrets never reach a log line, an error message, a stats line or `check-config` output. Two mechanisms:
 *
 * - `displayEndpoint` turns a configured endpoint (master or sentinel URL, sink spec) into its display form, with
 *   the password of its userinfo and every secret-looking query parameter replaced by `***` (recursively, for a
 *   URL given as a parameter, e.g. the Postgres sink's `master=redis://:pw@...`). Everything that names an
 *   endpoint uses it.
 * - A registry of the secrets redtail knows (filled while the configuration loads: URL passwords, password
 *   options, passwords read from env or files) and `scrub`, which removes them from any text. The logger runs every
 *   line through it, and the CLI runs every message it prints, so an error thrown by pg, kafkajs or ioredis that
 *   quotes a secret loses it too.
 */

export const MASK = '***';

/** Query parameter and option names whose value is a secret (`password`, `sslpassword`, `sasl.password`, ...). */
const SECRET_KEY = /pass(word)?$|passwd|^pwd$|secret|token|credential/i;

/** Is an option or query parameter of this name a secret? (`passwordFile` is a path, not a secret.) */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key) && !/file$/i.test(key);
}

interface SplitUrl {
  scheme: string;
  /** Text between `scheme://` and the `@` that ends the userinfo, or null without userinfo. */
  userinfo: string | null;
  /** Host(s), port(s) and path. */
  rest: string;
  /** Without the `?`; null when there is no query. */
  query: string | null;
  fragment: string;
}

/**
 * Splits `scheme://[userinfo@]hosts[/path][?query][#fragment]` by hand rather than with WHATWG URL: broker lists
 * (`kafka://a:1,b:2`) and malformed URLs (the ones error messages quote) must be displayed too. The userinfo ends
 * at the last `@` before the query, as the Kafka spec parser reads it, so a password holding `@` is masked whole.
 */
function splitUrl(text: string): SplitUrl | null {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/(.*)$/s.exec(text);
  if (!m) return null;
  let body = m[2]!;
  let fragment = '';
  const hash = body.indexOf('#');
  if (hash >= 0) {
    fragment = body.slice(hash);
    body = body.slice(0, hash);
  }
  let query: string | null = null;
  const q = body.indexOf('?');
  if (q >= 0) {
    query = body.slice(q + 1);
    body = body.slice(0, q);
  }
  const at = body.lastIndexOf('@');
  return {
    scheme: m[1]!,
    userinfo: at >= 0 ? body.slice(0, at) : null,
    rest: at >= 0 ? body.slice(at + 1) : body,
    query,
    fragment,
  };
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

/**
 * The display form of an endpoint: `postgres://app:***@db:5432/x?sslpassword=***`, `kafka://u:***@b:9092`,
 * `redis://:***@host:6379`. The user name stays (it tells which account is used and is not a secret); text that is
 * not a URL (`stdout`, `file:PATH`, `host:port`) is returned as is.
 */
export function displayEndpoint(spec: string): string {
  const u = splitUrl(spec);
  if (!u) return spec;
  let out = `${u.scheme}://`;
  if (u.userinfo !== null) {
    const colon = u.userinfo.indexOf(':');
    out += colon >= 0 ? `${u.userinfo.slice(0, colon)}:${MASK}@` : `${u.userinfo}@`;
  }
  out += u.rest;
  if (u.query !== null) out += `?${displayQuery(u.query)}`;
  return out + u.fragment;
}

function displayQuery(query: string): string {
  return query
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq < 0) return pair;
      const key = decode(pair.slice(0, eq));
      const value = pair.slice(eq + 1);
      if (isSecretKey(key)) return `${pair.slice(0, eq)}=${MASK}`;
      const decoded = decode(value);
      if (splitUrl(decoded)) return `${pair.slice(0, eq)}=${encodeURIComponent(displayEndpoint(decoded))}`;
      return pair;
    })
    .join('&');
}

/** The secrets an endpoint holds: its userinfo password and secret query parameters, nested URLs included. */
export function secretsInEndpoint(spec: string): string[] {
  const u = splitUrl(spec);
  if (!u) return [];
  const found: string[] = [];
  if (u.userinfo !== null) {
    const colon = u.userinfo.indexOf(':');
    if (colon >= 0) found.push(decode(u.userinfo.slice(colon + 1)));
  }
  for (const pair of (u.query ?? '').split('&')) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const value = decode(pair.slice(eq + 1));
    if (isSecretKey(decode(pair.slice(0, eq)))) found.push(value);
    else found.push(...secretsInEndpoint(value));
  }
  return found.filter((s) => s.length > 0);
}

/**
 * A deep copy of a configuration value for display: secret-named fields become `***`, strings that are URLs are
 * displayed with `displayEndpoint`. Used by `check-config` and anything that logs options.
 */
export function redactValue(value: unknown, key = ''): unknown {
  if (typeof value === 'string') {
    if (isSecretKey(key) && value !== '') return MASK;
    return displayEndpoint(value);
  }
  if (Array.isArray(value)) return value.map((v) => redactValue(v, key));
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactValue(v, k)]));
  if (isSecretKey(key) && value !== undefined && value !== null) return MASK;
  return value;
}

/** Every secret in a configuration value: secret-named string fields and the secrets of URL strings. */
export function secretsInValue(value: unknown, key = ''): string[] {
  if (typeof value === 'string') return isSecretKey(key) ? [value] : secretsInEndpoint(value);
  if (Array.isArray(value)) return value.flatMap((v) => secretsInValue(v, key));
  if (value !== null && typeof value === 'object')
    return Object.entries(value).flatMap(([k, v]) => secretsInValue(v, k));
  return [];
}

/**
 * Secrets shorter than this are masked in display forms but not scrubbed from free text: removing every `ab` from
 * every log line would make logs unreadable while hiding nothing (such a password falls to guessing anyway).
 */
export const MIN_SCRUBBED_LENGTH = 4;

const known = new Set<string>();
let patterns: string[] = [];

/**
 * Remembers a secret so `scrub` removes it, in each form it can appear in: as is, URL-encoded (inside a URL), and
 * JSON-escaped (inside a log line), and the combinations.
 */
export function registerSecret(secret: string | undefined | null): void {
  if (!secret || secret.length < MIN_SCRUBBED_LENGTH || known.has(secret)) return;
  known.add(secret);
  const forms = new Set<string>();
  for (const s of [secret, encodeURIComponent(secret), encodeURIComponent(secret).replace(/%20/g, '+')]) {
    forms.add(s);
    forms.add(JSON.stringify(s).slice(1, -1));
    forms.add(JSON.stringify(JSON.stringify(s).slice(1, -1)).slice(1, -1));
  }
  // Longest first, so a secret that contains another is replaced whole.
  patterns = [...new Set([...patterns, ...forms])].sort((a, b) => b.length - a.length);
}

/** For tests: forget every registered secret. */
export function clearSecrets(): void {
  known.clear();
  patterns = [];
}

/** `text` with every registered secret replaced by `***`. */
export function scrub(text: string): string {
  if (patterns.length === 0) return text;
  let out = text;
  for (const p of patterns) if (out.includes(p)) out = out.split(p).join(MASK);
  return out;
}

/** An error's message, scrubbed: for the one line the CLI prints on a failure. */
export function scrubbedMessage(err: unknown): string {
  return scrub(err instanceof Error ? err.message : String(err));
}
