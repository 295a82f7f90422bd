// The pod's veth, made with iproute2 (`ip`), in the host's namespace and, through
// nsenter, in the pod's: one end named after the attachment on the host, the other
// moved into the pod's namespace under the runtime's name, with IPAM's addresses.
// The pod's address carries no prefix route (noprefixroute): everything, its own
// subnet too, goes to the gateway, the node's router, which is the only neighbour a
// pod ever resolves (its lbrp port passes ARP for no one else).

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { CNI_CODES, CniError } from './errors';

const run = promisify(execFile);

/** The host end's name: one per attachment (container id and interface), 13 characters, a valid port name. */
export function hostVethName(containerId: string, ifname: string): string {
  return `nc${createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 11)}`;
}

async function ip(args: string[], netns?: string): Promise<string> {
  const [cmd, argv] = netns ? ['nsenter', [`--net=${netns}`, '--', 'ip', ...args]] : ['ip', args];
  try {
    const { stdout } = await run(cmd, argv, { timeout: 10_000 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new CniError(CNI_CODES.IO_FAILURE, `ip ${args.join(' ')}${netns ? ` (in ${netns})` : ''} failed: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** The interface's MAC, or undefined when there is no such interface. */
export async function linkMac(name: string, netns?: string): Promise<string | undefined> {
  try {
    const out = JSON.parse(await ip(['-j', 'link', 'show', 'dev', name], netns)) as { address?: string }[];
    return out[0]?.address;
  } catch (err) {
    if (err instanceof CniError && /does not exist|Cannot find device/.test(err.message)) return undefined;
    throw err;
  }
}

/** The interface's IPv4 addresses as `a.b.c.d/len`. */
export async function linkAddresses(name: string, netns?: string): Promise<string[]> {
  const out = JSON.parse(await ip(['-j', '-4', 'addr', 'show', 'dev', name], netns)) as { addr_info?: { local: string; prefixlen: number }[] }[];
  return (out[0]?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`);
}

export interface PodInterface {
  hostMac: string;
  podMac: string;
}

/**
 * Makes the veth `host` <-> `ifname` (in `netns`), gives the pod's end `addresses`
 * and routes via `gateway`, and brings both up. A host end left by an earlier,
 * failed ADD of the same attachment is replaced.
 */
export async function makePodInterface(opts: { host: string; ifname: string; netns: string; mtu: number; addresses: string[]; gateway: string }): Promise<PodInterface> {
  const { host, ifname, netns, mtu, addresses, gateway } = opts;
  if ((await linkMac(ifname, netns)) !== undefined) {
    throw new CniError(CNI_CODES.INVALID_ENVIRONMENT, `the pod's network namespace ${netns} has an interface ${ifname} already: CNI_IFNAME must name a new interface`);
  }
  if ((await linkMac(host)) !== undefined) await ip(['link', 'del', 'dev', host]);
  await ip(['link', 'add', 'name', host, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', ifname, 'mtu', String(mtu), 'netns', netns]);
  for (const address of addresses) await ip(['addr', 'add', address, 'dev', ifname, 'noprefixroute'], netns);
  await ip(['link', 'set', 'dev', ifname, 'up'], netns);
  await ip(['route', 'add', `${gateway}/32`, 'dev', ifname, 'scope', 'link'], netns);
  await ip(['route', 'add', 'default', 'via', gateway, 'dev', ifname], netns);
  await ip(['link', 'set', 'dev', host, 'up']);
  return { hostMac: (await linkMac(host))!, podMac: (await linkMac(ifname, netns))! };
}

/** Deletes the host end (and with it the pod's): true if it was there. */
export async function deleteHostEnd(host: string): Promise<boolean> {
  if ((await linkMac(host)) === undefined) return false;
  try {
    await ip(['link', 'del', 'dev', host]);
  } catch (err) {
    // Gone meanwhile (its namespace deleted): what DEL wanted.
    if ((await linkMac(host)) !== undefined) throw err;
  }
  return true;
}
