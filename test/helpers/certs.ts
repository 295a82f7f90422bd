// Certificates for tests, made the way a cluster makes them: deploy/certs.sh
// (openssl) in a temporary directory, removed in the test's teardown. A PKI is a CA
// and the certificates issued by it on demand, one per identity.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ExecutionContext } from 'ava';

const CERTS_SH = path.resolve(__dirname, '../../../../deploy/certs.sh');

export interface CertFiles {
  cert: string;
  key: string;
}

export type CertKind = 'admin' | 'viewer' | 'service' | 'host' | 'etcd' | 'etcd-root' | 'plain';

export class Pki {
  private constructor(readonly dir: string) {}

  /** A new CA in a temporary directory. */
  static make(): Pki {
    const pki = new Pki(fs.mkdtempSync(path.join(os.tmpdir(), 'nct-pki-')));
    try {
      pki.run('ca');
    } catch (err) {
      pki.remove();
      throw err;
    }
    return pki;
  }

  get ca(): string {
    return path.join(this.dir, 'ca.crt');
  }

  /**
   * A certificate of `kind` (certs.sh): `name` is the file name of an admin, viewer,
   * etcd member or plain one, a service's cube type, a host's name. `sans` for those
   * that serve (default 127.0.0.1 and localhost). Made once; the same again returns it.
   */
  issue(kind: CertKind, name?: string, sans?: string[]): CertFiles {
    const file = kind === 'service' || kind === 'host' ? `${kind}-${name}` : kind === 'etcd-root' ? 'root' : (name ?? kind);
    const files = { cert: path.join(this.dir, `${file}.crt`), key: path.join(this.dir, `${file}.key`) };
    if (!fs.existsSync(files.cert)) this.run(kind, ...(name ? [name] : []), ...(sans ? ['--san', sans.join(',')] : []));
    return files;
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private run(...args: string[]): void {
    execFileSync('bash', [CERTS_SH, this.dir, ...args, '--days', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
  }
}

/** A PKI for one test, removed in its teardown. */
export function pki(t: ExecutionContext): Pki {
  const p = Pki.make();
  t.teardown(() => p.remove());
  return p;
}

export interface Certificates {
  dir: string;
  ca: string;
  /** A daemon's: host identity, for 127.0.0.1 and localhost. */
  serverCert: string;
  serverKey: string;
  /** The admin's. */
  clientCert: string;
  clientKey: string;
  /** The admin's identity, from a CA the servers do not trust. */
  strangerCert: string;
  strangerKey: string;
  pki: Pki;
  remove(): void;
}

/** A CA with a daemon's and the admin's certificates, and a stranger's from another CA. */
export function makeCertificates(): Certificates {
  const ours = Pki.make();
  let theirs: Pki | undefined;
  try {
    theirs = Pki.make();
    const server = ours.issue('host', 'server');
    const admin = ours.issue('admin');
    const stranger = theirs.issue('admin', 'stranger');
    return {
      dir: ours.dir,
      ca: ours.ca,
      serverCert: server.cert,
      serverKey: server.key,
      clientCert: admin.cert,
      clientKey: admin.key,
      strangerCert: stranger.cert,
      strangerKey: stranger.key,
      pki: ours,
      remove: () => {
        ours.remove();
        theirs!.remove();
      },
    };
  } catch (err) {
    ours.remove();
    theirs?.remove();
    throw err;
  }
}

/** Certificates for one test, removed in its teardown. */
export function certificates(t: ExecutionContext): Certificates {
  const c = makeCertificates();
  t.teardown(() => c.remove());
  return c;
}
