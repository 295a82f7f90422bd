// A node's edge with real traffic: node n1 (kubeNode: netcubed, the controller,
// the services in process) whose uplink eth0 holds the Node's InternalIP on a veth
// to a namespace outside the cluster, the node's network; the controller places the
// NodePort lbrp and the k8sdispatcher on it once netcubed has published the type.
// From the outside: the NodePort Services of manifests/edge.yaml, with
// externalTrafficPolicy Cluster (the backend sees the node's cluster SNAT address)
// and Local (it sees the client's). From a pod added by netcube-cni: ping, TCP and
// UDP to the outside, which sees only the node's address (it has no route to the
// pods' range, so an unmasqueraded packet could not even be answered).

import test from 'ava';
import { DEFAULT_SETTINGS, nodeModel, nodeNames, Problems, type KubeNode } from '@netcube/k8s';
import { runSockets, SocketsProcess } from '../services/catalog-bed';
import { attachment, cni } from '../helpers/cni';
import { loadManifests } from '../helpers/kube-manifests';
import { cniConfig, kubeNode, NODE, NODE_ADDRESS, OUTSIDE_ADDRESS, startNodeServices } from '../helpers/kube-node';
import { createNetns } from '../helpers/netns';
import { tcpTransfer } from '../helpers/traffic';
import { waitFor } from '../helpers/wait';

const edge = loadManifests('edge.yaml');
const nodeObject = loadManifests('cluster.yaml').find((o) => o.kind === 'Node' && o.metadata.name === NODE)!;
const objects = [nodeObject, ...loadManifests('cluster.yaml').filter((o) => o.kind === 'Namespace'), ...edge];
const names = nodeNames(NODE);
const POD_IP = '10.244.1.30';

test('NodePort from outside (Cluster: the backend sees the node\'s cluster SNAT address; Local: the client\'s) and pod → outside masqueraded (ping, TCP, UDP)', async (t) => {
  t.timeout(300_000);
  const bed = await kubeNode(t, objects);
  await startNodeServices(t, bed);
  const node = nodeModel(nodeObject as unknown as KubeNode, DEFAULT_SETTINGS, new Problems())!;
  t.is(node.address, NODE_ADDRESS);

  const { conf } = cniConfig(t, bed);
  const pod = await createNetns(t);
  const env = attachment(pod, 'edge0001', 'web-a');
  const add = await cni(bed.node, 'ADD', { ...conf, readyTimeoutSeconds: 120 }, { ...env, CNI_ARGS: `${env.CNI_ARGS};IP=${POD_IP}` });
  t.is(add.code, 0, JSON.stringify(add.out));
  t.teardown(() => cni(bed.node, 'DEL', conf, env).then(() => undefined));

  const web = new SocketsProcess(pod, ['serve', 'web', '8080', '5353']);
  t.teardown(() => web.stop());
  await web.line('the pod\'s servers listening', (l) => l.ready === true);
  const outside = new SocketsProcess(bed.outside, ['serve', 'outside', '9000', '9053']);
  t.teardown(() => outside.stop());
  await outside.line('the outside\'s servers listening', (l) => l.ready === true);

  const { chain } = await bed.store.chains.get(names.chain);
  t.deepEqual(chain.spec.cubes.map((c) => c.type).sort(), ['k8sdispatcher', 'lbrp', 'lbrp', 'router'], 'the edge is placed: the type is registered');
  t.true(chain.spec.links.some((l) => l.to === `netdev:${DEFAULT_SETTINGS.uplink}` || l.from === `netdev:${DEFAULT_SETTINGS.uplink}`));

  const connect = (ns: typeof pod, host: string, port: number) => runSockets<{ result: string; greeting?: string }>(ns, ['connect', host, port, 5_000]);
  const sawPeer = (server: SocketsProcess, proto: 'tcp' | 'udp', port: number, address: string) =>
    server.lines.some((l) => l[proto] === port && String(l.peer).startsWith(`${address}:`));

  // NodePort, externalTrafficPolicy Cluster. The services program their cubes on their own time: the first connection that gets through.
  await waitFor('the outside reaching NodePort 30080', async () => (await connect(bed.outside, NODE_ADDRESS, 30080)).result === 'greeting', 60_000, 100);
  t.true(sawPeer(web, 'tcp', 8080, node.clusterSnatAddress), `the backend saw the cluster SNAT address ${node.clusterSnatAddress}: ${JSON.stringify(web.lines)}`);
  t.false(sawPeer(web, 'tcp', 8080, OUTSIDE_ADDRESS));
  const udp = await runSockets<{ sent: number; echoed: number }>(bed.outside, ['udp', NODE_ADDRESS, 30053, 3, 5_000]);
  t.is(udp.echoed, 3, 'UDP NodePort echoed');
  t.true(sawPeer(web, 'udp', 5353, node.clusterSnatAddress));

  // NodePort, externalTrafficPolicy Local: the client's own address.
  const local = await connect(bed.outside, NODE_ADDRESS, 30081);
  t.is(local.result, 'greeting');
  t.true(sawPeer(web, 'tcp', 8080, OUTSIDE_ADDRESS), 'the backend saw the client\'s address');

  // The node's own traffic still reaches its kernel through the dispatcher.
  await bed.outside.ping(NODE_ADDRESS, 2);

  // Pod → outside: masqueraded to the node's address.
  await pod.ping(OUTSIDE_ADDRESS, 3);
  const out = await connect(pod, OUTSIDE_ADDRESS, 9000);
  t.is(out.result, 'greeting');
  t.true(sawPeer(outside, 'tcp', 9000, NODE_ADDRESS), `the outside saw the node's address: ${JSON.stringify(outside.lines)}`);
  t.false(outside.lines.some((l) => String(l.peer).startsWith('10.244.')), 'never a pod\'s');
  // A bulk transfer: a pod's TCP leaves its veth in segments larger than the uplink's MTU (GSO), cut by the kernel after the dispatcher.
  const { sent, received } = await tcpTransfer(pod, bed.outside, OUTSIDE_ADDRESS, 4 << 20, { port: 9002 });
  t.deepEqual(received, sent, 'a 4 MiB TCP transfer to the outside, every byte');
  const podUdp = await runSockets<{ sent: number; echoed: number }>(pod, ['udp', OUTSIDE_ADDRESS, 9053, 3, 5_000]);
  t.is(podUdp.echoed, 3);
  t.true(sawPeer(outside, 'udp', 9053, NODE_ADDRESS));
  t.false(bed.lines.some((l) => l.includes('"level":"error"')), 'no errors logged');
});
