// podman 4 (Debian's, with runc) as a node's container runtime for the provider's
// tests: its CNI backend calls netcube-cni for every container it starts and removes,
// as a kubelet's runtime would. Everything podman keeps is private to the test: its
// storage (vfs, so nothing is mounted on the host), its run root, its containers.conf
// (CONTAINERS_CONF), its CNI config directory (never /etc/cni/net.d) and plugin
// directory. podman runs in the node's network namespace (nsenter --net, no new mount
// namespace: the containers' namespace files must stay visible to the next call).
// The image is busybox made offline: Debian's busybox-static imported as a tarball.

import type { ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CNI_PATH, PLUGIN } from './cni';
import type { Netns } from './netns';

const execFileAsync = promisify(execFile);

export const IMAGE = 'localhost/nct-busybox:1';
const BUSYBOX = '/bin/busybox';
/** The applets the tests use, as links to busybox in the image's /bin. */
const APPLETS = ['sh', 'ip', 'ping', 'nc', 'sleep', 'cat', 'echo'];

export interface Podman {
  /** `podman <args>` in the node's namespace with the test's private configuration; rejects with its output on failure. */
  run(args: string[], timeoutMs?: number): Promise<string>;
  /** Starts a container on network `network` (a conflist in the private CNI directory) that sleeps; resolves with its address once podman has started it, i.e. after the CNI ADD succeeded. */
  startPod(name: string, network: string): Promise<string>;
}

/**
 * podman for node `node`, with `conflists` (network name -> conflist) as its CNI
 * networks. Every container is removed (CNI DEL) and the directory deleted in the
 * test's teardown.
 */
export async function podmanOn(t: ExecutionContext, node: Netns, conflists: Record<string, unknown>): Promise<Podman> {
  const dir = mkdtempSync(join(tmpdir(), `nct-podman-${process.pid}-`));
  const netDir = join(dir, 'net.d');
  const pluginDir = join(dir, 'plugins');
  mkdirSync(netDir);
  mkdirSync(pluginDir);
  for (const [name, conflist] of Object.entries(conflists)) writeFileSync(join(netDir, `${name}.conflist`), JSON.stringify(conflist));
  // The plugin as a runtime finds it: an executable named after its type, in a plugin directory.
  writeFileSync(join(pluginDir, 'netcube-cni'), `#!/bin/sh\nexec ${process.execPath} ${PLUGIN} "$@"\n`);
  chmodSync(join(pluginDir, 'netcube-cni'), 0o755);
  // This machine's limits cannot be raised (no CAP_SYS_RESOURCE): podman's defaults would ask runc to.
  writeFileSync(
    join(dir, 'containers.conf'),
    [
      '[containers]',
      'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
      '[network]',
      'network_backend = "cni"',
      `network_config_dir = "${netDir}"`,
      `cni_plugin_dirs = ["${pluginDir}", "${CNI_PATH}"]`,
      '[engine]',
      'events_logger = "none"',
      'cgroup_manager = "cgroupfs"',
      '',
    ].join('\n'),
  );
  const global = ['--root', join(dir, 'storage'), '--runroot', join(dir, 'run'), '--storage-driver', 'vfs', '--tmpdir', join(dir, 'tmp')];
  const run = async (args: string[], timeoutMs = 120_000): Promise<string> => {
    try {
      const { stdout } = await execFileAsync('nsenter', [`--net=${node.path}`, '--', 'podman', ...global, ...args], {
        env: { PATH: process.env.PATH, HOME: dir, CONTAINERS_CONF: join(dir, 'containers.conf') },
        timeout: timeoutMs,
        maxBuffer: 16 << 20,
      });
      return stdout.trim();
    } catch (err) {
      const e = err as Error & { stdout?: string; stderr?: string };
      throw new Error(`podman ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    }
  };
  t.teardown(async () => {
    // Removing a container is its CNI DEL; then podman's own state goes with the directory.
    await run(['rm', '--all', '--force', '--time', '0']).catch((err) => t.log(String(err)));
    rmSync(dir, { recursive: true, force: true });
  });

  const rootfs = join(dir, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  await execFileAsync('cp', [BUSYBOX, join(rootfs, 'bin', 'busybox')]);
  for (const applet of APPLETS) symlinkSync('busybox', join(rootfs, 'bin', applet));
  await execFileAsync('tar', ['-C', rootfs, '-cf', join(dir, 'busybox.tar'), '.']);
  await run(['import', join(dir, 'busybox.tar'), IMAGE]);

  return {
    run,
    startPod: async (name, network) => {
      await run(['run', '--detach', '--name', name, '--network', network, '--cap-add', 'NET_RAW', IMAGE, 'sleep', '3600']);
      return run(['inspect', '--format', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, name]);
    },
  };
}
