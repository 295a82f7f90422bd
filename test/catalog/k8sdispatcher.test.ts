// The k8sdispatcher translator (remote-services/k8sdispatcher/tables.ts), without a
// kernel: the node's config as disp_config holds it, the NodePorts as
// disp_node_ports, and errors that name the field and the limit.
import test from 'ava';
import { FieldError } from '@netcube/catalog/fields';
import { DEFAULT_SETTINGS, nodeModel, Problems, type KubeNode } from '@netcube/k8s';
import { compileDispatcher, MAX_NODE_PORTS, type DispatcherConfig } from '@netcube/k8sdispatcher/tables';

const PORTS = { ext: 0, int: 1 };
const OPTS = { ports: PORTS, gatewayMac: '02:00:00:00:00:0d' };
const CONFIG: DispatcherConfig = {
  uplinkPort: 'ext',
  nodeAddress: '10.0.0.11',
  clusterCidr: '10.244.0.0/16',
  masqueradePorts: '61000-65535',
  clusterSnatAddress: '10.244.1.254',
  gateway: '169.254.1.1',
  routerMac: '02:00:00:00:00:0C',
  nodePorts: [
    { protocol: 'tcp', port: 30080, cluster: true },
    { protocol: 'udp', port: 30080 },
  ],
};

test('the node\'s config as disp_config holds it; NodePorts by protocol and port with their policy', (t) => {
  const tables = compileDispatcher(CONFIG, OPTS);
  t.deepEqual(tables.disp_config, [
    {
      key: 0,
      value: {
        configured: 1,
        ext_port: 0,
        int_port: 1,
        node_addr: '10.0.0.11',
        cluster_net: '10.244.0.0',
        cluster_mask: '255.255.0.0',
        cluster_snat: '10.244.1.254',
        gateway: '169.254.1.1',
        port_min: 61000,
        port_max: 65535,
        router_mac: '02:00:00:00:00:0c',
        gateway_mac: '02:00:00:00:00:0d',
      },
    },
  ]);
  t.deepEqual(tables.disp_node_ports, [
    { key: { proto: 6, pad: 0, port: 30080 }, value: { cluster: 1, pad: [0, 0, 0] } },
    { key: { proto: 17, pad: 0, port: 30080 }, value: { cluster: 0, pad: [0, 0, 0] } },
  ]);
  // The uplink may be either port: the other one is the chain's.
  t.like(compileDispatcher({ ...CONFIG, uplinkPort: 'int' }, OPTS).disp_config[0].value, { ext_port: 1, int_port: 0 });
});

test('what the Kubernetes model writes for a node compiles (the params of chains.ts)', (t) => {
  const node = nodeModel({ metadata: { name: 'n1' }, spec: { podCIDR: '10.244.1.0/24' }, status: { addresses: [{ type: 'InternalIP', address: '10.0.0.11' }] } } as KubeNode, DEFAULT_SETTINGS, new Problems())!;
  const tables = compileDispatcher(
    { ...CONFIG, clusterCidr: DEFAULT_SETTINGS.clusterCidr, masqueradePorts: DEFAULT_SETTINGS.masqueradePorts, clusterSnatAddress: node.clusterSnatAddress, routerMac: node.routerMac },
    OPTS,
  );
  t.like(tables.disp_config[0].value, { cluster_snat: node.clusterSnatAddress, router_mac: node.routerMac });
});

const refused = (config: unknown, field: string, message: RegExp, opts: { ports: Record<string, number>; gatewayMac: string } = OPTS) => (t: import('ava').ExecutionContext) => {
  const err = t.throws(() => compileDispatcher(config, opts), { instanceOf: FieldError });
  t.is(err?.field, field);
  t.regex(err!.message, message);
};

test('uplinkPort names one of the cube\'s two ports', refused({ ...CONFIG, uplinkPort: 'eth0' }, 'uplinkPort', /one of the cube's ports \(ext, int\)/));
test('a dispatcher has two ports', refused(CONFIG, '', /two ports.*has 3/, { ...OPTS, ports: { ext: 0, int: 1, more: 2 } }));
test('the node\'s address is IPv4', refused({ ...CONFIG, nodeAddress: 'fd00::1' }, 'nodeAddress', /IPv4 only/));
test('the node\'s address is outside the pods\' range', refused({ ...CONFIG, nodeAddress: '10.244.0.9' }, 'nodeAddress', /inside the cluster's pod range/));
test('the cluster range is a prefix without host bits', refused({ ...CONFIG, clusterCidr: '10.244.1.0/16' }, 'clusterCidr', /bits set past/));
test('masquerade ports start at 1024', refused({ ...CONFIG, masqueradePorts: '80-90' }, 'masqueradePorts', /below 1024/));
test('masquerade ports are a range', refused({ ...CONFIG, masqueradePorts: '65535-61000' }, 'masqueradePorts', /backwards/));
test('the cluster SNAT address is in the pods\' range', refused({ ...CONFIG, clusterSnatAddress: '10.0.0.12' }, 'clusterSnatAddress', /outside the cluster's pod range/));
test('the router\'s MAC is a unicast MAC', refused({ ...CONFIG, routerMac: '03:00:00:00:00:01' }, 'routerMac', /multicast/));
test('a NodePort is TCP, UDP or SCTP', refused({ ...CONFIG, nodePorts: [{ protocol: 'icmp', port: 1 }] }, 'nodePorts[0].protocol', /tcp, udp or sctp/));
test('a NodePort\'s port is 1-65535', refused({ ...CONFIG, nodePorts: [{ protocol: 'tcp', port: 70000 }] }, 'nodePorts[0].port', /65535/));
test('a NodePort is listed once', refused({ ...CONFIG, nodePorts: [{ protocol: 'tcp', port: 1 }, { protocol: 'tcp', port: 1 }] }, 'nodePorts[1]', /nodePorts\[0\] has the same/));
test('no field the dispatcher does not know', refused({ ...CONFIG, nodeIp: '10.0.0.1' }, 'nodeIp', /nodeIp/));
test(`at most ${MAX_NODE_PORTS} NodePorts`, refused({ ...CONFIG, nodePorts: Array.from({ length: MAX_NODE_PORTS + 1 }, (_, i) => ({ protocol: 'tcp', port: 20000 + i })) }, 'nodePorts', /4097 NodePorts; a dispatcher holds 4096/));
