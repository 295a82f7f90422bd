// netcube-cni called as the CNI spec describes (environment, config on stdin,
// result or error on stdout), inside a node namespace the test makes, with Debian's
// host-local for IPAM and a locked-down etcd reached as the node's identity. No
// netcubed and no controller run here: ADD builds the pod's side and records the
// port, then reports (code 11) that the data plane does not forward for it; DEL and
// GC, which need neither, leave no veth, lease nor record.

import test, { ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '@netcube/api/store';
import { hostVethName } from '@netcube/k8s/cni';
import { Pki } from '../helpers/certs';
import { attachment, cni, leases } from '../helpers/cni';
import { EtcdBridge } from '../helpers/etcd-bridge';
import { EtcdCluster } from '../helpers/etcd';
import { createNetns, Netns } from '../helpers/netns';

interface Bed {
  node: Netns;
  conf: Record<string, unknown>;
  dataDir: string;
  admin: Store;
}

async function bed(t: ExecutionContext, extra: Record<string, unknown> = {}): Promise<Bed> {
  const pki = Pki.make();
  t.teardown(() => pki.remove());
  const etcd = await EtcdCluster.start({ pki });
  t.teardown(() => etcd.stop());
  await etcd.access((a) => a.host('n1', []));
  const node = await createNetns(t);
  const dir = mkdtempSync(join(tmpdir(), `nct-cni-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bridge = await EtcdBridge.open(node.path, etcd.endpoints, dir);
  t.teardown(() => bridge.close());
  const host = pki.issue('host', 'n1');
  const dataDir = join(dir, 'ipam');
  const admin = await Store.connect({ endpoints: etcd.endpoints, tls: { ca: pki.ca, ...pki.issue('admin') } });
  t.teardown(() => admin.close());
  const conf = {
    cniVersion: '1.1.0',
    name: 'netcube',
    type: 'netcube-cni',
    host: 'n1',
    socket: join(dir, 'netcubed.sock'), // nothing listens: netcubed is down
    etcd: { endpoints: etcd.endpoints, tlsCa: pki.ca, tlsCert: host.cert, tlsKey: host.key },
    readyTimeoutSeconds: 1,
    ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.1.0/24', rangeStart: '10.244.1.2', rangeEnd: '10.244.1.253', gateway: '10.244.1.1' }]], dataDir },
    ...extra,
  };
  return { node, conf, dataDir, admin };
}

const links = async (ns: Netns) => (await ns.exec('ip', ['-o', 'link', 'show'])).stdout;

test('VERSION; configs it cannot use get the spec codes and say what to fix', async (t) => {
  const node = await createNetns(t);
  const version = await cni(node, 'VERSION', '{}');
  t.deepEqual(version, { code: 0, out: { cniVersion: '1.1.0', supportedVersions: ['1.0.0', '1.1.0'] } });
  const old = await cni(node, 'ADD', { cniVersion: '0.3.1', name: 'x', type: 'netcube-cni' });
  t.is(old.code, 1);
  t.like(old.out, { code: 1 });
  t.regex(String(old.out.msg), /cniVersion "0.3.1" is not supported: netcube-cni speaks 1.0.0 and 1.1.0/);
  const noEtcd = await cni(node, 'ADD', { cniVersion: '1.0.0', name: 'x', type: 'netcube-cni', host: 'n1', ipam: { type: 'host-local' } });
  t.like(noEtcd.out, { code: 7, cniVersion: '1.0.0' });
  t.regex(String(noEtcd.out.msg), /etcd.endpoints must list/);
  const namespace = await cni(node, 'ADD', { cniVersion: '1.0.0', name: 'x', type: 'netcube-cni', host: 'n1', etcd: { endpoints: ['127.0.0.1:1'] }, podNamespace: 'Prod_1', ipam: { type: 'host-local' } });
  t.like(namespace.out, { code: 7 });
  t.regex(String(namespace.out.msg), /podNamespace must be a Kubernetes namespace name .*got "Prod_1"/);
  const garbage = await cni(node, 'ADD', '{"cniVersion":');
  t.like(garbage.out, { code: 6 });
  const status = await cni(node, 'STATUS', { cniVersion: '1.0.0', name: 'x', type: 'netcube-cni', host: 'n1', etcd: { endpoints: ['127.0.0.1:1'] }, ipam: { type: 'host-local' } });
  t.regex(String(status.out.msg), /STATUS is a CNI 1.1.0 command/);
});

test('ADD makes the pod side and records the port, then says the data plane does not forward; DEL removes all of it, with netcubed down, twice', async (t) => {
  const { node, conf, dataDir, admin } = await bed(t);
  const pod = await createNetns(t);
  const env = attachment(pod, 'c0ffee01');
  const add = await cni(node, 'ADD', conf, env);
  t.is(add.code, 1);
  t.like(add.out, { code: 11 });
  t.regex(String(add.out.msg), /pod port nc[0-9a-f]{11} \(10\.244\.1\.2\) is not forwarding after 1 s: netcubed on .* does not run cube k8s-n1-pods .*is the netcube controller \(netcube-k8s\) running/);

  // What ADD built: the veth, the pod's address without a prefix route, its gateway, the record.
  const veth = hostVethName('c0ffee01', 'eth0');
  t.regex(await links(node), new RegExp(`${veth}@`));
  t.regex((await pod.exec('ip', ['-4', 'addr', 'show', 'dev', 'eth0'])).stdout, /inet 10\.244\.1\.2\/24 .*noprefixroute/);
  const routes = (await pod.exec('ip', ['route'])).stdout;
  t.regex(routes, /default via 10\.244\.1\.1 dev eth0/);
  t.notRegex(routes, /10\.244\.1\.0\/24/);
  const [record] = await admin.podPorts.list('n1');
  t.like(record, { host: 'n1', netdev: veth, namespace: 'default', pod: 'web-1', containerId: 'c0ffee01', ifname: 'eth0', addresses: ['10.244.1.2/24'] });
  t.deepEqual(leases(dataDir), ['10.244.1.2']);

  for (const round of [1, 2]) {
    const del = await cni(node, 'DEL', conf, env);
    t.deepEqual(del, { code: 0, out: {} }, `DEL ${round}`);
  }
  t.notRegex(await links(node), /nc[0-9a-f]{11}/);
  t.deepEqual(await admin.podPorts.list('n1'), []);
  t.deepEqual(leases(dataDir), []);
});

test('STATUS says what is not available; CHECK what is missing', async (t) => {
  const { node, conf } = await bed(t);
  const status = await cni(node, 'STATUS', conf);
  t.like(status.out, { code: 50 });
  t.regex(String(status.out.msg), /netcubed does not answer on .*netcubed.sock/);
  const pod = await createNetns(t);
  const check = await cni(node, 'CHECK', { ...conf, prevResult: { cniVersion: '1.1.0', ips: [{ address: '10.244.1.9/24', gateway: '10.244.1.1' }] } }, attachment(pod, 'feed'));
  t.like(check.out, { code: 5 });
  t.regex(String(check.out.msg), /veth nc[0-9a-f]{11} is missing on node n1: delete and add the pod again/);
});

test('20 concurrent ADDs on one node get distinct leases, veths and records; GC removes the attachments the runtime no longer has', async (t) => {
  const { node, conf, dataDir, admin } = await bed(t);
  const pods = await Promise.all(Array.from({ length: 20 }, () => createNetns(t)));
  const adds = await Promise.all(pods.map((pod, i) => cni(node, 'ADD', conf, attachment(pod, `cafe${i}`, `p${i}`))));
  // Each up to the data plane, which no controller feeds here.
  t.deepEqual(adds.map((a) => (a.out.code === 11 ? 11 : a.out.msg)), Array(20).fill(11));
  const records = await admin.podPorts.list('n1');
  t.is(records.length, 20);
  t.is(new Set(records.map((r) => r.addresses[0])).size, 20);
  t.is(leases(dataDir).length, 20);
  const keep = pods.slice(0, 8).map((_, i) => ({ containerID: `cafe${i}`, ifname: 'eth0' }));
  const gc = await cni(node, 'GC', { ...conf, 'cni.dev/valid-attachments': keep });
  t.deepEqual(gc, { code: 0, out: {} });
  t.deepEqual((await admin.podPorts.list('n1')).map((r) => r.containerId).sort(), keep.map((k) => k.containerID).sort());
  t.is(leases(dataDir).length, 8);
  t.is((await links(node)).match(/nc[0-9a-f]{11}@/g)?.length, 8);
});
