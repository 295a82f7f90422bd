// What a failed chain waited for comes later (issue 10, item 5): a netdev created
// after the chain that links it is seen (rtnetlink, through `ip monitor link`) and
// the chain applied at once; a failure nothing announces (a type registered later)
// is healed by the periodic pass (--reconcile-interval).

import test from 'ava';
import { typeCatalog } from '@netcube/api/chain';
import { ApplyFailedError } from '@netcube/api/store';
import { openEnv, probeObjects } from '../api/setup';
import { waitFor } from '../helpers/wait';
import { chain, statusOf } from './setup';

test('a chain that links a netdev not there yet is applied as soon as the netdev appears', async (t) => {
  const env = await openEnv();
  t.teardown(() => env.close());
  const host = env.daemon.name;
  const r = await env.store.chains.apply(chain('late', host, [{ name: 'l1', mode: 'tc' }], [['netdev:late0', 'l1:p0']]));
  await t.throwsAsync(env.store.status.waitApplied('late', r.version, { timeoutMs: 30_000 }), { instanceOf: ApplyFailedError, message: /netdev late0 does not exist/ });

  // The default periodic pass is a minute away: only the netdev's appearance can bring it in time.
  await env.netns.exec('ip', ['link', 'add', 'late0', 'type', 'veth', 'peer', 'name', 'late1']);
  await waitFor('the chain applied once late0 exists', async () => (await statusOf(env.store, 'late')).l1?.state === 'applied', 20_000);
  const cube = await env.client.getCube({ name: 'l1' });
  t.deepEqual(cube.ports.find((p) => p.name === 'p0')?.peer, { netdev: 'late0', kind: 'netdev' });
  t.regex(env.daemon.logTail(200), /"msg":"trying failed chains again"[^\n]*netdevs appeared: [^"]*late0/);
});

test('a chain that failed for want of a type is applied by the periodic pass once the type is registered', async (t) => {
  const env = await openEnv({ args: ['--reconcile-interval', '1'] });
  t.teardown(() => env.close());
  const host = env.daemon.name;
  // Applied as if probe were known: the cluster does not know it yet, so the host fails it.
  const catalog = typeCatalog([...(await env.store.types.listTypes()), { name: 'probe', transparent: false, microcubes: 2, modes: ['xdp', 'tc'] }]);
  const r = await env.store.chains.apply(chain('wants', host, [{ name: 'w1', type: 'probe' }], []), { types: catalog });
  await t.throwsAsync(env.store.status.waitApplied('wants', r.version, { timeoutMs: 30_000 }), { instanceOf: ApplyFailedError, message: /probe/ });

  // A type put into etcd changes no chain, and no daemon watches types: nothing but the periodic pass tries it again.
  const { xdpObject, tcObject } = probeObjects();
  await env.store.types.putType({ name: 'probe', transparent: false, microcubes: 2, modes: ['xdp', 'tc'], objects: { xdp: xdpObject, tc: tcObject } });
  await waitFor('the chain applied once its type exists', async () => (await statusOf(env.store, 'wants')).w1?.state === 'applied', 20_000);
  t.is((await env.client.getCube({ name: 'w1' })).type, 'probe');
});
