// The "write a new cube" tutorial of remote-services/README.md, followed step by
// step: build the macfilter example's objects with clang as the tutorial says, let
// its service (a few dozen lines of SDK) register the type, apply a chain with a
// cube of it, and check that it works: traffic through it, its slow path, its
// config API.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'ava';
import { Logger } from '@netcube/api/log';
import { Store } from '@netcube/api/store';
import macfilter from '@netcube/example-macfilter';
import { ServiceClient, startService } from '@netcube/sdk';
import { startDaemon } from '../helpers/daemon';
import { startEtcd } from '../helpers/etcd';
import { createNetns } from '../helpers/netns';
import { applyChain, oneCubeChain } from './helpers';
import { waitFor } from '../helpers/wait';

const REPO = path.resolve(__dirname, '../../../..');

/** Step 2 of the tutorial: one object per hook, with the framework's headers. */
function build(out: string): { xdp: string; tc: string } {
  const arch = os.arch() === 'arm64' ? 'arm64' : 'x86';
  const objects = { xdp: path.join(out, 'macfilter.xdp.o'), tc: path.join(out, 'macfilter.tc.o') };
  for (const hook of ['xdp', 'tc'] as const) {
    execFileSync('clang', ['-target', 'bpf', '-O2', '-g', `-D__TARGET_ARCH_${arch}`, '-I', 'build/bpf', '-I', 'bpf/include', `-DNC_HOOK_${hook.toUpperCase()}`, '-c', 'remote-services/examples/macfilter/macfilter.bpf.c', '-o', objects[hook]], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  }
  return objects;
}

test('the tutorial\'s cube: built, registered by its service, placed by a chain, filtering traffic', async (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'nct-macfilter-'));
  t.teardown(() => fs.rmSync(out, { recursive: true, force: true }));
  const objects = build(out);

  const etcd = await startEtcd(t);
  const host = await createNetns(t);
  const left = await createNetns(t);
  const right = await createNetns(t);
  for (const [ns, dev, addr] of [[left, 'l0', '10.5.0.1'], [right, 'r0', '10.5.0.2']] as const) {
    await ns.exec('ip', ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', dev, 'netns', host.name]);
    await ns.exec('ip', ['addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    await ns.exec('ip', ['link', 'set', 'dev', 'eth0', 'up']);
    await host.exec('ip', ['link', 'set', 'dev', dev, 'up']);
  }
  const mac = async (ns: typeof left) => (JSON.parse((await ns.exec('ip', ['-j', 'link', 'show', 'eth0'])).stdout) as { address: string }[])[0].address;
  const daemon = await startDaemon(t, { netns: host, etcd: etcd.endpoints });
  await daemon.waitConnected();
  const client = daemon.client();
  t.teardown(() => client.close());
  const store = await Store.connect({ endpoints: etcd.endpoints });
  t.teardown(() => store.close());

  // Step 3: the service registers the type (its `objects`) once it leads.
  const lines: string[] = [];
  const svc = await startService({ ...macfilter, objects }, { etcd: etcd.endpoints, replica: 'tutorial', listen: `unix:${out}/api.sock`, log: new Logger('debug', {}, (l) => lines.push(l)) });
  t.teardown(() => svc.close());
  t.teardown(() => {
    if (!t.passed) t.log(lines.slice(-40).join(''));
  });
  await waitFor('the type registered', () => store.types.getType('macfilter').catch(() => undefined));

  // Step 5: a chain with a cube of it; its host loads the type from etcd.
  await applyChain(store, oneCubeChain('filter', { name: 'mf', type: 'macfilter', host: daemon.name }, ['left', 'right'], ['l0', 'r0']));
  const type = await waitFor('the type on the host', () => client.getType({ name: 'macfilter' }).catch(() => undefined));
  t.deepEqual(type.tables.map((x) => x.name).sort(), ['blocked', 'seen', 'wiring']);
  const api = ServiceClient.connect({ target: svc.endpoint! });
  t.teardown(() => api.close());
  await waitFor('the cube ready', async () => (await api.listCubes()).every((c) => c.ready) || undefined);

  // Step 6: it works. The first frame of each source goes through the slow path.
  await left.ping('10.5.0.2', 3);
  t.deepEqual(await api.getState('mf'), { seen: [await mac(left), await mac(right)].sort() });
  await api.setConfig({ cube: 'mf', config: { blocked: [await mac(right)] } });
  await waitFor('right blocked', async () => left.ping('10.5.0.2', 1).then(() => false, () => true), 10_000);
  await api.setConfig({ cube: 'mf', config: { blocked: [] } });
  await waitFor('right unblocked', async () => left.ping('10.5.0.2', 1).then(() => true, () => false), 10_000);
  const bad = await t.throwsAsync(api.setConfig({ cube: 'mf', config: { blocked: ['02:00:00:00:00'] } }));
  t.regex(bad!.message, /config\.blocked\[0\]: /);
});
