// netcubectl and a remote service need no native code: with netcube's native addon
// unloadable for their processes (its file hidden, test/helpers/native.ts), against
// a running daemon, `netcubectl get cubes` and `describe cube` answer and the bridge
// service programs its cube, forwards through it and reports its FDB.

import { spawnSync } from 'node:child_process';
import test from 'ava';
import { Store } from '@netcube/api/store';
import { netcubectl } from '../cli/run';
import { startDaemon } from '../helpers/daemon';
import { startEtcd } from '../helpers/etcd';
import { ADDON, withoutAddon } from '../helpers/native';
import { createNetns, Netns } from '../helpers/netns';
import { applyChain, oneCubeChain, startServiceProcess } from './helpers';
import { waitFor } from '../helpers/wait';

test('netcubectl and the bridge service work with the native addon unloadable', async (t) => {
  // The wrapper really hides the addon: loading it fails there, and only there.
  const [file, ...args] = withoutAddon([process.execPath, '-e', `require(${JSON.stringify(ADDON)})`]);
  const hidden = spawnSync(file, args, { encoding: 'utf8' });
  t.not(hidden.status, 0, 'the addon loads in spite of the wrapper');
  t.regex(hidden.stderr, /netcube_bpf\.node/);
  t.is(spawnSync(process.execPath, ['-e', `require(${JSON.stringify(ADDON)})`]).status, 0);

  const etcd = await startEtcd(t);
  const host = await createNetns(t);
  const pods: Netns[] = [];
  for (const [i, dev] of ['p1', 'p2'].entries()) {
    const pod = await createNetns(t);
    await pod.exec('ip', ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', dev, 'netns', host.name]);
    await pod.exec('ip', ['addr', 'add', `10.6.0.${i + 1}/24`, 'dev', 'eth0']);
    await pod.exec('ip', ['link', 'set', 'dev', 'eth0', 'up']);
    await host.exec('ip', ['link', 'set', 'dev', dev, 'up']);
    pods.push(pod);
  }
  const daemon = await startDaemon(t, { netns: host, etcd: etcd.endpoints });
  await daemon.waitConnected();
  const store = await Store.connect({ endpoints: etcd.endpoints });
  t.teardown(() => store.close());
  await applyChain(store, oneCubeChain('pods', { name: 'br1', type: 'bridge', host: daemon.name }, ['p1', 'p2'], ['p1', 'p2']));

  const service = await startServiceProcess(t, { service: 'bridge', etcd: etcd.endpoints, name: 'bridge-1', withoutAddon: true });
  const api = service.client();
  t.teardown(() => api.close());
  await waitFor('the bridge cube ready', async () => {
    const cubes = await api.listCubes();
    return cubes.length === 1 && cubes[0].ready;
  });
  await pods[0].exec('ping', ['-c', '2', '-i', '0.2', '-W', '2', '10.6.0.2']);
  const mac = async (ns: Netns) => (JSON.parse((await ns.exec('ip', ['-j', 'link', 'show', 'eth0'])).stdout) as { address: string }[])[0].address;
  const state = (await api.getState('br1')) as { fdb: { mac: string; port: string }[] };
  t.deepEqual(state.fdb.map((e) => `${e.mac} ${e.port}`).sort(), [`${await mac(pods[0])} p1`, `${await mac(pods[1])} p2`].sort());

  const cubes = await netcubectl(['get', 'cubes', '-o', 'json'], { etcd: etcd.endpoints, withoutAddon: true });
  t.is(cubes.code, 0, cubes.stderr);
  t.like(JSON.parse(cubes.stdout), [{ name: 'br1', host: daemon.name, chain: 'pods', type: 'bridge' }]);
  // describe talks to the daemon over gRPC, through the client netcubectl shares with the SDK.
  const described = await netcubectl(['describe', 'cube', 'br1'], { etcd: etcd.endpoints, withoutAddon: true });
  t.is(described.code, 0, described.stderr);
  t.regex(described.stdout, /Data plane: id \d+/);
  t.regex(described.stdout, /p1\s+0\s+netdev:p1\s+[1-9]/);
});
