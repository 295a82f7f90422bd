// The scripted API server (kube-apiserver.ts) as a process, for deploy/hosts.sh --k8s:
// it serves the objects of the manifests given (YAML as users write them) on
// loopback, writes a kubeconfig that points at it, and runs until SIGTERM or SIGINT.
//
//   node kube-apiserver-main.js --kubeconfig FILE MANIFEST...

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { KubeApiServer } from './kube-apiserver';
import type { KubeObject } from './kube-manifests';

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ options: { kubeconfig: { type: 'string' } }, allowPositionals: true });
  if (!values.kubeconfig || positionals.length === 0) throw new Error('usage: kube-apiserver-main.js --kubeconfig FILE MANIFEST...');
  const objects = positionals.flatMap((file) =>
    parseAllDocuments(readFileSync(file, 'utf8')).map((doc, i) => {
      if (doc.errors.length > 0) throw new Error(`${file} document ${i + 1}: ${doc.errors[0].message}`);
      return doc.toJS() as KubeObject;
    }),
  );
  const api = await KubeApiServer.start(objects);
  const kubeconfig = [
    'apiVersion: v1',
    'kind: Config',
    `clusters: [{ name: scripted, cluster: { server: "${api.url}", insecure-skip-tls-verify: true } }]`,
    'users: [{ name: netcube, user: { token: scripted } }]',
    'contexts: [{ name: scripted, context: { cluster: scripted, user: netcube } }]',
    'current-context: scripted',
    '',
  ].join('\n');
  // Whoever waits for the file finds it whole.
  writeFileSync(`${values.kubeconfig}.tmp`, kubeconfig, { mode: 0o600 });
  renameSync(`${values.kubeconfig}.tmp`, values.kubeconfig);
  process.stdout.write(`serving ${objects.length} objects at ${api.url}\n`);
  const stop = (): void => void api.stop().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`kube-apiserver: ${(err as Error).message}\n`);
  process.exit(1);
});
