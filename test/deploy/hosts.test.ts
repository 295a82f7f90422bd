// The issue-4 acceptance: a chain spanning three namespace-hosts carrying real
// traffic, applied with netcubectl. deploy/hosts.sh builds the hosts (with a name
// prefix and a state directory of this test's own, and etcd on free ports, so a
// developer's demo is never touched), netcubectl applies deploy/examples/demo-chain.yaml
// placed on them, ping crosses it, and hosts.sh down leaves nothing behind. And
// issue 11's: the deployment is locked down, etcd over TLS with client certificates
// only and its access control on, netcubectl the admin, hosts' files root's alone.

import test from 'ava';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { parseChain } from '@netcube/api/chain';
import { PermissionDeniedError, Store } from '@netcube/api/store';
import { netcubectl, REPO, scratch, writeFile } from '../cli/run';
import { waitFor } from '../helpers/wait';

const execFileAsync = promisify(execFile);
const HOSTS_SH = join(REPO, 'deploy', 'hosts.sh');

/** One deployment of hosts.sh, named so that it collides with nothing else. */
class Deployment {
  readonly prefix: string;
  readonly state: string;
  readonly hosts: string[];
  readonly clients: string[];

  constructor(tag: string, count: number) {
    this.prefix = `nct-${process.pid}-${tag}`;
    this.state = `/run/nct-deploy-${process.pid}-${tag}`;
    this.hosts = Array.from({ length: count }, (_, i) => `${this.prefix}${i + 1}`);
    this.clients = [`${this.prefix}-client1`, `${this.prefix}-client2`];
  }

  up(args: string[] = [], env: Record<string, string> = {}): Promise<Run> {
    return hostsSh(['up', String(this.hosts.length), '--name', this.prefix, '--state', this.state, '--etcd-port', 'auto', ...args], 300_000, env);
  }

  down(): Promise<Run> {
    return hostsSh(['down', '--state', this.state]);
  }

  pids(): number[] {
    return readdirSync(join(this.state, 'pids')).map(f => Number(readFileSync(join(this.state, 'pids', f), 'utf8')));
  }

  /** What `hosts.sh env` exports: etcd's endpoints and the admin's certificate for it. */
  env(): Record<string, string> {
    return Object.fromEntries(readFileSync(join(this.state, 'env'), 'utf8').trim().split('\n').map(l => l.split(/=(.*)/s).slice(0, 2)));
  }

  etcd(): string[] {
    return this.env().NETCUBE_ETCD.split(',');
  }

  /** A store with the certificate `who` (a file of the deployment's pki/). */
  connect(who: string): Promise<Store> {
    const pki = join(this.state, 'pki');
    return Store.connect({ endpoints: this.etcd(), tls: { ca: join(pki, 'ca.crt'), cert: join(pki, `${who}.crt`), key: join(pki, `${who}.key`) }, retry: { timeoutMs: 2_000 } });
  }

  /** What up left on the machine, to check that down removed all of it. */
  leftovers(pids: number[]): string[] {
    const found: string[] = [];
    const namespaces = existsSync('/run/netns') ? readdirSync('/run/netns') : [];
    for (const ns of namespaces) if (ns.startsWith(this.prefix)) found.push(`namespace ${ns}`);
    for (const pid of pids) if (existsSync(`/proc/${pid}`)) found.push(`process ${pid}`);
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      if (this.hosts.some(h => line.includes(`/run/netcube/${h}/`))) found.push(`mount ${line}`);
    }
    for (const dir of [this.state, ...this.hosts.map(h => `/run/netcube/${h}`)]) if (existsSync(dir)) found.push(`directory ${dir}`);
    return found;
  }
}

const line = new Deployment('h', 3);
const cluster = new Deployment('q', 1);
const kube = new Deployment('k', 2);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function hostsSh(args: string[], timeout = 120_000, env: Record<string, string> = {}): Promise<Run> {
  try {
    const { stdout, stderr } = await execFileAsync('bash', [HOSTS_SH, ...args], { timeout, env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Forgets the failed ARP of a ping that had no way through, so the next one is not refused at once. */
async function forgetNeighbours(clients: string[]): Promise<void> {
  for (const ns of clients) await execFileAsync('ip', ['-n', ns, 'neigh', 'flush', 'all']);
}

async function ping(from: string, count: number): Promise<string> {
  try {
    const { stdout } = await execFileAsync('ip', ['netns', 'exec', from, 'ping', '-n', '-q', '-c', String(count), '-i', '0.05', '-W', '1', '10.77.0.2']);
    return stdout;
  } catch (err) {
    return (err as { stdout?: string }).stdout ?? '';
  }
}

// Also when the test fails: down is idempotent, and finds nothing once the test ran it.
test.after.always(async () => {
  await line.down();
  await cluster.down();
  await kube.down();
});

test('a chain spanning three namespace-hosts carries real traffic, applied with netcubectl', async t => {
  const up = await line.up();
  t.is(up.code, 0, `${up.stdout}\n${up.stderr}`);
  for (const host of line.hosts) t.regex(up.stdout, new RegExp(`${host} registered`));
  const pids = line.pids();
  t.is(pids.length, 4, 'an etcd and three netcubeds');
  const run = (args: string[]) => netcubectl(args, { env: line.env() });

  const status = await hostsSh(['status', '--state', line.state]);
  t.is(status.code, 0, status.stdout);
  const twice = await line.up();
  t.is(twice.code, 1);
  t.regex(twice.stderr, /already holds a deployment: run hosts.sh down --state .* first/);
  const hosts = JSON.parse((await run(['get', 'hosts', '-o', 'json'])).stdout);
  t.deepEqual(hosts.map((h: { name: string }) => h.name).sort(), line.hosts);

  // Locked down: etcd only over TLS with a client certificate, a host's own writes only.
  t.regex(line.etcd()[0], /^https:\/\/127\.0\.0\.1:\d+$/);
  const plain = await netcubectl(['get', 'chains'], { env: { NETCUBE_ETCD: line.etcd()[0].replace('https://', '') }, timeoutMs: 30_000 });
  t.is(plain.code, 1, 'etcd in the clear');
  const anonymous = await netcubectl(['get', 'chains'], { env: { NETCUBE_ETCD: line.etcd()[0], NETCUBE_TLS_CA: line.env().NETCUBE_TLS_CA }, timeoutMs: 30_000 });
  t.is(anonymous.code, 1, 'etcd without a client certificate');
  const host = await line.connect(`host-${line.hosts[0]}`);
  try {
    await t.throwsAsync(host.chains.apply(parseChain(readFileSync(join(REPO, 'deploy', 'examples', 'demo-chain.yaml'), 'utf8'))), { instanceOf: PermissionDeniedError });
    await t.throwsAsync(host.status.putStatuses(line.hosts[1], new Map([['fwd2', { chain: 'demo', version: 1, revision: 1, state: 'applied' }]])), { instanceOf: PermissionDeniedError });
  } finally {
    await host.close();
  }
  for (const h of line.hosts) {
    t.is(statSync(`/run/netcube/${h}`).mode & 0o777, 0o700, `/run/netcube/${h}`);
    t.is(statSync(`/run/netcube/${h}/bpf`).mode & 0o777, 0o700, `the bpffs of ${h}`);
    t.is(statSync(join(line.state, 'logs', `netcubed-${h}.log`)).mode & 0o777, 0o640);
  }
  t.is(statSync(join(line.state, 'pki', 'admin.key')).mode & 0o777, 0o600);

  // Without a chain the hosts forward nothing.
  t.regex(await ping(line.clients[0], 1), /100% packet loss/);

  // The example chain, placed on this test's hosts.
  const example = readFileSync(join(REPO, 'deploy', 'examples', 'demo-chain.yaml'), 'utf8');
  const chainFile = writeFile(scratch(t), 'chain.yaml', example.replace(/host: h(\d)/g, `host: ${line.prefix}$1`));
  const applied = await run(['apply', '-f', chainFile, '--wait', '--timeout', '60s']);
  t.is(applied.code, 0, applied.stderr);
  t.regex(applied.stdout, /chain demo version 1 is applied on every host \(4 cubes\)/);
  t.regex(applied.stderr, /4\/4 cubes applied\n$/);

  await forgetNeighbours(line.clients);
  await ping(line.clients[0], 1); // resolves the peer's address
  const pinged = await ping(line.clients[0], 20);
  t.regex(pinged, /20 packets transmitted, 20 received, 0% packet loss/, pinged);

  const cubes = parseYaml((await run(['get', 'cubes', '-o', 'yaml'])).stdout);
  const [h1, h2, h3] = line.hosts;
  t.deepEqual(
    cubes.map((c: { name: string; host: string; status: { state: string } }) => `${c.host}/${c.name} ${c.status.state}`).sort(),
    [`${h1}/fwd1 applied`, `${h2}/ddos2 applied`, `${h2}/fwd2 applied`, `${h3}/fwd3 applied`],
  );

  // The packets went through the cubes: fwd2 on the middle host counted them both ways.
  const fwd2 = JSON.parse((await run(['describe', 'cube', 'fwd2', '-o', 'json'])).stdout);
  const port = (name: string) => fwd2.ports.find((p: { name: string }) => p.name === name);
  t.true(Number(port('left').stats.rxPackets) >= 20, JSON.stringify(fwd2.ports));
  t.true(Number(port('right').stats.rxPackets) >= 20, JSON.stringify(fwd2.ports));

  const topology = await run(['topology']);
  t.is(topology.code, 0, topology.stderr);
  for (const host of line.hosts) t.regex(topology.stdout, new RegExp(`^${host} `, 'm'));
  t.regex(topology.stdout, new RegExp(`netdev left +<-> fwd2:left  ==> ${h1} netdev:right\n│ +└── stack: ddos2 \\(ingress\\)`));
  const dot = await run(['topology', '-o', 'dot']);
  t.regex(dot.stdout, /^digraph netcube \{/);
  t.is((dot.stdout.match(/subgraph "cluster_/g) ?? []).length, 3);

  const down = await line.down();
  t.is(down.code, 0, down.stderr);
  t.deepEqual(line.leftovers(pids), []);
  t.is(execFileSync('bash', [HOSTS_SH, 'down', '--state', line.state]).toString(), `nothing to tear down: ${line.state} holds no deployment\n`);
});

/**
 * A TCP socket bound to 127.0.0.1:`port` and not listening: `ss -ltn` does not show
 * it, and etcd cannot bind the port. It stands for a process that takes a port
 * after hosts.sh found it free. (Node binds only to listen or connect: python3,
 * which node-gyp needs anyway.)
 */
async function bindQuietly(port: number): Promise<{ close(): void }> {
  const child = spawn('python3', ['-c', `import socket,sys\ns=socket.socket()\ns.bind(('127.0.0.1',${port}))\nprint('bound',flush=True)\nsys.stdin.read()`], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', code => reject(new Error(`python3 could not bind 127.0.0.1:${port} (exit ${code})`)));
  });
  return { close: () => void child.kill() };
}

/** A block of ten ports from 23790 up that no socket uses (the ones etcd's members would take). */
function freeBlock(): number {
  const used = new Set(execFileSync('ss', ['-Htan'], { encoding: 'utf8' }).trim().split('\n').map(l => Number(l.trim().split(/\s+/)[3]?.split(':').pop())));
  for (let base = 23790 + Math.floor(Math.random() * 200) * 10; base < 29990; base += 10) {
    if (Array.from({ length: 20 }, (_, i) => base + i).every(p => !used.has(p))) return base;
  }
  throw new Error('no free block of ports from 23790 up');
}

test('a 3-member etcd: hosts and netcubectl use every member; a port taken after up chose it is chosen again', async t => {
  // up looks for ports from `from` (NETCUBE_ETCD_PORTS_FROM); the first member's
  // port is taken once it looked and before etcd binds it.
  const from = freeBlock();
  const blocker = await bindQuietly(from);
  let up: Run;
  try {
    up = await cluster.up(['--etcd-members', '3'], { NETCUBE_ETCD_PORTS_FROM: String(from) });
  } finally {
    blocker.close();
  }
  t.is(up.code, 0, `${up.stdout}\n${up.stderr}`);
  t.regex(up.stdout, /a port of etcd member m0 was taken after it was chosen: choosing others/);
  t.regex(up.stdout, /etcd: 3 members at https:\/\/127\.0\.0\.1:\d+,https:\/\/127\.0\.0\.1:\d+,https:\/\/127\.0\.0\.1:\d+/);
  t.false(cluster.etcd().includes(`https://127.0.0.1:${from}`), cluster.etcd().join(','));
  const pids = cluster.pids();
  t.is(pids.length, 4, 'three etcd members and a netcubed');
  const etcd = cluster.etcd();
  t.is(etcd.length, 3);
  const status = await hostsSh(['status', '--state', cluster.state]);
  t.is(status.code, 0, status.stdout);
  t.regex(status.stdout, /etcd-m2: running/);

  // One host between the two clients, in TC mode.
  const chain = `apiVersion: netcube/v1
kind: Chain
metadata: {name: one}
spec:
  cubes: [{name: solo, host: ${cluster.hosts[0]}, type: nop, mode: tc, ports: [left, right]}]
  links: [{from: netdev:left, to: solo:left}, {from: solo:right, to: netdev:right}]
`;
  const applied = await netcubectl(['apply', '-f', '-', '--wait'], { env: cluster.env(), input: chain });
  t.is(applied.code, 0, applied.stderr);
  await ping(cluster.clients[0], 1); // resolves the peer's address
  const pinged = await ping(cluster.clients[0], 5);
  t.regex(pinged, /5 packets transmitted, 5 received, 0% packet loss/, pinged);
  // Any one member serves netcubectl.
  const viaLast = await netcubectl(['get', 'chains', '-o', 'json'], { env: { ...cluster.env(), NETCUBE_ETCD: etcd[2] } });
  t.is(JSON.parse(viaLast.stdout)[0].name, 'one');

  const down = await cluster.down();
  t.is(down.code, 0, down.stderr);
  t.deepEqual(cluster.leftovers(pids), []);
});

test('hosts.sh refuses bad input with a usage message', async t => {
  const bad = `/run/nct-deploy-${process.pid}-bad`;
  const noCount = await hostsSh(['up', '--state', bad]);
  t.is(noCount.code, 1);
  t.regex(noCount.stderr, /how many hosts\? e\.g\. hosts\.sh up 3/);
  const members = await hostsSh(['up', '2', '--etcd-members', '2', '--state', bad]);
  t.is(members.code, 1);
  t.regex(members.stderr, /--etcd-members: 1 or 3/);
  const name = await hostsSh(['up', '2', '--name', 'Bad_Name', '--state', bad]);
  t.is(name.code, 1);
  t.regex(name.stderr, /--name: host names are PREFIX1\.\.PREFIXN/);
  const port = await hostsSh(['up', '2', '--name', 'nct-bad', '--etcd-port', 'twenty', '--state', bad]);
  t.is(port.code, 1);
  t.regex(port.stderr, /--etcd-port: a port number or auto/);
  const pods = await hostsSh(['up', '2', '--name', 'nct-bad', '--pods', '3', '--state', bad]);
  t.is(pods.code, 1);
  t.regex(pods.stderr, /--pods: pods run on Kubernetes nodes only: add --k8s/);
  const many = await hostsSh(['up', '2', '--name', 'nct-bad', '--k8s', '--pods', '10', '--state', bad]);
  t.is(many.code, 1);
  t.regex(many.stderr, /--pods: pods per node, 0 to 9, got '10'/);
  t.false(existsSync('/run/netns/nct-bad1'), 'a refused up leaves nothing behind');
  const command = await hostsSh(['sideways']);
  t.is(command.code, 1);
  t.regex(command.stderr, /unknown command 'sideways'/);
  const status = await hostsSh(['status', '--state', bad]);
  t.is(status.code, 3);
  t.false(existsSync(bad));
});

test('--k8s: namespace-hosts as Kubernetes nodes on one segment, VXLAN between them, pods added by netcube-cni talking across nodes and, masqueraded, to a client outside', async t => {
  t.timeout(480_000);
  const up = await kube.up(['--k8s', '--pods', '1']);
  t.is(up.code, 0, `${up.stdout}\n${up.stderr}`);
  const [n1, n2] = kube.hosts;
  t.regex(up.stdout, new RegExp(`${n1}-p1 on ${n1}: 10\\.244\\.1\\.11`));
  const pids = kube.pids();
  t.is(pids.length, 1 + 2 + 1 + 1 + 4 + 2, 'etcd, two netcubeds, the API server, the controller, four services, two agents');
  const status = await hostsSh(['status', '--state', kube.state]);
  t.is(status.code, 0, status.stdout);
  t.regex(status.stdout, new RegExp(`agent-${n1}: running`));

  // Each node's VXLAN netdev forwards to the other node.
  const fdb = JSON.parse(execFileSync('ip', ['netns', 'exec', n1, 'bridge', '-j', 'fdb', 'show', 'dev', 'ncvx0']).toString()) as { mac: string; dst?: string }[];
  t.deepEqual(fdb.filter(e => e.dst).map(e => e.dst), ['10.78.0.12', '10.78.0.12']);
  const chains = JSON.parse((await netcubectl(['get', 'chains', '-o', 'json'], { env: kube.env() })).stdout) as { name: string }[];
  t.deepEqual(chains.map(c => c.name).sort(), [`k8s-${n1}`, `k8s-${n2}`]);

  // A pod on n1 reaches the pod on n2 (the router's first packet resolves the other router).
  const across = async (count: number) => {
    try {
      const { stdout } = await execFileAsync('ip', ['netns', 'exec', `${n1}-p1`, 'ping', '-n', '-q', '-c', String(count), '-i', '0.05', '-W', '1', '10.244.2.11']);
      return stdout;
    } catch (err) {
      return (err as { stdout?: string }).stdout ?? '';
    }
  };
  await waitFor('the pod on n1 reaching the pod on n2', async () => /1 received/.test(await across(1)), 60_000);
  t.regex(await across(10), /10 packets transmitted, 10 received, 0% packet loss/);

  // The pod reaches the client outside the cluster through its node's edge, masqueraded to n1's address.
  const capture = spawn('ip', ['netns', 'exec', kube.clients[0], 'tcpdump', '-n', '-l', '-c', '1', '-i', 'eth0', 'icmp[icmptype] = icmp-echo'], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => capture.kill());
  let captured = '';
  capture.stdout.on('data', (d: Buffer) => (captured += d.toString()));
  await waitFor('the client seeing a ping of the pod on n1', async () => {
    await execFileAsync('ip', ['netns', 'exec', `${n1}-p1`, 'ping', '-n', '-q', '-c', '1', '-W', '1', '10.78.0.100']).catch(() => undefined);
    return captured.includes('ICMP echo request') && captured;
  }, 60_000);
  t.regex(captured, /IP 10\.78\.0\.11 > 10\.78\.0\.100: ICMP echo request/, "the client sees the node's address, not the pod's");

  const down = await kube.down();
  t.is(down.code, 0, down.stderr);
  t.deepEqual(kube.leftovers(pids), []);
});
