// The node kernel's way into its chain (model/nodes.ts's HOST_LINK): a veth pair,
// the kernel's end holding the node's host address (/32) and routes to the
// cluster's pods and ClusterIPs through the pods' gateway (onlink: the gateway is
// the node's router, beyond the pods' lbrp, which the controller links the other
// end to; the lbrp takes the node's packets to a ClusterIP as a pod's). Both ends
// at the pods' MTU, both up; no other address or route on it. Pure: what the
// kernel has in, the `ip` commands that make it so out (none when it is so); the
// node agent runs them.

import { HOST_LINK, type ClusterSettings, type NodeModel } from '../model';
import type { IpLink } from './vxlan';

export interface HostLinkSpec {
  kernel: string;
  chain: string;
  /** The node's host address, /32. */
  address: string;
  /** The cluster's pod range and its ClusterIPs, via the pods' gateway. */
  routes: { prefix: string; via: string }[];
  mtu: number;
}

/** What `ip -j` reports of the pair: each end's link, the kernel end's IPv4 addresses (a.b.c.d/n) and routes. */
export interface HostLinkState {
  kernel?: IpLink;
  chain?: IpLink;
  addresses: string[];
  routes: { dst: string; gateway?: string }[];
}

export function hostLinkSpec(self: NodeModel, settings: ClusterSettings, mtu: number): HostLinkSpec {
  const routes = [settings.clusterCidr, settings.serviceCidr].map((prefix) => ({ prefix, via: self.gateway }));
  return { kernel: HOST_LINK.kernel, chain: HOST_LINK.chain, address: `${self.hostAddress}/32`, routes, mtu };
}

/** The `ip` commands (argument lists) that turn `state` into `spec`; a netdev of the kernel end's name that is not a veth is someone else's: an error. */
export function hostLinkCommands(state: HostLinkState, spec: HostLinkSpec): string[][] {
  const commands: string[][] = [];
  let { kernel, chain, addresses, routes } = state;
  if (kernel && kernel.linkinfo?.info_kind !== 'veth') {
    throw new Error(`netdev ${spec.kernel} exists and is ${kernel.linkinfo?.info_kind ? `a ${kernel.linkinfo.info_kind} netdev` : 'not a veth'}: remove it; the node agent makes the node's own port into its chain under that name`);
  }
  if (!kernel || !chain) {
    // A half of the pair alone (the other deleted by hand) is made anew with its peer.
    if (kernel) commands.push(['link', 'delete', 'dev', spec.kernel]);
    commands.push(['link', 'add', spec.kernel, 'type', 'veth', 'peer', 'name', spec.chain]);
    [kernel, chain, addresses, routes] = [undefined, undefined, [], []];
  }
  for (const [name, link] of [[spec.kernel, kernel], [spec.chain, chain]] as const) {
    if (link?.mtu !== spec.mtu || !link.flags.includes('UP')) commands.push(['link', 'set', 'dev', name, 'mtu', String(spec.mtu), 'up']);
  }
  for (const a of addresses) if (a !== spec.address) commands.push(['addr', 'del', a, 'dev', spec.kernel]);
  if (!addresses.includes(spec.address)) commands.push(['addr', 'add', spec.address, 'dev', spec.kernel]);
  for (const r of routes) if (!spec.routes.some((w) => w.prefix === r.dst)) commands.push(['route', 'del', r.dst, 'dev', spec.kernel]);
  for (const want of spec.routes) {
    if (!routes.some((r) => r.dst === want.prefix && r.gateway === want.via)) commands.push(['route', 'replace', want.prefix, 'via', want.via, 'dev', spec.kernel, 'onlink']);
  }
  return commands;
}
