// The control plane of router cubes (bpf/cubes/router.bpf.c). The fast path routes
// by itself once it knows a next hop's MAC; this service
//   - writes the tables config decides: each port's primary address and MAC
//     (router_ports), the router's own addresses, secondary ones too (local_addrs),
//     and the routes used, one per prefix (routes.ts): connected ones derived from
//     the port addresses before static ones, then the lowest metric;
//   - answers ARP for the router's addresses, and learns from ARP what it asked;
//   - resolves next hops: a packet whose next hop has no neighbour entry (NO_NEIGH)
//     waits in a bounded queue while an ARP request goes out of the port; the
//     reply fills the neighbour table and the queue goes back into the cube
//     (packet-out, ingress), where the fast path now forwards it;
//   - answers ICMP echo to the router's addresses, and sends ICMP time exceeded
//     for packets whose TTL runs out;
//   - ages neighbours: one not confirmed for the timeout is asked again, and
//     deleted when it does not answer.

import type { RouterConfig__Output as RouterConfig } from '@netcube/api/generated/netcube/router/v1/RouterConfig';
import { ConfigError, defineService, type Cube, type CubeInfo } from '@netcube/sdk';
import { be32Text, derivedMac } from '@netcube/sdk/codec';
import {
  arp,
  ArpOp,
  BROADCAST_MAC,
  cidrContains,
  ethernet,
  formatIpv4,
  icmpEchoReply,
  icmpTimeExceeded,
  IcmpType,
  ipv4,
  parseCidr,
  parseFrame,
  parseIpv4,
  parseMac,
  setMacs,
  type Cidr,
} from '@netcube/sdk/packet';
import { lookup, portAddresses, prefixOf, routesOf } from './routes';

/** router_reason in router.bpf.c */
const Reason = { ARP: 1, NO_NEIGH: 2, LOCAL: 3, TTL: 4 } as const;

/** How often an unanswered ARP request is repeated, and how many times. */
const ARP_RETRY_MS = 1_000;
const ARP_TRIES = 3;
/** A next hop resolved this recently is not asked again: packets handed over before the reply landed go straight back. */
const JUST_RESOLVED_MS = 2_000;
/** ROUTER_ADDRS_PER_PORT in router.bpf.c, less the primary address. */
const MAX_SECONDARY_ADDRESSES = 7;

interface Interface {
  name: string;
  index: number;
  /** The primary address, and its subnet. */
  address: string;
  cidr: Cidr;
  /** Every address of the port with its subnet, the primary one first. */
  addresses: { address: string; cidr: Cidr }[];
  mac: string;
}

interface NeighbourEntry {
  mac: string;
  port: number;
  seen_ns: number | string;
}

/** A packet waiting for a next hop's MAC: to go back into the cube (ingress), or out of a port once addressed (egress). */
interface Waiting {
  frame: Buffer;
  direction: 'ingress' | 'egress';
  port: string;
}

interface Resolution {
  port: string;
  packets: Waiting[];
  sentAt: number;
  tries: number;
  /** Re-asking a known neighbour (aging), at its MAC. */
  probeMac?: string;
}

interface RouterState {
  resolving: Map<string, Resolution>;
  justResolved: Map<string, number>;
  dropped: number;
}

type Router = Cube<RouterConfig, RouterState>;

function interfaces(cube: Router): Interface[] {
  return Object.entries(cube.config.ports).map(([name, p]) => {
    const addresses = portAddresses(p).map((a) => ({ address: a.slice(0, a.indexOf('/')), cidr: parseCidr(a) }));
    return { name, index: cube.port(name).index, ...addresses[0], addresses, mac: p.mac ?? derivedMac(`${cube.name}/${name}`) };
  });
}

/** The address of `iface` whose subnet holds `ip`: the one it speaks to `ip` with. */
const addressFacing = (iface: Interface, ip: string) => iface.addresses.find((a) => cidrContains(a.cidr, ip));

function arpRequest(cube: Router, iface: Interface, target: string, dstMac = BROADCAST_MAC): void {
  const senderIp = addressFacing(iface, target)?.address ?? iface.address;
  const frame = ethernet({ src: iface.mac, dst: dstMac, payload: arp({ op: ArpOp.REQUEST, senderMac: iface.mac, senderIp, targetIp: target }) });
  cube.packetOut(iface.name, 'egress', frame);
}

/** Queues `packet` (when given) until `nexthop` answers, asking it now unless a request is recent. */
function resolve(cube: Router, nexthop: string, iface: Interface, packet?: Waiting): void {
  const { resolving } = cube.state;
  let r = resolving.get(nexthop);
  if (!r) resolving.set(nexthop, (r = { port: iface.name, packets: [], sentAt: 0, tries: 0 }));
  if (packet) {
    if (r.packets.length >= cube.config.arpQueueLength) {
      r.packets.shift();
      cube.state.dropped++;
    }
    r.packets.push(packet);
  }
  if (Date.now() - r.sentAt >= ARP_RETRY_MS) {
    r.sentAt = Date.now();
    r.tries++;
    arpRequest(cube, iface, nexthop, r.probeMac);
  }
}

/** `ip` is at `mac` on `iface`: record it, then send what waited for it. */
async function learn(cube: Router, ip: string, mac: string, iface: Interface): Promise<void> {
  await cube.table<string, NeighbourEntry>('neighbours').put(ip, { mac, port: iface.index, seen_ns: cube.clock.now().toString() });
  cube.state.justResolved.set(ip, Date.now());
  const r = cube.state.resolving.get(ip);
  cube.state.resolving.delete(ip);
  for (const p of r?.packets ?? []) {
    if (p.direction === 'ingress') cube.packetOut(p.port, 'ingress', p.frame);
    else cube.packetOut(p.port, 'egress', setMacs(p.frame, { dst: mac }));
  }
}

/** Sends an IP packet the router itself makes (an ICMP answer): routed here, addressed when its next hop is known. */
async function sendIp(cube: Router, packet: ReturnType<typeof ipv4>, dst: string): Promise<void> {
  const route = lookup(cube.config, dst);
  const iface = route && interfaces(cube).find((i) => i.name === route.port);
  if (!route || !iface) return;
  const nexthop = route.nexthop ?? dst;
  const neighbour = await cube.table<string, NeighbourEntry>('neighbours').get(nexthop);
  const frame = ethernet({ src: iface.mac, dst: neighbour ? neighbour.mac : '00:00:00:00:00:00', payload: packet });
  if (neighbour) cube.packetOut(iface.name, 'egress', frame);
  else resolve(cube, nexthop, iface, { frame, direction: 'egress', port: iface.name });
}

const isUnicast = (ip: string): boolean => {
  const first = parseIpv4(ip)[0];
  return ip !== '0.0.0.0' && ip !== '255.255.255.255' && first < 224;
};

function checkConfig(config: RouterConfig, cube: CubeInfo): void {
  const subnets: { port: string; cidr: Cidr }[] = [];
  const interfaceAddress = (address: string, at: string, port: string): void => {
    let cidr: Cidr;
    try {
      cidr = parseCidr(address);
    } catch (err) {
      throw new ConfigError(at, `expected a.b.c.d/len: ${(err as Error).message.replace(/^.*?invalid/, 'invalid')}`);
    }
    if (cidr.family !== 4) throw new ConfigError(at, 'only IPv4 is routed');
    if (cidr.prefixLength < 1 || cidr.prefixLength > 30) throw new ConfigError(at, `a prefix length from 1 to 30, got /${cidr.prefixLength}`);
    const hostBits = parseIpv4(formatIpv4(cidr.address)).readUInt32BE(0) & (2 ** (32 - cidr.prefixLength) - 1);
    if (hostBits === 0 || hostBits === 2 ** (32 - cidr.prefixLength) - 1) {
      throw new ConfigError(at, `${address} is the subnet's ${hostBits === 0 ? 'network' : 'broadcast'} address, not one an interface can have`);
    }
    const overlap = subnets.find((s) => cidrContains(s.cidr, cidr.network) || cidrContains(cidr, s.cidr.network));
    if (overlap) throw new ConfigError(at, `overlaps the subnet ${prefixOf(overlap.cidr)} of port ${overlap.port}`);
    subnets.push({ port, cidr });
  };
  for (const [name, p] of Object.entries(config.ports)) {
    const at = `ports.${name}`;
    if (!cube.portNames.includes(name)) throw new ConfigError(at, `cube ${cube.name} has no port ${name} (its ports: ${cube.portNames.join(', ')})`);
    interfaceAddress(p.address, `${at}.address`, name);
    if (p.secondaryAddresses.length > MAX_SECONDARY_ADDRESSES) {
      throw new ConfigError(`${at}.secondaryAddresses`, `at most ${MAX_SECONDARY_ADDRESSES} secondary addresses per port, got ${p.secondaryAddresses.length}`);
    }
    p.secondaryAddresses.forEach((a, i) => interfaceAddress(a, `${at}.secondaryAddresses[${i}]`, name));
    if (p.mac !== undefined) {
      let mac: Buffer;
      try {
        mac = parseMac(p.mac);
      } catch (err) {
        throw new ConfigError(`${at}.mac`, (err as Error).message);
      }
      if (mac[0] & 1 || mac.every((b) => b === 0)) throw new ConfigError(`${at}.mac`, `${p.mac} is not a unicast address`);
    }
  }
  config.routes.forEach((r, i) => {
    const at = `routes[${i}]`;
    let cidr: Cidr;
    try {
      cidr = parseCidr(r.prefix);
    } catch (err) {
      throw new ConfigError(`${at}.prefix`, `expected a.b.c.d/len: ${(err as Error).message.replace(/^.*?invalid/, 'invalid')}`);
    }
    if (cidr.family !== 4) throw new ConfigError(`${at}.prefix`, 'only IPv4 is routed');
    if (!cidr.address.equals(cidr.network)) throw new ConfigError(`${at}.prefix`, `host bits are set: write ${formatIpv4(cidr.network)}/${cidr.prefixLength}`);
    const port = subnets.filter((s) => s.port === r.port);
    if (port.length === 0) throw new ConfigError(`${at}.port`, `${JSON.stringify(r.port)} is not a port with an address (those: ${[...new Set(subnets.map((s) => s.port))].join(', ') || 'none'})`);
    if (r.nexthop !== undefined) {
      try {
        parseIpv4(r.nexthop);
      } catch (err) {
        throw new ConfigError(`${at}.nexthop`, (err as Error).message);
      }
      if (!port.some((s) => cidrContains(s.cidr, r.nexthop!))) {
        throw new ConfigError(`${at}.nexthop`, `${r.nexthop} is not in the subnet of port ${r.port} (${portAddresses(config.ports[r.port]).join(', ')})`);
      }
      if (port.some((s) => formatIpv4(s.cidr.address) === r.nexthop)) throw new ConfigError(`${at}.nexthop`, `${r.nexthop} is the router's own address on port ${r.port}`);
    }
    const twin = config.routes.slice(0, i).findIndex((o) => o.metric === r.metric && prefixOf(parseCidr(o.prefix)) === prefixOf(cidr));
    if (twin >= 0) throw new ConfigError(`${at}.metric`, `routes[${twin}] has the same prefix ${prefixOf(cidr)} and metric ${r.metric}: give one of them another metric`);
  });
}

export default defineService<RouterConfig, RouterState>({
  type: 'router',
  config: { proto: 'netcube/router/v1/router.proto', message: 'netcube.router.v1.RouterConfig' },
  validate: checkConfig,
  state: () => ({ resolving: new Map(), justResolved: new Map(), dropped: 0 }),

  staticTables(cube) {
    const ifaces = interfaces(cube);
    return {
      router_ports: ifaces.map((i) => ({ key: i.index, value: { addr: i.address, prefixlen: i.cidr.prefixLength, mac: i.mac } })),
      local_addrs: ifaces.flatMap((i) => i.addresses.map((a) => ({ key: a.address, value: i.index }))),
      routes: routesOf(cube.config).filter((r) => r.active).map((r) => ({
        key: { prefixlen: r.cidr.prefixLength, addr: formatIpv4(r.cidr.network) },
        value: { nexthop: r.nexthop || '0.0.0.0', port: cube.port(r.port).index },
      })),
    };
  },

  // Again in the service's hands: learn the clock from the neighbours' stamps, and
  // forget neighbours of ports that lost their address.
  async cubeCreated(cube) {
    await forgetStrangers(cube);
  },
  async configChanged(cube) {
    await forgetStrangers(cube);
  },

  async packetIn(cube, pkt) {
    const f = parseFrame(pkt.frame);
    if (f.eth?.vlan) return;
    const iface = interfaces(cube).find((i) => i.name === pkt.port.name);
    switch (pkt.reason) {
      case Reason.ARP: {
        const a = f.arp;
        if (!a || !iface) return;
        const forUs = iface.addresses.some((x) => x.address === a.targetIp);
        if (forUs && a.op === ArpOp.REQUEST) {
          const reply = arp({ op: ArpOp.REPLY, senderMac: iface.mac, senderIp: a.targetIp, targetMac: a.senderMac, targetIp: a.senderIp });
          cube.packetOut(iface.name, 'egress', ethernet({ src: iface.mac, dst: a.senderMac, payload: reply }));
        }
        const awaited = cube.state.resolving.has(a.senderIp);
        if ((forUs || awaited) && isUnicast(a.senderIp) && addressFacing(iface, a.senderIp) && !parseMac(a.senderMac).every((b) => b === 0)) {
          await learn(cube, a.senderIp, a.senderMac, iface);
        }
        return;
      }
      case Reason.NO_NEIGH: {
        const nexthop = be32Text(pkt.user[0]);
        const out = cube.portAt(pkt.user[1]);
        const outIface = out && interfaces(cube).find((i) => i.name === out.name);
        if (!outIface || pkt.frame.length < pkt.wireLength) return;
        const packet: Waiting = { frame: pkt.frame, direction: 'ingress', port: pkt.port.name };
        const resolvedAt = cube.state.justResolved.get(nexthop);
        if (resolvedAt !== undefined && Date.now() - resolvedAt < JUST_RESOLVED_MS) cube.packetOut(packet.port, 'ingress', packet.frame);
        else resolve(cube, nexthop, outIface, packet);
        return;
      }
      case Reason.LOCAL: {
        const ip = f.ipv4;
        const icmp = f.icmp;
        if (!ip || icmp?.type !== IcmpType.ECHO_REQUEST || !icmp.echo || ip.mf || ip.fragmentOffset !== 0 || f.truncated) return;
        const payload = pkt.frame.subarray(icmp.offset + 8, ip.offset + ip.totalLength);
        const reply = ipv4({ src: ip.dst, dst: ip.src, id: ip.id, payload: icmpEchoReply({ id: icmp.echo.id, seq: icmp.echo.seq, payload }) });
        await sendIp(cube, reply, ip.src);
        return;
      }
      case Reason.TTL: {
        const ip = f.ipv4;
        // RFC 1812 4.3.2.7: no ICMP error about an ICMP error, a later fragment, or a non-unicast source.
        if (!ip || !iface || ip.fragmentOffset !== 0 || !isUnicast(ip.src) || (f.icmp && f.icmp.type !== IcmpType.ECHO_REQUEST && f.icmp.type !== IcmpType.ECHO_REPLY)) return;
        const original = pkt.frame.subarray(ip.offset, Math.min(pkt.frame.length, ip.offset + ip.totalLength));
        await sendIp(cube, ipv4({ src: iface.address, dst: ip.src, payload: icmpTimeExceeded({ original }) }), ip.src);
        return;
      }
    }
  },

  tickSeconds: 1,
  async tick(cube) {
    const ifaces = interfaces(cube);
    const now = Date.now();
    for (const [ip, at] of cube.state.justResolved) if (now - at > JUST_RESOLVED_MS) cube.state.justResolved.delete(ip);
    for (const [ip, r] of cube.state.resolving) {
      if (now - r.sentAt < ARP_RETRY_MS) continue;
      const iface = ifaces.find((i) => i.name === r.port);
      if (!iface || r.tries >= ARP_TRIES) {
        cube.state.dropped += r.packets.length;
        cube.state.resolving.delete(ip);
        if (r.probeMac) await cube.table<string, NeighbourEntry>('neighbours').delete(ip);
        continue;
      }
      resolve(cube, ip, iface);
    }
    // Neighbours past their timeout are asked again, at their MAC; three unanswered questions and they go.
    const timeout = cube.config.neighbourTimeoutSeconds;
    for (const { key: ip, value } of await cube.table<string, NeighbourEntry>('neighbours').list()) {
      if (cube.clock.ageSeconds(value.seen_ns) <= timeout || cube.state.resolving.has(ip)) continue;
      const iface = ifaces.find((i) => i.index === value.port);
      if (!iface) continue;
      cube.state.resolving.set(ip, { port: iface.name, packets: [], sentAt: 0, tries: 0, probeMac: value.mac });
      resolve(cube, ip, iface);
    }
  },

  async describe(cube) {
    const ports = new Map(cube.ports.map((p) => [p.index, p.name]));
    const neighbours = await cube.table<string, NeighbourEntry>('neighbours').list();
    return {
      clock: cube.clock.source,
      ports: interfaces(cube).map((i) => ({
        port: i.name,
        address: `${i.address}/${i.cidr.prefixLength}`,
        ...(i.addresses.length > 1 ? { secondaryAddresses: i.addresses.slice(1).map((a) => `${a.address}/${a.cidr.prefixLength}`) } : {}),
        mac: i.mac,
      })),
      routes: routesOf(cube.config).map((r) => ({ prefix: prefixOf(r.cidr), port: r.port, ...(r.nexthop ? { nexthop: r.nexthop } : {}), connected: r.connected, metric: r.metric, active: r.active })),
      neighbours: neighbours
        .map(({ key, value }) => ({ address: key, mac: value.mac, port: ports.get(value.port) ?? `#${value.port}`, ageSeconds: Math.round(cube.clock.ageSeconds(value.seen_ns) * 10) / 10 }))
        .sort((a, b) => parseIpv4(a.address).readUInt32BE(0) - parseIpv4(b.address).readUInt32BE(0)),
      resolving: [...cube.state.resolving].map(([nexthop, r]) => ({ nexthop, port: r.port, queued: r.packets.length, tries: r.tries })),
      dropped: cube.state.dropped,
    };
  },
});

/** Deletes neighbours that no port's subnet holds any more; every stamp read teaches the clock. */
async function forgetStrangers(cube: Router): Promise<void> {
  const ifaces = interfaces(cube);
  const table = cube.table<string, NeighbourEntry>('neighbours');
  for (const { key, value } of await table.list()) {
    cube.clock.observe(value.seen_ns);
    const iface = ifaces.find((i) => i.index === value.port);
    if (!iface || !addressFacing(iface, key)) await table.delete(key);
  }
}
