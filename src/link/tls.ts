import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { RedisOptions } from 'ioredis';
import { FatalLinkError } from './errors.js';
import type { MasterAddress } from './MasterAddress.js';

/** The TLS settings as configured (config file `tls`, `--tls-*` flags, `REDTAIL_TLS_*`). */
export interface TlsSettings {
  /** PEM file of the CA(s) to verify the server with, instead of the system CAs. */
  caFile?: string;
  /** Client certificate and key (PEM) for servers with `tls-auth-clients yes`. */
  certFile?: string;
  keyFile?: string;
  /** Name to send as SNI and to check the certificate against, instead of the host dialled. */
  servername?: string;
  /** Skip certificate verification (the connection is encrypted but the server is not authenticated). */
  insecure?: boolean;
}

/** TLS settings with their files read: what a `rediss://` address is dialled with. */
export interface MasterTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  servername?: string;
  insecure: boolean;
  /** Where `ca` and `cert` came from, for error messages. */
  caFile?: string;
  certFile?: string;
}

/** System CAs, verification on, no client certificate. */
export const defaultTls: MasterTls = { insecure: false };

export const SETTING = {
  ca: '--tls-ca FILE (REDTAIL_TLS_CA, tls.caFile)',
  cert: '--tls-cert FILE and --tls-key FILE (REDTAIL_TLS_CERT and REDTAIL_TLS_KEY, tls.certFile and tls.keyFile)',
  servername: '--tls-servername NAME (REDTAIL_TLS_SERVERNAME, tls.servername)',
};

/** Reads the files the settings name; throws an Error naming the setting and the file when one cannot be used. */
export function loadTls(settings: TlsSettings): MasterTls {
  const read = (path: string, what: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(
        `cannot read the TLS ${what} file ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      );
    }
  };
  if (Boolean(settings.certFile) !== Boolean(settings.keyFile))
    throw new Error(
      'a TLS client certificate needs both tls.certFile and tls.keyFile (--tls-cert and --tls-key)',
    );
  const out: MasterTls = { insecure: settings.insecure === true };
  if (settings.caFile) {
    out.ca = read(settings.caFile, 'CA');
    out.caFile = settings.caFile;
  }
  if (settings.certFile && settings.keyFile) {
    out.cert = read(settings.certFile, 'client certificate');
    out.key = read(settings.keyFile, 'client key');
    out.certFile = settings.certFile;
  }
  if (settings.servername) out.servername = settings.servername;
  try {
    // Parses the PEM now, so a broken file or a key that does not belong to the certificate is a start-up error.
    tls.createSecureContext({ ca: out.ca, cert: out.cert, key: out.key });
  } catch (err) {
    throw new Error(
      `the TLS files ${[settings.caFile, settings.certFile, settings.keyFile].filter(Boolean).join(', ')} cannot be used: ${(err as Error).message}`,
    );
  }
  return out;
}

/** How ioredis reaches `address`: host, port, credentials and, for rediss://, the TLS options of tlsOptionsFor. */
export function ioredisTarget(
  address: MasterAddress,
): Pick<RedisOptions, 'host' | 'port' | 'username' | 'password' | 'tls'> {
  return {
    host: address.host,
    port: address.port,
    username: address.username,
    password: address.password,
    tls: address.tls ? tlsOptionsFor(address.host, address.tls) : undefined,
  };
}

/**
 * Options for `tls.connect` (and ioredis's `tls`) to `host`, without host and port. SNI carries the configured
 * servername, else the host name (never an IP address, which SNI does not allow); the certificate is checked against
 * the same name. `useServername: false` ignores the servername setting (sentinels: it names the master).
 */
export function tlsOptionsFor(host: string, t: MasterTls, useServername = true): tls.ConnectionOptions {
  const o: tls.ConnectionOptions = { rejectUnauthorized: !t.insecure };
  if (t.ca) o.ca = t.ca;
  if (t.cert) o.cert = t.cert;
  if (t.key) o.key = t.key;
  const servername = useServername && t.servername ? t.servername : net.isIP(host) ? undefined : host;
  if (servername) o.servername = servername;
  return o;
}

const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REJECTED',
]);

/** The server sent bytes that are not TLS: a plaintext port. */
const NOT_TLS = new Set([
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_PACKET_LENGTH_TOO_LONG',
  'ERR_SSL_HTTP_REQUEST',
  'ERR_SSL_UNKNOWN_PROTOCOL',
]);

/** `server` is `host:port`, `what` e.g. `master` or `sentinel`. */
export function plaintextPortMessage(what: string, server: string): string {
  return `${what} ${server} does not speak TLS on this port (it answers in plaintext): rediss:// needs the server's tls-port; use redis:// for a plaintext port`;
}

export function tlsPortMessage(what: string, server: string): string {
  return `${what} ${server} speaks TLS on this port: use rediss:// (and --tls-ca FILE if a private CA signed its certificate)`;
}

/**
 * A TLS failure that no retry can fix (certificate not trusted, wrong name, client certificate missing or refused,
 * a plaintext port), as one line naming the server and what to change; null for anything else (network errors,
 * timeouts), which is worth retrying.
 */
export function explainTlsError(
  err: unknown,
  what: string,
  server: string,
  t: MasterTls,
): FatalLinkError | null {
  const e = err as NodeJS.ErrnoException & {
    reason?: string;
    host?: string;
    cert?: { subjectaltname?: string; subject?: { CN?: string } };
  };
  const code = e?.code ?? '';
  const fatal = (text: string) => new FatalLinkError(text);
  if (UNTRUSTED.has(code))
    return fatal(
      t.caFile
        ? `the TLS certificate of ${what} ${server} is not signed by the CA in ${t.caFile} (${code}): give the CA that signed it with ${SETTING.ca}`
        : `the TLS certificate of ${what} ${server} is not trusted by the system CAs (${code}): give the CA that signed it with ${SETTING.ca}`,
    );
  if (code === 'CERT_HAS_EXPIRED')
    return fatal(`the TLS certificate of ${what} ${server} has expired: the server needs a new certificate`);
  if (code === 'CERT_NOT_YET_VALID')
    return fatal(
      `the TLS certificate of ${what} ${server} is not valid yet: check the clocks of this machine and the server`,
    );
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const names = e.cert?.subjectaltname ?? (e.cert?.subject?.CN ? `CN=${e.cert.subject.CN}` : 'none');
    return fatal(
      `the TLS certificate of ${what} ${server} is not for '${e.host ?? t.servername ?? server}' (it names ${names}): connect by one of those names or set ${SETTING.servername}`,
    );
  }
  if (/CERTIFICATE_REQUIRED/.test(code) || (/ALERT_HANDSHAKE_FAILURE/.test(code) && !t.cert))
    return fatal(
      t.cert
        ? `${what} ${server} refused redtail's client certificate ${t.certFile} (${code})`
        : `${what} ${server} requires a TLS client certificate (tls-auth-clients): give one with ${SETTING.cert}`,
    );
  if (/ALERT_UNKNOWN_CA|ALERT_BAD_CERTIFICATE|ALERT_CERTIFICATE_UNKNOWN/.test(code))
    return fatal(
      `${what} ${server} does not trust redtail's client certificate${t.certFile ? ` ${t.certFile}` : ''} (${code}): it must be signed by a CA in the server's tls-ca-cert-file`,
    );
  if (/ALERT_CERTIFICATE_EXPIRED/.test(code))
    return fatal(`${what} ${server} refused redtail's client certificate ${t.certFile}: it has expired`);
  if (NOT_TLS.has(code)) return fatal(plaintextPortMessage(what, server));
  if (/ALERT_HANDSHAKE_FAILURE|ALERT_PROTOCOL_VERSION|NO_PROTOCOLS_AVAILABLE/.test(code))
    return fatal(
      `${what} ${server} refused the TLS handshake (${code}): the TLS versions or ciphers it allows (tls-protocols, tls-ciphers) do not match Node's`,
    );
  return null;
}

/**
 * After a TLS handshake that got no answer: does the port answer a plaintext PING (`+PONG`, or `-NOAUTH` and the
 * like)? Then it is a plaintext port given to rediss://. False on silence, errors or anything else.
 */
export function answersPlaintext(host: string, port: number, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let got = '';
    const done = (v: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => s.write('PING\r\n'));
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes('\n')) done(/^[+-]/.test(got));
    });
    s.once('error', () => done(false));
    s.once('close', () => done(false));
  });
}

/**
 * After a plaintext connection that the server dropped before any reply: does the port complete a TLS handshake
 * (or refuse it with a TLS alert)? Then it is a TLS port given to redis://.
 */
export function speaksTls(host: string, port: number, timeoutMs = 2_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tls.connect({
      host,
      port,
      rejectUnauthorized: false,
      ...(net.isIP(host) ? {} : { servername: host }),
    });
    const done = (v: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('secureConnect', () => done(true));
    s.once('error', (err: NodeJS.ErrnoException) => done(/^ERR_SSL_.*ALERT/.test(err.code ?? '')));
    s.once('close', () => done(false));
  });
}

/**
 * ioredis rejects a connect that failed (with `retryStrategy: () => null`) with "Connection is closed."; the cause,
 * e.g. a certificate error, went to the client's 'error' event. Returns a function that picks that cause for such
 * a rejection, and leaves every other error as it is.
 */
export function connectionCause(client: {
  on(event: 'error', listener: (err: Error) => void): unknown;
}): (err: unknown) => unknown {
  let last: Error | null = null;
  client.on('error', (err: Error) => {
    last = err;
  });
  return (err) => (last && /Connection is closed/.test((err as Error)?.message ?? '') ? last : err);
}
