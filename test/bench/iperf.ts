// iperf3 between two namespaces, one TCP stream, as the services suite's p4 and the
// k8s suite's cross.tcp measure it: the server on IPERF_PORT, the client for
// `seconds` after one second left out, both pinned.
import { spawn } from 'node:child_process';
import { allowedCpus } from '../helpers/cpus';
import type { Netns } from '../helpers/netns';
import { waitFor } from '../helpers/wait';
import type { Closer } from './closers';

export const IPERF_PORT = 5201;

export interface IperfRun {
  gbps: number;
  /** How busy the sender's and the receiver's CPUs were (%). */
  senderCpu: number;
  receiverCpu: number;
}

/**
 * iperf3's -A for the client: the client on the first CPU this process may use,
 * the server on the second (the sender's CPU also carries the forwarding and the
 * receiver's TCP, in softirq). Left to the scheduler, the two sometimes share a
 * CPU and a round measures that instead of the data path.
 */
const CPUS = allowedCpus();
const AFFINITY = CPUS.length >= 2 ? ['-A', `${CPUS[0]},${CPUS[1]}`] : [];

/**
 * An iperf3 server on IPERF_PORT in each pair's `server` namespace, killed by
 * `closers` (and with this process); resolves once each pair's `client` connects
 * to it at `address`, within `timeoutMs` for all of them.
 */
export async function startIperfServers(pairs: readonly { server: Netns; client: Netns; address: string }[], closers: Closer[], timeoutMs: number): Promise<void> {
  for (const pair of pairs) {
    const server = spawn('/usr/bin/setpriv', ['--pdeathsig=KILL', '--', 'ip', 'netns', 'exec', pair.server.name, 'iperf3', '-s', '-p', String(IPERF_PORT)], { stdio: 'ignore' });
    closers.push(() => {
      if (server.exitCode === null) server.kill('SIGKILL');
    });
  }
  await waitFor('the iperf3 servers', async () => {
    for (const pair of pairs) await pair.client.exec('bash', ['-c', `exec 3<>/dev/tcp/${pair.address}/${IPERF_PORT}`]);
    return true;
  }, timeoutMs);
}

/** One iperf3 run from `client` to the server at `address`. */
export async function iperf(client: Netns, address: string, seconds: number): Promise<IperfRun> {
  const args = ['-c', address, '-p', String(IPERF_PORT), '-t', String(seconds + 1), '-O', '1', '-J', ...AFFINITY];
  const { stdout } = await client.exec('iperf3', args, { timeoutMs: (seconds + 30) * 1000 });
  const { end } = JSON.parse(stdout) as { end: { sum_received: { bits_per_second: number }; cpu_utilization_percent: { host_total: number; remote_total: number } } };
  return { gbps: end.sum_received.bits_per_second / 1e9, senderCpu: end.cpu_utilization_percent.host_total, receiverCpu: end.cpu_utilization_percent.remote_total };
}
