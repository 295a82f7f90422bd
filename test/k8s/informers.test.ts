// The controller's view of the API (remote-services/k8s/src/kube/source.ts):
// @kubernetes/client-node's informers against the scripted API server
// (test/helpers/kube-apiserver.ts) serving the manifests of test/k8s/manifests.
// Lists, then watches from the list's version; a watch the server closes resumes
// from the last version seen, without a list; after compaction the resumed watch
// is Gone (410) and the informer lists again, seeing what was deleted meanwhile.

import test, { ExecutionContext } from 'ava';
import { Logger } from '@netcube/api/log';
import { KubeSource, loadKubeConfig } from '@netcube/k8s';
import { KubeApiServer, kubeconfig } from '../helpers/kube-apiserver';
import { loadManifests } from '../helpers/kube-manifests';
import { waitFor } from '../helpers/wait';

const objects = loadManifests('cluster.yaml', 'policies.yaml');

async function setup(t: ExecutionContext) {
  const api = await KubeApiServer.start(objects);
  t.teardown(() => api.stop());
  // --master overrides the kubeconfig's server, as for kube components.
  const kc = loadKubeConfig({ kubeconfig: kubeconfig(t), master: api.url });
  const lines: string[] = [];
  const source = new KubeSource(kc, { log: new Logger('debug', {}, (l) => lines.push(l)), retryMs: 20, retryMaxMs: 200 });
  t.teardown(() => source.stop());
  let changes = 0;
  source.on('changed', () => changes++);
  await source.start();
  return { api, source, lines, changes: () => changes };
}

const names = (list: readonly { metadata?: { namespace?: string; name?: string } }[]) => list.map((o) => `${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`).sort();

test('lists every resource, then follows changes from the list', async (t) => {
  const { api, source, changes } = await setup(t);
  const state = source.state();
  t.deepEqual(names(state.nodes), ['n1', 'n2']);
  t.deepEqual(names(state.pods), ['default/client', 'default/web-1', 'default/web-2', 'other/probe', 'prod/db']);
  t.is(state.networkPolicies.length, 4);
  t.is(state.endpointSlices.length, 4);
  t.deepEqual(names(state.namespaces), ['default', 'other', 'prod']);
  t.deepEqual(
    api.requests.filter((r) => !r.watch).map((r) => r.kind).sort(),
    ['EndpointSlice', 'Namespace', 'NetworkPolicy', 'Node', 'Pod', 'Service'],
    'one list each',
  );
  t.true(api.requests.filter((r) => r.watch).every((r) => r.resourceVersion === String(api.resourceVersion)), 'watches start at the lists version');

  const before = changes();
  api.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-3', namespace: 'default', labels: { app: 'web' } }, spec: { nodeName: 'n1' } });
  api.delete('NetworkPolicy', 'default-deny', 'default');
  await waitFor('the new pod and the deleted policy', () => names(source.state().pods).includes('default/web-3') && source.state().networkPolicies.length === 3);
  t.true(changes() > before);
});

test('a watch the server closes resumes from the last version seen, without listing again', async (t) => {
  const { api, source } = await setup(t);
  await waitFor('every watch open', () => api.openWatches === 6);
  const lists = api.requests.filter((r) => !r.watch).length;
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'late', labels: { team: 'late' } } });
  await waitFor('the namespace', () => names(source.state().namespaces).includes('late'));
  const seen = api.resourceVersion;
  t.is(api.closeWatches(), 6);
  // Written while no watch is open: the resumed watch replays it.
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'later' } });
  await waitFor('the namespace written while the watches were closed', () => names(source.state().namespaces).includes('later'));
  await waitFor('every watch open again', () => api.openWatches === 6);
  t.is(api.requests.filter((r) => !r.watch).length, lists, 'no list');
  t.true(api.requests.some((r) => r.watch && r.kind === 'Namespace' && r.resourceVersion === String(seen)), 'the namespaces watch resumed from the last version it saw');
});

test('after compaction a resumed watch is Gone (410): the informer lists again, and sees what went meanwhile', async (t) => {
  const { api, source, lines } = await setup(t);
  await waitFor('every watch open', () => api.openWatches === 6);
  api.closeWatches();
  // While the informers reconnect, history goes: a pod leaves, another comes, then compaction.
  api.delete('Pod', 'probe', 'other');
  api.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'late', namespace: 'other' }, spec: { nodeName: 'n2' } });
  api.compact();
  api.closeWatches();
  await waitFor('the pods as the API has them', () => {
    const pods = names(source.state().pods);
    return !pods.includes('other/probe') && pods.includes('other/late');
  });
  await waitFor('every watch open again', () => api.openWatches === 6);
  t.true(api.requests.some((r) => r.kind === 'Pod' && r.outcome === 'gone'), 'the pods watch got 410');
  t.true(api.requests.filter((r) => r.kind === 'Pod' && r.outcome === 'list').length >= 2, 'and listed again');
  t.false(lines.some((l) => l.includes('"level":"error"')));
});

test('an API server that refuses the watch: the informer starts again until it is back', async (t) => {
  const api = await KubeApiServer.start(objects);
  t.teardown(() => api.stop());
  const kc = loadKubeConfig({ kubeconfig: kubeconfig(t), master: `${api.url}/nowhere` });
  const lines: string[] = [];
  const source = new KubeSource(kc, { log: new Logger('debug', {}, (l) => lines.push(l)), retryMs: 10, retryMaxMs: 50 });
  t.teardown(() => source.stop());
  let started = false;
  void source.start().then(() => (started = true));
  await waitFor('the informers to report failing and retry', () => lines.filter((l) => l.includes('starting it again')).length >= 12);
  t.false(started, 'not synced while nothing lists');
  t.regex(lines[0], /"resource":"\w+".*"retryInMs":10/);
});
