// Interfaces inside network namespaces. The lookup runs natively on a thread
// of its own that joins the namespace; Node's threads never change namespace.
import { native } from './addon';
import { checkIfname, netnsPath } from './validate';

/** The ifindex of `ifname`, in `netns` (a name under /run/netns, or a path) or in ours. */
export async function ifindex(ifname: string, netns?: string): Promise<number> {
  checkIfname(ifname, 'ifname');
  return native.ifindex(ifname, netnsPath(netns, 'netns'));
}
