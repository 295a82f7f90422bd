// The control plane of k8sdispatcher cubes (bpf/cubes/k8sdispatcher.bpf.c), a
// Kubernetes node's edge. The fast path translates, picks ports and routes by
// itself; this service
//   - compiles the node's config (tables.ts) into disp_config and disp_node_ports:
//     until it has, the cube gives everything from the uplink to the node's kernel;
//   - shows the cube's counters and its translations through GetState;
//   - deletes expired flows: their conntrack entries and their two sessions.

import type { K8sDispatcherConfig__Output as DispatcherConfig } from '@netcube/api/generated/netcube/k8sdispatcher/v1/K8sDispatcherConfig';
import { checked, collectNatFlows, conntrackConfig } from '@netcube/catalog/control';
import { natSessionsState, type NatState } from '@netcube/nat';
import { derivedMac } from '@netcube/sdk/codec';
import { defineService, type Cube, type CubeInfo } from '@netcube/sdk';
import { compileDispatcher } from './tables';

/** The collection's last result, as the nat cube's. */
type DispatcherState = NatState;

type Dispatcher = Cube<DispatcherConfig, DispatcherState>;

/** k8sdispatcher.bpf.c's enum disp_counter. */
const COUNTERS = ['masqueraded', 'nodePortSnat', 'nodePortLocal', 'toKernel', 'arpAnswered', 'noRoute', 'noNeighbour', 'noPort', 'invalid', 'notOurs'] as const;

/** The cube's own MAC on the chain's side: what the router's ARP for its gateway learns. */
export function gatewayMac(cube: string): string {
  return derivedMac(`k8s-gateway/${cube}`);
}

function compile(config: DispatcherConfig, info: CubeInfo) {
  return checked(() =>
    compileDispatcher(
      { ...config, conntrack: undefined, nodePorts: config.nodePorts.map((p) => ({ protocol: p.protocol, port: p.port, cluster: p.cluster })) },
      { ports: Object.fromEntries(info.portNames.map((name, i) => [name, i])), gatewayMac: gatewayMac(info.name) },
    ),
  );
}

export default defineService<DispatcherConfig, DispatcherState>({
  type: 'k8sdispatcher',
  config: { proto: 'netcube/k8sdispatcher/v1/k8sdispatcher.proto', message: 'netcube.k8sdispatcher.v1.K8sDispatcherConfig' },
  state: (): DispatcherState => ({}),

  validate(config, cube) {
    compile(config, cube);
  },

  staticTables: (cube) => ({ ...compile(cube.config, cube), nat_ct_config: conntrackConfig(cube.config.conntrack) }),

  tickSeconds: 5,
  async tick(cube) {
    cube.state.gc = await collectNatFlows(cube);
  },

  async describe(cube: Dispatcher) {
    return { gatewayMac: gatewayMac(cube.name), ...(await natSessionsState(cube, 'disp_counters', COUNTERS)) };
  },
});
