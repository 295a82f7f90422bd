// iperf3 between two namespaces, one TCP stream, as the services suite's p4 and the
// k8s suite's cross.tcp measure it: the server on IPERF_PORT (started by the suite),
// the client for `seconds` after one second left out, both pinned.
import { allowedCpus } from '../helpers/cpus';
import type { Netns } from '../helpers/netns';

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

/** One iperf3 run from `client` to the server at `address`. */
export async function iperf(client: Netns, address: string, seconds: number): Promise<IperfRun> {
  const args = ['-c', address, '-p', String(IPERF_PORT), '-t', String(seconds + 1), '-O', '1', '-J', ...AFFINITY];
  const { stdout } = await client.exec('iperf3', args, { timeoutMs: (seconds + 30) * 1000 });
  const { end } = JSON.parse(stdout) as { end: { sum_received: { bits_per_second: number }; cpu_utilization_percent: { host_total: number; remote_total: number } } };
  return { gbps: end.sum_received.bits_per_second / 1e9, senderCpu: end.cpu_utilization_percent.host_total, receiverCpu: end.cpu_utilization_percent.remote_total };
}
