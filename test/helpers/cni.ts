// netcube-cni called as the CNI spec describes: the network config on stdin, the
// CNI_* environment, the result or the error as JSON on stdout; run inside the
// node's namespace (nsenter --net), as a container runtime on that node runs it,
// with Debian's reference plugins (host-local) on CNI_PATH.

import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Netns } from './netns';

export const PLUGIN = join(__dirname, '../../../../remote-services/k8s/build/src/cni/main.js');
/** Where Debian's containernetworking-plugins are. */
export const CNI_PATH = '/usr/lib/cni';

export interface Call {
  code: number;
  out: Record<string, unknown>;
}

/** One CNI call of the plugin (netcube-cni, or the command `plugin` names) inside the node's namespace. */
export function cni(node: Netns, command: string, conf: unknown, env: Record<string, string> = {}, plugin: string[] = [process.execPath, PLUGIN]): Promise<Call> {
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=${node.path}`, '--', ...plugin], {
      env: { PATH: process.env.PATH, CNI_COMMAND: command, CNI_PATH, ...env },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.on('error', reject);
    child.on('close', (code) => {
      try {
        resolve({ code: code ?? -1, out: stdout.trim() ? JSON.parse(stdout) : {} });
      } catch {
        reject(new Error(`${command}: not JSON on stdout: ${stdout}`));
      }
    });
    child.stdin.end(typeof conf === 'string' ? conf : JSON.stringify(conf));
  });
}

/** The CNI_* environment of pod `name` (namespace default) attached as eth0 of container `id`, as the kubelet's runtime sets it. */
export const attachment = (pod: Netns, id: string, name = 'web-1') => ({
  CNI_CONTAINERID: id,
  CNI_NETNS: pod.path,
  CNI_IFNAME: 'eth0',
  CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${name};K8S_POD_INFRA_CONTAINER_ID=${id}`,
});

/** The addresses host-local has leased in `dataDir` (network netcube). */
export const leases = (dataDir: string) => (existsSync(join(dataDir, 'netcube')) ? readdirSync(join(dataDir, 'netcube')).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)) : []);
