// netcube-k8s cni-config, as a node's installer runs it (deploy/k8s's DaemonSet):
// the node's conflist from its Node in the (scripted) API server, written atomically,
// the one netcube-cni takes and the example in remote-services/k8s/examples is; the
// errors a node without a pod range, an unknown node or a missing --node get.

import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '@netcube/k8s/cni';
import { REPO } from '../cli/run';
import { KubeApiServer, kubeconfig } from '../helpers/kube-apiserver';
import { loadManifests } from '../helpers/kube-manifests';

const COMMAND = join(REPO, 'remote-services/k8s/build/src/main.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function cniConfig(t: ExecutionContext, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const api = await KubeApiServer.start([
    ...loadManifests('cluster.yaml').filter((o) => o.kind === 'Node'),
    // A node the cluster has not given a pod range yet.
    { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n9' }, spec: {}, status: { addresses: [{ type: 'InternalIP', address: '192.168.50.9' }] } },
  ]);
  t.teardown(() => api.stop());
  return new Promise((resolve) => {
    execFile(process.execPath, [COMMAND, 'cni-config', '--kubeconfig', kubeconfig(t), '--master', api.url, ...args], { env: { PATH: process.env.PATH, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? (err as { code?: number }).code ?? -1 : 0, stdout, stderr }),
    );
  });
}

const ETCD = ['--etcd', 'https://10.0.0.1:2379', '--tls-ca', '/etc/netcube/pki/ca.crt', '--tls-cert', '/etc/netcube/pki/host-n1.crt', '--tls-key', '/etc/netcube/pki/host-n1.key'];

test('node n1\'s conflist, written atomically: the example\'s, and one netcube-cni takes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), `nct-cniconf-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, '10-netcube.conflist');
  const run = await cniConfig(t, [...ETCD, '--out', out], { NODE_NAME: 'n1' });
  t.is(run.code, 0, run.stderr);
  t.is(run.stdout, '', 'written to --out, not printed');
  t.deepEqual(readdirSync(dir), ['10-netcube.conflist'], 'no temporary file left');
  const written = JSON.parse(readFileSync(out, 'utf8'));
  t.deepEqual(written, JSON.parse(readFileSync(join(REPO, 'remote-services/k8s/examples/10-netcube.conflist'), 'utf8')));
  const conf = parseConfig(JSON.stringify({ cniVersion: written.cniVersion, name: written.name, ...written.plugins[0] }));
  t.like(conf, { host: 'n1', socket: '/run/netcube/n1/netcubed.sock', mtu: 1450 });
});

test('printed without --out; --node over $NODE_NAME; the flags it takes change it (CNI 1.1.0 on request)', async (t) => {
  const run = await cniConfig(t, ['--node', 'n2', '--etcd', '127.0.0.1:2379', '--mtu', '1400', '--socket', '/run/nc.sock', '--ipam-data-dir', '/var/lib/nc', '--cni-version', '1.1.0'], { NODE_NAME: 'n1' });
  t.is(run.code, 0, run.stderr);
  t.is(JSON.parse(run.stdout).cniVersion, '1.1.0');
  const plugin = JSON.parse(run.stdout).plugins[0];
  t.like(plugin, { host: 'n2', socket: '/run/nc.sock', mtu: 1400, etcd: { endpoints: ['127.0.0.1:2379'] }, ipam: { dataDir: '/var/lib/nc' } });
  t.is(plugin.etcd.tlsCa, undefined);
  t.is(plugin.ipam.ranges[0][0].subnet, '10.244.2.0/24');
});

test('a node without a pod range, an unknown node, no node: errors that say what to do, nothing written', async (t) => {
  const noRange = await cniConfig(t, ['--node', 'n9']);
  t.is(noRange.code, 1);
  t.regex(noRange.stderr, /Node n9 has no IPv4 spec\.podCIDR: start kube-controller-manager with --allocate-node-cidrs/);
  const unknown = await cniConfig(t, ['--node', 'n7']);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /Node n7 does not exist/);
  const none = await cniConfig(t, []);
  t.is(none.code, 2);
  t.regex(none.stderr, /--node: give the node's name \(or \$NODE_NAME\)/);
  const mtu = await cniConfig(t, ['--node', 'n1', '--mtu', '70000']);
  t.is(mtu.code, 2);
  t.regex(mtu.stderr, /--mtu: an integer from 576 to 65535, got "70000"/);
  const version = await cniConfig(t, ['--node', 'n1', '--cni-version', '0.4.0']);
  t.is(version.code, 2);
  t.regex(version.stderr, /--cni-version: 1\.0\.0 or 1\.1\.0, got "0\.4\.0"/);
});
