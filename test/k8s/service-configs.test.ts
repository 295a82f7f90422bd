// What the controller writes of a node's chain (remote-services/k8s/src/service-configs.ts):
// the chain whole when its shape changes, with the lbrp's services and frontends out
// of it; those in the lbrp's config record, around the chain's write in the order
// that keeps every record valid (a pod's frontend gone before its port, come after
// it); the firewalls' rules as config records when they alone change; only what
// differs; config of cubes gone deleted. Pure: the chains come from the manifests
// through the model, the stored chain and the held config are made as the store
// returns them.

import test from 'ava';
import { checkedChain, type Chain, type JsonObject } from '@netcube/api/chain';
import { paramsDigest, type StoredChain, type StoredServiceConfig } from '@netcube/api/store';
import { clusterChains, DEFAULT_SETTINGS, nodeNames, orphanedConfigs, planChain, type HeldConfigs } from '@netcube/k8s';
import { clusterState, loadManifests, podPortOf, type KubeObject } from '../helpers/kube-manifests';

const names = nodeNames('n1');
const base = loadManifests('cluster.yaml');
const [webFromClient] = loadManifests('policies.yaml').filter((o) => o.metadata.name === 'web-from-client');
const WEB1 = 'nc00000000001';
const CLIENT = 'nc00000000002';

/** Node n1's chain from `objects`, with web-1 and (unless left out) the client placed. */
function n1Chain(objects: readonly KubeObject[], withClient = true): Chain {
  const ports = [podPortOf(objects, 'default', 'web-1', WEB1, 100), ...(withClient ? [podPortOf(objects, 'default', 'client', CLIENT, 101)] : [])];
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

const paramsOf = (chain: Chain, cube: string): JsonObject => chain.spec.cubes.find((c) => c.name === cube)!.params;
/** `wanted` as the controller stores it (its first write). */
const stored = (wanted: Chain, revision = 10): StoredChain => ({ name: wanted.metadata.name, version: 1, revision, appliedAt: '2026-01-01T00:00:00Z', chain: planChain(wanted, undefined, new Map()).chain! });

function held(type: string, cube: string, params: JsonObject, over: StoredChain, revision = 20): HeldConfigs {
  const h: StoredServiceConfig = { cube, params, chain: over.name, basis: paramsDigest(paramsOf(over.chain, cube)), setAt: '2026-01-01T00:00:00Z', setBy: 'service-k8s', revision };
  return new Map([[type, new Map([[cube, h]])]]);
}
/** The pods' lbrp config record of `wanted`, held over `over`. */
const lbrpHeld = (wanted: Chain, over: StoredChain, revision = 20): HeldConfigs => held('lbrp', names.pods, paramsOf(wanted, names.pods), over, revision);

test('a chain not stored yet is written whole without the lbrp\'s services and frontends; they are its config record, set once it is stored', (t) => {
  const chain = n1Chain(base);
  const plan = planChain(chain, undefined, new Map());
  t.deepEqual(plan.before, []);
  const lbrp = plan.chain!.spec.cubes.find((c) => c.name === names.pods)!;
  t.deepEqual(lbrp.params, { backendPort: 'up' }, 'the chain holds what no pod or Service changes');
  t.deepEqual(
    plan.chain!.spec.cubes.filter((c) => c.name !== names.pods),
    checkedChain(chain).spec.cubes.filter((c) => c.name !== names.pods),
    'every other cube as the model made it',
  );
  const services = paramsOf(chain, names.pods).services as unknown[];
  t.true(services.length > 0);

  const then = planChain(chain, stored(chain), new Map());
  t.is(then.chain, undefined, 'the stored chain is the one wanted');
  t.is(then.puts.length, 1);
  t.like(then.puts[0], { type: 'lbrp', cube: names.pods, heldRevision: 0, params: paramsOf(chain, names.pods) });
});

test('5,000 Services: far past what a cube\'s params in a chain take (64 KiB), all in the record', (t) => {
  const chain = structuredClone(n1Chain(base));
  const lbrp = chain.spec.cubes.find((c) => c.name === names.pods)!;
  const backends = [1, 2, 3].map((i) => ({ address: `10.244.1.${10 + i}`, port: 8080 }));
  lbrp.params.services = Array.from({ length: 5_000 }, (_, i) => ({ vip: `10.96.${i >> 8}.${i & 255}`, port: 80, protocol: 'tcp', backends }));
  t.true(JSON.stringify(lbrp.params).length > 64 * 1024);
  const plan = planChain(chain, undefined, new Map());
  t.deepEqual(plan.chain!.spec.cubes.find((c) => c.name === names.pods)!.params, { backendPort: 'up' });
  const [put] = planChain(chain, stored(chain), new Map()).puts;
  t.is((put.params.services as unknown[]).length, 5_000);
});

test('nothing differs: nothing is written', (t) => {
  const chain = n1Chain(base);
  const s = stored(chain);
  t.deepEqual(planChain(chain, s, lbrpHeld(chain, s)), { before: [], puts: [], deletes: [] });
});

test('an endpoint gone is the lbrp\'s config record alone; the chain is not rewritten', (t) => {
  const before = stored(n1Chain(base));
  const after = n1Chain(withoutWeb2(base));
  t.notDeepEqual(paramsOf(after, names.pods), paramsOf(n1Chain(base), names.pods), 'the model did change the lbrp\'s params');
  const plan = planChain(after, before, lbrpHeld(n1Chain(base), before));
  t.is(plan.chain, undefined);
  t.deepEqual(plan.puts.map((p) => [p.type, p.cube, p.stored, p.heldRevision]), [['lbrp', names.pods, before, 20]]);
  t.deepEqual(plan.puts[0].params, paramsOf(after, names.pods));
  // Once held, it stands: nothing more to write.
  t.deepEqual(planChain(after, before, lbrpHeld(after, before)), { before: [], puts: [], deletes: [] });
  // Config held over other params (an older chain's) is replaced, its revision named.
  const stale = held('lbrp', names.pods, paramsOf(after, names.pods), { ...before, chain: checkedChain(n1Chain(base)) }, 30);
  t.like(planChain(after, before, stale).puts[0], { cube: names.pods, heldRevision: 30 });
});

test('a pod gone: its frontend leaves the record before its port leaves the chain; nothing after', (t) => {
  const before = stored(n1Chain(base));
  const h = lbrpHeld(n1Chain(base), before);
  const after = n1Chain(base, false);
  const plan = planChain(after, before, h);
  t.deepEqual(plan.chain!.spec.cubes.find((c) => c.name === names.pods)!.ports, ['up', 'host', WEB1]);
  t.deepEqual(plan.before.map((p) => [p.cube, p.stored, p.heldRevision]), [[names.pods, before, 20]]);
  t.deepEqual(Object.keys(plan.before[0].params.frontends as JsonObject), ['host', WEB1]);
  t.deepEqual(plan.before[0].params, paramsOf(after, names.pods));
  t.deepEqual(plan.puts, [], 'the rest is planned against the chain once applied');
  // Applied: the record set before it stands on the new chain too.
  const applied: StoredChain = { ...before, version: 2, revision: 40, chain: plan.chain! };
  t.deepEqual(planChain(after, applied, lbrpHeld(after, before, 30)), { before: [], puts: [], deletes: [] });
});

test('a pod come: its port comes with the chain, then its frontend with the record', (t) => {
  const before = stored(n1Chain(base, false));
  const h = lbrpHeld(n1Chain(base, false), before);
  const after = n1Chain(base);
  const plan = planChain(after, before, h);
  t.deepEqual(plan.chain!.spec.cubes.find((c) => c.name === names.pods)!.ports, ['up', 'host', WEB1, CLIENT]);
  t.deepEqual(plan.before, [], 'the record in force holds on the new chain as it is');
  const applied: StoredChain = { ...before, version: 2, revision: 40, chain: plan.chain! };
  const then = planChain(after, applied, h);
  t.deepEqual(then.puts.map((p) => [p.cube, p.stored, p.heldRevision]), [[names.pods, applied, 20]], 'the record stands across the write: replaced, not set anew');
  t.deepEqual(Object.keys(then.puts[0].params.frontends as JsonObject).sort(), ['host', WEB1, CLIENT]);
});

test('a NetworkPolicy that isolates a pod changes the chain\'s shape: a firewall with its rules; the lbrp\'s record stands', (t) => {
  const before = stored(n1Chain(base));
  const after = n1Chain([...base, webFromClient]);
  const firewallName = names.firewall(WEB1);
  const heldBoth: HeldConfigs = new Map([...lbrpHeld(n1Chain(base), before), ['firewall', new Map([[firewallName, { cube: firewallName, params: {}, chain: names.chain, basis: '0'.repeat(64), setAt: '2026-01-01T00:00:00Z', setBy: 'service-k8s', revision: 21 }]])]]);
  const plan = planChain(after, before, heldBoth);
  const firewall = plan.chain!.spec.cubes.find((c) => c.type === 'firewall');
  t.is(firewall?.name, firewallName);
  t.like(firewall?.params, { egress: { defaultAction: 'drop' } }, 'the firewall comes with its rules');
  t.deepEqual(plan.before, []);
  t.deepEqual(plan.deletes.map((d) => [d.type, d.held.cube]), [['firewall', firewallName]], 'config held for the firewall no longer stands');
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
