/**
 * Self-signed certificates made at test time with openssl (no key material in the repository).
 * Valid for 127.0.0.1 and localhost; `other` is a second, unrelated pair for "wrong CA" cases.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCerts {
  dir: string;
  cert: string;
  key: string;
  otherCert: string;
  otherKey: string;
  cleanup(): void;
}

function openssl(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { timeout: 30_000 }, (err, _stdout, stderr) => (err ? reject(new Error(`openssl ${args.join(' ')} failed: ${stderr || err.message}`)) : resolve()));
  });
}

const pair = (cert: string, key: string, cn: string): Promise<void> =>
  openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${cn}`,
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);

export async function makeTestCerts(): Promise<TestCerts> {
  const dir = mkdtempSync(join(tmpdir(), 'edgeecho-tls-'));
  const c: TestCerts = {
    dir,
    cert: join(dir, 'cert.pem'),
    key: join(dir, 'key.pem'),
    otherCert: join(dir, 'other-cert.pem'),
    otherKey: join(dir, 'other-key.pem'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
  try {
    await Promise.all([pair(c.cert, c.key, 'edgeecho-test'), pair(c.otherCert, c.otherKey, 'edgeecho-other')]);
  } catch (err) {
    c.cleanup();
    throw err;
  }
  return c;
}
