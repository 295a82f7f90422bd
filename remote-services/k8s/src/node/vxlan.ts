// What a node's kernel VXLAN netdev must be, and what must change to make it so.
// Pure: the Nodes' models and what iproute2 reports in, the steps out; the node
// agent (agent.ts) carries them out, the tests check them without a kernel.
//
// The netdev carries what the node's router sends out of its `vxlan` port (its
// link in model/chains.ts) to the router of the node whose pod range it routes
// to, the next hop being that router's overlay address. The router resolves the
// next hop's MAC by ARP (its control plane, remote-services/router), so the
// forwarding table holds, per other node:
//   - a flood entry (MAC 00:00:00:00:00:00) towards its address: a broadcast (the
//     ARP request) reaches every other node, whose router answers for its own
//     overlay address only;
//   - its router's overlay MAC (NodeModel.vxlanMac) towards its address: the ARP
//     answer and the traffic after it go to that node alone.
// Learning is off: what the table holds is what the Nodes say, nothing a packet
// taught it, so an entry of a Node gone (or moved to another address) is gone as
// soon as the agent has seen it.

import type { NodeModel } from '../model';

/** The netdev as the node agent makes it. */
export interface VxlanSpec {
  name: string;
  /** The VXLAN network identifier, one for the cluster. */
  vni: number;
  /** The UDP port, one for the cluster (IANA's 4789 by default). */
  port: number;
  /** The node's own address (its InternalIP): the source of the encapsulated packets. */
  local: string;
  /** The netdev that address is on (the uplink). */
  uplink: string;
  /** The uplink's MTU less the encapsulation. */
  mtu: number;
}

/** What VXLAN adds to each packet over IPv4: outer IPv4 (20), UDP (8), VXLAN (8) and the inner Ethernet header (14). */
export const VXLAN_OVERHEAD = 50;

/** A forwarding-table entry: frames to `mac` go to the node at `dst`. */
export interface FdbEntry {
  mac: string;
  dst: string;
}

export const FLOOD_MAC = '00:00:00:00:00:00';

/** The link as `ip -j -d link show` reports it (the fields read). */
export interface IpLink {
  ifname: string;
  mtu: number;
  flags: string[];
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; link?: string; port?: number; learning?: boolean } };
}

/** The spec of node `self`'s netdev, given its uplink's MTU. */
export function vxlanSpec(self: NodeModel, options: { name: string; vni: number; port: number; uplinkMtu: number }): VxlanSpec {
  return { name: options.name, vni: options.vni, port: options.port, local: self.address, uplink: self.uplink, mtu: options.uplinkMtu - VXLAN_OVERHEAD };
}

/** The forwarding table node `self` needs: every other node's flood entry and router MAC, sorted. */
export function desiredFdb(self: string, nodes: Iterable<NodeModel>): FdbEntry[] {
  const entries: FdbEntry[] = [];
  for (const n of nodes) {
    if (n.name === self) continue;
    entries.push({ mac: FLOOD_MAC, dst: n.address }, { mac: n.vxlanMac, dst: n.address });
  }
  return entries.sort((a, b) => cmp(`${a.mac} ${a.dst}`, `${b.mac} ${b.dst}`));
}

/** How the netdev differs from the spec: made anew (absent, or a setting the kernel cannot change in place), or only its MTU and state. */
export type LinkChange = { kind: 'create' } | { kind: 'recreate'; why: string } | { kind: 'adjust'; mtu?: number; setUp: boolean } | { kind: 'none' };

/**
 * What to do about the netdev named spec.name. A netdev of that name that is not a
 * VXLAN netdev is someone else's: an error, never deleted.
 */
export function linkChange(current: IpLink | undefined, spec: VxlanSpec): LinkChange {
  if (!current) return { kind: 'create' };
  const kind = current.linkinfo?.info_kind;
  if (kind !== 'vxlan') throw new Error(`netdev ${spec.name} exists and is ${kind ? `a ${kind} netdev` : 'not a VXLAN netdev'}: remove it, or give the node agent and the controller another --vxlan-netdev`);
  const d = current.linkinfo?.info_data ?? {};
  const differs: string[] = [];
  if (d.id !== spec.vni) differs.push(`VNI ${d.id}, not ${spec.vni}`);
  if (d.port !== spec.port) differs.push(`UDP port ${d.port}, not ${spec.port}`);
  if (d.local !== spec.local) differs.push(`local address ${d.local ?? 'none'}, not ${spec.local}`);
  if (d.link !== spec.uplink) differs.push(`on ${d.link ?? 'no netdev'}, not ${spec.uplink}`);
  if (d.learning !== false) differs.push('learning on');
  if (differs.length > 0) return { kind: 'recreate', why: differs.join(', ') };
  const setUp = !current.flags.includes('UP');
  const mtu = current.mtu === spec.mtu ? undefined : spec.mtu;
  return setUp || mtu !== undefined ? { kind: 'adjust', mtu, setUp } : { kind: 'none' };
}

/** The entries to add and to delete to turn `current` (what `bridge -j fdb show dev` reports) into `desired`. */
export function fdbChanges(current: readonly { mac: string; dst?: string }[], desired: readonly FdbEntry[]): { add: FdbEntry[]; remove: FdbEntry[] } {
  const key = (e: { mac: string; dst?: string }) => `${e.mac.toLowerCase()} ${e.dst}`;
  // Entries without a remote (dst) are not a VXLAN table's forwarding entries.
  const have = new Map(current.filter((e) => e.dst).map((e) => [key(e), { mac: e.mac.toLowerCase(), dst: e.dst! }]));
  const want = new Map(desired.map((e) => [key(e), e]));
  return {
    add: [...want].filter(([k]) => !have.has(k)).map(([, e]) => e),
    remove: [...have].filter(([k]) => !want.has(k)).map(([, e]) => e),
  };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
