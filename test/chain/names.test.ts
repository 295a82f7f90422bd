// One name grammar: a cube or port name the chain format accepts is one netcubed's
// runtime accepts, and a name one refuses the other refuses too.

import test from 'ava';
import { validateChain, type Chain } from '@netcube/api/chain';
import { hostNameProblem } from '@netcube/api/names';
import { wire, type Topology } from '../../node-daemon/src/runtime/topology';
import { catalog, cube } from './fixtures';

const CUBE_NAMES = ['fwd', 'k8s-n1-pods', 'nop_nostats', 'a', '9lives', 'x'.repeat(63), 'x'.repeat(64), 'Fwd', 'fwd.1', '-fwd', 'fwd_', 'fw d', ''];
const PORT_NAMES = ['in', 'p0', 'eth_0', 'up-link', 'veth1a2b3c4d', 'x'.repeat(15), 'x'.repeat(16), 'Up', 'a.b', 'a:b', ''];
const FACTS = { transparent: false, microcubes: 1, modes: ['xdp' as const, 'tc' as const] };

function chainAccepts(name: string, ports: string[]): boolean {
  const chain: Chain = { apiVersion: 'netcube/v1', kind: 'Chain', metadata: { name: 'names' }, spec: { cubes: [cube(name, 'host1', ports)], links: [], attachments: [] } };
  try {
    validateChain(chain, { types: catalog, otherChains: [] });
    return true;
  } catch {
    return false;
  }
}

function runtimeAccepts(name: string, ports: string[]): boolean {
  const topo: Topology = { cubes: [{ name, type: 'simpleforwarder', mode: 'xdp', ports, logLevel: 'info' }], links: [], stacks: [] };
  try {
    wire(topo, () => FACTS);
    return true;
  } catch {
    return false;
  }
}

for (const name of CUBE_NAMES) {
  test(`cube name ${JSON.stringify(name)}: the chain and the runtime agree`, t => {
    t.is(runtimeAccepts(name, ['in']), chainAccepts(name, ['in']));
  });
}

for (const port of PORT_NAMES) {
  test(`port name ${JSON.stringify(port)}: the chain and the runtime agree`, t => {
    t.is(runtimeAccepts('fwd', [port]), chainAccepts('fwd', [port]));
  });
}

test('the names the project uses are names', t => {
  for (const name of ['k8s-n1-pods', 'nop_nostats', 'simpleforwarder']) t.true(chainAccepts(name, ['in']), name);
  for (const host of ['host1', 'node-3.rack2', 'nct-123-4']) t.is(hostNameProblem(host), undefined, host);
  t.regex(hostNameProblem('Node.rack2') ?? '', /host name 'Node\.rack2' is invalid/);
});
