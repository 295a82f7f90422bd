// deploy/setup.sh's decisions, on a copy of the script with apt-get, dpkg-query and
// npm replaced by stubs that record how they were called: a fresh machine gets every
// package without a prompt, then npm ci, the build and the commands linked onto PATH;
// a machine that has everything gets only the (incremental) build and the links, and
// the CNI plugin lands in the CNI plugin directory. The real installs cannot run in a
// test.

import test, { ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO } from '../cli/run';

const execFileAsync = promisify(execFile);

const PACKAGES = [
  'clang', 'llvm', 'libbpf-dev', 'bpftool', 'pkg-config', 'libelf-dev', 'zlib1g-dev', 'make', 'g++',
  'etcd-server', 'etcd-client', 'iproute2', 'iperf3', 'iputils-ping', 'ethtool', 'containernetworking-plugins',
  'nftables', 'tcpdump', 'podman', 'runc', 'busybox-static', 'sockperf',
];

const LINK = ['npm link --workspaces=false --no-audit --no-fund', 'npm link --workspaces --no-audit --no-fund', 'npm prefix -g'];

interface Machine {
  dir: string;
  calls(): string[];
  run(): Promise<{ code: number; stdout: string; stderr: string }>;
}

/** A repository copy with setup.sh, and stubs; `installed` lists the packages dpkg knows. */
function machine(t: ExecutionContext, installed: string[], lockfile = true, linked = ['netcubed', 'netcubectl', 'netcube-svc'], bins: Record<string, string> = { 'netcube-svc': 'main.js' }): Machine {
  const dir = mkdtempSync(join(tmpdir(), 'nct-setup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'deploy'));
  mkdirSync(join(dir, 'bin'));
  copyFileSync(join(REPO, 'deploy', 'setup.sh'), join(dir, 'deploy', 'setup.sh'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ workspaces: ['svc'] }));
  mkdirSync(join(dir, 'svc'));
  writeFileSync(join(dir, 'svc', 'package.json'), JSON.stringify({ bin: bins }));
  if (lockfile) writeFileSync(join(dir, 'package-lock.json'), '{}\n');
  const log = join(dir, 'calls.log');
  const stub = (name: string, body: string) => {
    writeFileSync(join(dir, 'bin', name), `#!/bin/bash\n${body}\n`);
    chmodSync(join(dir, 'bin', name), 0o755);
  };
  stub('dpkg-query', `pkg="\${!#}"; for p in ${installed.join(' ')}; do [[ $p == "$pkg" ]] && { printf 'install ok installed'; exit 0; }; done; exit 1`);
  stub('apt-get', `echo "apt-get DEBIAN_FRONTEND=$DEBIAN_FRONTEND $*" >> ${log}`);
  // npm link: the commands appear in the global prefix's bin, as npm makes them.
  const prefix = join(dir, 'prefix');
  const links = linked.map((c) => `touch ${prefix}/bin/${c}; chmod +x ${prefix}/bin/${c}`).join('; ');
  stub('npm', `echo "npm $*" >> ${log}; [[ $1 == -v ]] && echo 10.0.0; [[ $1 == ci || $1 == install ]] && mkdir -p node_modules && echo '{}' > node_modules/.package-lock.json; [[ $1 == prefix ]] && echo ${prefix}; [[ $1 == link ]] && mkdir -p ${prefix}/bin && { ${links || 'true'}; }; exit 0`);
  return {
    dir,
    calls: () => {
      try {
        return readFileSync(log, 'utf8').trim().split('\n').filter(l => l && l !== 'npm -v');
      } catch {
        return [];
      }
    },
    run: async () => {
      try {
        const { stdout, stderr } = await execFileAsync('bash', [join(dir, 'deploy', 'setup.sh')], {
          env: { PATH: `${join(dir, 'bin')}:${process.env.PATH}`, HOME: dir, CNI_BIN_DIR: join(dir, 'cni') },
        });
        return { code: 0, stdout, stderr };
      } catch (err) {
        const e = err as { code: number; stdout: string; stderr: string };
        return { code: e.code, stdout: e.stdout, stderr: e.stderr };
      }
    },
  };
}

test('a fresh machine: every package without prompts, then npm ci and the build', async t => {
  const m = machine(t, []);
  const res = await m.run();
  t.is(res.code, 0, res.stderr);
  t.deepEqual(m.calls(), [
    'apt-get DEBIAN_FRONTEND=noninteractive update -q',
    `apt-get DEBIAN_FRONTEND=noninteractive install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold ${PACKAGES.join(' ')}`,
    'npm ci --no-audit --no-fund',
    'npm run build',
    ...LINK,
  ]);
  t.regex(res.stdout, /==> Debian packages\n {4}installing: clang llvm/);
  t.regex(res.stdout, /==> commands on PATH\n {4}netcubed -> .*\n {4}netcubectl -> .*\n {4}netcube-svc -> /);
});

test('a command npm did not link is an error that names it', async t => {
  const m = machine(t, PACKAGES, true, ['netcubed', 'netcubectl']);
  const res = await m.run();
  t.is(res.code, 1);
  t.regex(res.stderr, /netcube-svc is not in .*prefix\/bin after npm link/);
});

test('run again with everything present: only the incremental build', async t => {
  const m = machine(t, PACKAGES);
  t.is((await m.run()).code, 0);
  t.deepEqual(m.calls(), ['npm ci --no-audit --no-fund', 'npm run build', ...LINK]);
  // node_modules now matches the lockfile: the second run skips apt and npm ci.
  const future = new Date(Date.now() + 10_000);
  utimesSync(join(m.dir, 'node_modules', '.package-lock.json'), future, future);
  const again = await m.run();
  t.is(again.code, 0, again.stderr);
  t.deepEqual(m.calls(), ['npm ci --no-audit --no-fund', 'npm run build', ...LINK, 'npm run build', ...LINK]);
  t.regex(again.stdout, new RegExp(`all ${PACKAGES.length} present`));
  t.regex(again.stdout, /node_modules is up to date/);
});

test('only the missing packages are installed; without a lockfile npm install', async t => {
  const m = machine(t, PACKAGES.filter(p => p !== 'ethtool' && p !== 'iperf3'), false);
  t.is((await m.run()).code, 0);
  const calls = m.calls();
  t.regex(calls[1], /install -y .* iperf3 ethtool$/);
  t.is(calls[2], 'npm install --no-audit --no-fund');
});

test('the CNI plugin is linked into the CNI plugin directory too', async t => {
  const m = machine(t, PACKAGES, true, ['netcubed', 'netcubectl', 'netcube-cni'], { 'netcube-cni': 'cni.js' });
  const res = await m.run();
  t.is(res.code, 0, res.stderr);
  t.is(readlinkSync(join(m.dir, 'cni', 'netcube-cni')), join(m.dir, 'prefix', 'bin', 'netcube-cni'));
  t.regex(res.stdout, /netcube-cni also in .*\/cni, the CNI plugin directory/);
});

test('without the CNI plugin among the commands, no CNI plugin directory is made', async t => {
  const m = machine(t, PACKAGES);
  t.is((await m.run()).code, 0);
  t.false(existsSync(join(m.dir, 'cni')));
});
