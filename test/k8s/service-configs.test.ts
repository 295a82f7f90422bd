// What the controller writes of a node's chain (remote-services/k8s/src/service-configs.ts):
// the chain whole when its shape changes, else the lbrp's and firewalls' config as the
// services' config records, set over the stored chain's params; only what differs;
// config of cubes gone deleted. Pure: the chains come from the manifests through the
// model, the stored chain and the held config are made as the store returns them.

import test from 'ava';
import { checkedChain, type Chain, type JsonObject } from '@netcube/api/chain';
import { paramsDigest, type StoredChain, type StoredServiceConfig } from '@netcube/api/store';
import { clusterChains, DEFAULT_SETTINGS, nodeNames, orphanedConfigs, planChain, type HeldConfigs } from '@netcube/k8s';
import { clusterState, loadManifests, podPortOf, type KubeObject } from '../helpers/kube-manifests';

const names = nodeNames('n1');
const base = loadManifests('cluster.yaml');
const [webFromClient] = loadManifests('policies.yaml').filter((o) => o.metadata.name === 'web-from-client');

/** Node n1's chain from `objects`, with web-1 and client placed. */
function n1Chain(objects: readonly KubeObject[]): Chain {
  const ports = [podPortOf(objects, 'default', 'web-1', 'nc00000000001', 100), podPortOf(objects, 'default', 'client', 'nc00000000002', 101)];
  return clusterChains(clusterState(objects, ports), DEFAULT_SETTINGS, { edge: false }).chains.get('n1')!;
}

/** The cluster with web-2 gone from the web Service's endpoints. */
function withoutWeb2(objects: readonly KubeObject[]): KubeObject[] {
  return objects.map((o) => {
    if (o.kind !== 'EndpointSlice' || o.metadata.name !== 'web-abc12') return o;
    const slice = structuredClone(o) as KubeObject & { endpoints: { addresses: string[] }[] };
    slice.endpoints = slice.endpoints.filter((e) => !e.addresses.includes('10.244.2.10'));
    return slice;
  });
}

const stored = (chain: Chain, revision = 10): StoredChain => ({ name: chain.metadata.name, version: 1, revision, appliedAt: '2026-01-01T00:00:00Z', chain: checkedChain(chain) });
const paramsOf = (chain: Chain, cube: string): JsonObject => chain.spec.cubes.find((c) => c.name === cube)!.params;

function held(type: string, cube: string, params: JsonObject, over: StoredChain, revision = 20): HeldConfigs {
  const h: StoredServiceConfig = { cube, params, chain: over.name, basis: paramsDigest(paramsOf(over.chain, cube)), setAt: '2026-01-01T00:00:00Z', setBy: 'service-k8s', revision };
  return new Map([[type, new Map([[cube, h]])]]);
}

test('a chain not stored yet is written whole, its cubes\' params in it', (t) => {
  const chain = n1Chain(base);
  const plan = planChain(chain, undefined, new Map());
  t.deepEqual(plan.chain, checkedChain(chain));
  t.deepEqual(plan.puts, []);
  t.deepEqual(plan.deletes, []);
});

test('nothing differs: nothing is written', (t) => {
  const chain = n1Chain(base);
  t.deepEqual(planChain(chain, stored(chain), new Map()), { puts: [], deletes: [] });
});

test('an endpoint gone is the lbrp\'s config, set over the stored chain\'s params; the chain is not rewritten', (t) => {
  const before = stored(n1Chain(base));
  const after = n1Chain(withoutWeb2(base));
  const plan = planChain(after, before, new Map());
  t.is(plan.chain, undefined);
  t.is(plan.puts.length, 1);
  t.like(plan.puts[0], { type: 'lbrp', cube: names.pods, heldRevision: 0 });
  t.is(plan.puts[0].stored, before);
  t.deepEqual(plan.puts[0].params, paramsOf(after, names.pods));
  t.notDeepEqual(paramsOf(after, names.pods), paramsOf(before.chain, names.pods), 'the model did change the lbrp\'s params');

  // Once held, it stands: nothing more to write.
  t.deepEqual(planChain(after, before, held('lbrp', names.pods, paramsOf(after, names.pods), before)), { puts: [], deletes: [] });
  // The endpoint back: the chain's own params are wanted again, the held config goes.
  const back = planChain(n1Chain(base), before, held('lbrp', names.pods, paramsOf(after, names.pods), before));
  t.deepEqual(back.puts, []);
  t.deepEqual(back.deletes.map((d) => [d.type, d.held.cube]), [['lbrp', names.pods]]);
  // Config held over other params (stale) is replaced, its revision named.
  const stale = held('lbrp', names.pods, paramsOf(after, names.pods), stored(n1Chain(withoutWeb2(base))));
  t.like(planChain(after, before, stale).puts[0], { cube: names.pods, heldRevision: 20 });
});

test('a NetworkPolicy that isolates a pod changes the chain\'s shape (a firewall on its port): written whole, held config dropped', (t) => {
  const before = stored(n1Chain(base));
  const after = n1Chain([...withoutWeb2(base), webFromClient]);
  const plan = planChain(after, before, held('lbrp', names.pods, paramsOf(n1Chain(withoutWeb2(base)), names.pods), before));
  t.truthy(plan.chain);
  const firewall = plan.chain!.spec.cubes.find((c) => c.type === 'firewall');
  t.is(firewall?.name, names.firewall('nc00000000001'));
  t.like(firewall?.params, { egress: { defaultAction: 'drop' } }, 'the firewall comes with its rules');
  t.deepEqual(plan.puts, []);
  t.deepEqual(plan.deletes.map((d) => d.held.cube), [names.pods]);
});

test('config of cubes no chain has any more is orphaned; other services\' cubes are not the controller\'s', (t) => {
  const chain = n1Chain(base);
  const gone: StoredServiceConfig = { cube: names.firewall('nc00000000009'), params: {}, chain: names.chain, basis: '0'.repeat(64), setAt: '2026-01-01T00:00:00Z', setBy: 'service-k8s', revision: 3 };
  const foreign: StoredServiceConfig = { ...gone, cube: 'fw-edge', chain: 'edge' };
  const kept: StoredServiceConfig = { ...gone, cube: names.pods };
  const heldConfigs: HeldConfigs = new Map([
    ['firewall', new Map([[gone.cube, gone], [foreign.cube, foreign]])],
    ['lbrp', new Map([[kept.cube, kept]])],
  ]);
  t.deepEqual(orphanedConfigs([chain], heldConfigs, 'k8s-').map((o) => [o.type, o.held.cube]), [['firewall', gone.cube]]);
});
