import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Paths of a throwaway certificate authority and the certificates it signed. */
export interface TlsFiles {
  ca: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A self-signed CA (`<prefix>ca.crt`), valid for a day; EC keys keep generation fast. */
export function generateCa(dir: string, prefix = ''): { ca: string; caKey: string } {
  const ca = join(dir, `${prefix}ca.crt`);
  const caKey = join(dir, `${prefix}ca.key`);
  openssl(
    [
      'req',
      '-x509',
      ...EC_KEY,
      '-keyout',
      caKey,
      '-out',
      ca,
      '-days',
      '1',
      '-subj',
      `/CN=redtail test CA ${prefix}`,
    ],
    dir,
  );
  return { ca, caKey };
}

function signed(
  dir: string,
  ca: { ca: string; caKey: string },
  name: string,
  subject: string,
  extensions: string,
): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `${extensions}\n`);
  openssl(['req', ...EC_KEY, '-keyout', key, '-out', csr, '-subj', subject], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.ca,
      '-CAkey',
      ca.caKey,
      '-CAcreateserial',
      '-out',
      cert,
      '-days',
      '1',
      '-extfile',
      ext,
    ],
    dir,
  );
  return { cert, key };
}

/**
 * A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate (for `tls-auth-clients yes`),
 * generated with openssl into `dir`.
 */
export function generateTlsFiles(dir: string): TlsFiles {
  const ca = generateCa(dir);
  const server = signed(
    dir,
    ca,
    'server',
    '/CN=localhost',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth',
  );
  const client = signed(dir, ca, 'client', '/CN=redtail', 'extendedKeyUsage=clientAuth');
  return {
    ...ca,
    serverCert: server.cert,
    serverKey: server.key,
    clientCert: client.cert,
    clientKey: client.key,
  };
}
