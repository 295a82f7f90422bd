// The SDK runs where netcubed does not: `npm pack` of @netcube/api, @netcube/sdk and
// the tutorial's macfilter service, installed into an empty directory outside the
// repository with only `node` and `sh` on PATH (no compiler, make or python, so
// nothing native could build) and no network (the tarballs and npm's cache), then
// the tutorial's service started from there, in a namespace of its own, against a
// netcubed it reaches over TLS: it registers its type, its cube forwards, its slow
// path sees both sources.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'ava';
import { Store } from '@netcube/api/store';
import { ServiceClient } from '@netcube/sdk';
import { NetcubedProcess } from '../helpers/daemon';
import { startEtcd } from '../helpers/etcd';
import { createNetns, Netns } from '../helpers/netns';
import { applyChain, managementCertificates, oneCubeChain, startServiceProcess } from './helpers';
import { waitFor } from '../helpers/wait';

const REPO = path.resolve(__dirname, '../../../..');
const PACKAGES = ['proto', 'remote-services/sdk', 'remote-services/examples/macfilter'];

interface Manifest {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  bin?: Record<string, string>;
}

interface LockEntry {
  version?: string;
  resolved?: string;
  integrity?: string;
  link?: boolean;
  bin?: Record<string, string>;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

/**
 * A lockfile for an app that depends on `tarballs`: their own entries, and every
 * package they need as the repository's lockfile pins it (same versions, same
 * integrity, same layout). `npm ci --offline` then takes everything from the
 * tarballs and npm's cache, which the repository's `npm ci` filled, and asks no
 * registry for anything.
 */
function lockFor(tarballs: { file: string; manifest: Manifest }[]): object {
  const repoLock = JSON.parse(fs.readFileSync(path.join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const packages: Record<string, LockEntry> = {
    '': { dependencies: Object.fromEntries(tarballs.map((p) => [p.manifest.name, `file:${p.file}`])) },
  };
  const queue: { from: string; deps: Record<string, string> }[] = [];
  for (const p of tarballs) {
    const integrity = `sha512-${createHash('sha512').update(fs.readFileSync(p.file)).digest('base64')}`;
    const { version, dependencies, bin } = p.manifest;
    packages[`node_modules/${p.manifest.name}`] = { version, resolved: `file:${p.file}`, integrity, dependencies, bin };
    queue.push({ from: `node_modules/${p.manifest.name}`, deps: p.manifest.dependencies ?? {} });
  }
  // Node's resolution: the nearest node_modules/<dep> going up from the requiring package.
  while (queue.length > 0) {
    const { from, deps } = queue.pop()!;
    for (const dep of Object.keys(deps)) {
      if (tarballs.some((p) => p.manifest.name === dep)) continue;
      let at = from;
      let found: string | undefined;
      for (;;) {
        const candidate = `${at ? `${at}/` : ''}node_modules/${dep}`;
        if (repoLock.packages[candidate] && !repoLock.packages[candidate].link) {
          found = candidate;
          break;
        }
        if (!at) break;
        const cut = at.lastIndexOf('/node_modules/');
        at = cut < 0 ? '' : at.slice(0, cut);
      }
      if (!found) throw new Error(`${from} needs ${dep}, which package-lock.json does not have`);
      if (packages[found]) continue;
      packages[found] = repoLock.packages[found];
      queue.push({ from: found, deps: { ...packages[found].dependencies, ...packages[found].optionalDependencies } });
    }
  }
  return { name: 'netcube-install-test', lockfileVersion: 3, requires: true, packages };
}

/** Step 2 of the tutorial: the objects, where the service's `objects` paths point from the directory it runs in. */
function buildObjects(app: string): void {
  const arch = os.arch() === 'arm64' ? 'arm64' : 'x86';
  const out = path.join(app, 'build', 'macfilter');
  fs.mkdirSync(out, { recursive: true });
  for (const hook of ['xdp', 'tc']) {
    execFileSync('clang', ['-target', 'bpf', '-O2', '-g', `-D__TARGET_ARCH_${arch}`, '-I', 'build/bpf', '-I', 'bpf/include', `-DNC_HOOK_${hook.toUpperCase()}`,
      '-c', 'remote-services/examples/macfilter/macfilter.bpf.c', '-o', path.join(out, `macfilter.${hook}.o`)], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  }
}

function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

test('the SDK packed, installed elsewhere without native tools or the network, runs the tutorial service against netcubed over TLS', async (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'nct-install-'));
  t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
  const npmCli = path.join(execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim(), 'npm', 'bin', 'npm-cli.js');

  // npm pack, as a maintainer publishing the packages would.
  const packs = path.join(work, 'packs');
  fs.mkdirSync(packs);
  const packed = JSON.parse(
    execFileSync(process.execPath, [npmCli, 'pack', '--json', '--pack-destination', packs, ...PACKAGES.flatMap((w) => ['-w', w])], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
  ) as { filename: string; name: string }[];
  const tarballs = packed.map((p) => {
    const manifest = JSON.parse(fs.readFileSync(path.join(REPO, PACKAGES[packed.indexOf(p)], 'package.json'), 'utf8')) as Manifest;
    return { file: path.join(packs, p.filename), manifest };
  });

  // An empty directory, a PATH with node and sh alone, npm's cache, no registry.
  const app = path.join(work, 'app');
  const bin = path.join(work, 'bin');
  fs.mkdirSync(app);
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  fs.symlinkSync('/bin/sh', path.join(bin, 'sh')); // npm runs install scripts with it
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'netcube-install-test', private: true, dependencies: Object.fromEntries(tarballs.map((p) => [p.manifest.name, `file:${p.file}`])) }));
  fs.writeFileSync(path.join(app, 'package-lock.json'), JSON.stringify(lockFor(tarballs)));
  execFileSync(process.execPath, [npmCli, 'ci', '--offline', '--no-audit', '--no-fund'], {
    cwd: app,
    env: { PATH: bin, HOME: os.homedir(), npm_config_cache: execFileSync('npm', ['config', 'get', 'cache'], { encoding: 'utf8' }).trim() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const installed = filesUnder(path.join(app, 'node_modules'));
  t.deepEqual(installed.filter((f) => f.endsWith('.node') || f.endsWith('binding.gyp')), [], 'nothing native was installed');
  t.false(fs.existsSync(path.join(app, 'node_modules', 'node-addon-api')));
  const command = path.join(app, 'node_modules', '.bin', 'netcube-macfilter');
  t.true(fs.existsSync(command), 'the service command is installed as a bin');
  buildObjects(app);

  // A host with a netcubed serving TLS on a management link, and the service in a
  // namespace of its own on the other end, as it would run on another machine.
  const etcd = await startEtcd(t);
  const host = await createNetns(t);
  const ctl = await createNetns(t);
  const certs = managementCertificates(['10.78.0.1']);
  t.teardown(() => certs.remove());
  const veth = async (a: Netns, aName: string, aAddress: string, b: Netns, bName: string, bAddress?: string) => {
    await a.exec('ip', ['link', 'add', aName, 'type', 'veth', 'peer', 'name', bName, 'netns', b.name]);
    await a.exec('ip', ['addr', 'add', `${aAddress}/24`, 'dev', aName]);
    if (bAddress) await b.exec('ip', ['addr', 'add', `${bAddress}/24`, 'dev', bName]);
    await a.exec('ip', ['link', 'set', 'dev', aName, 'up']);
    await b.exec('ip', ['link', 'set', 'dev', bName, 'up']);
  };
  await veth(host, 'mgmt', '10.78.0.1', ctl, 'mhost', '10.78.0.2');
  const left = await createNetns(t);
  const right = await createNetns(t);
  await veth(left, 'eth0', '10.5.0.1', host, 'l0');
  await veth(right, 'eth0', '10.5.0.2', host, 'r0');
  const daemon = await NetcubedProcess.start({
    netns: host,
    name: `install-${process.pid}`,
    etcd: etcd.endpoints,
    listen: '10.78.0.1:7400',
    tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca },
  });
  t.teardown(() => daemon.cleanup());
  await daemon.waitConnected();

  const service = await startServiceProcess(t, {
    service: fs.realpathSync(command),
    cwd: app,
    etcd: etcd.endpoints,
    name: 'installed',
    netns: ctl,
    tls: { ca: certs.ca, ...certs.service('macfilter') },
  });
  t.true(fs.realpathSync(command).startsWith(app + path.sep), 'the service runs from the installed package');

  const chains = await Store.connect({ endpoints: etcd.endpoints });
  t.teardown(() => chains.close());
  await waitFor('the type registered by the service', async () => (await chains.types.listTypes()).some((type) => type.name === 'macfilter'));
  await applyChain(chains, oneCubeChain('installed', { name: 'mf', type: 'macfilter', host: daemon.name }, ['left', 'right'], ['l0', 'r0']));
  const api: ServiceClient = service.client();
  t.teardown(() => api.close());
  await waitFor('the cube ready', async () => {
    const cubes = await api.listCubes();
    return cubes.length === 1 && cubes[0].ready;
  });
  const info = await api.getService();
  t.true(info.hosts.some((h) => h.endpoint === '10.78.0.1:7400' && h.connected), `the daemon reached over TLS: ${JSON.stringify(info.hosts)}`);

  await left.exec('ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.5.0.2']);
  const mac = async (ns: Netns) => (JSON.parse((await ns.exec('ip', ['-j', 'link', 'show', 'eth0'])).stdout) as { address: string }[])[0].address;
  t.deepEqual(await api.getState('mf'), { seen: [await mac(left), await mac(right)].sort() });
});
