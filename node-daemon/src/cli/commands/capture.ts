// `capture`: the packets a packetcapture cube copies, streamed from its host's
// daemon into a pcapng file (or stdout), until -c packets, Ctrl-C or the cube
// goes away. The file is whole at every end: each packet is written as one block.
// On a port of another cube or on a netdev, the daemon stacks a packetcapture cube
// there for the capture alone.

import * as fs from 'node:fs';
import type { CaptureFilter } from '@netcube/api/generated/netcube/v1/CaptureFilter';
import type { CaptureRequest } from '@netcube/api/generated/netcube/v1/CaptureRequest';
import type { Side } from '@netcube/api/generated/netcube/v1/Side';
import type { StoredChain } from '@netcube/api/store';
import { planHost } from '../../chain';
import { Command, CommandFailed, positionals, requireOption, stringOption, UsageError } from '../command';
import { Connection, DaemonConnections } from '../daemons';
import { some } from '../output';
import { pcapngHeader, pcapngPacket } from '../pcapng';

const PROTOCOLS = ['tcp', 'udp', 'icmp', 'icmpv6', 'sctp'];

/**
 * A filter in a small part of tcpdump's language: terms joined by `and`, each
 * `[src|dst] host ADDR`, `[src|dst] net PREFIX`, `[src|dst] port N`, `tcp`,
 * `udp`, `icmp`, `icmpv6`, `sctp`, `proto N`, `ip` or `ip6`.
 */
export function parseCaptureFilter(text: string): CaptureFilter {
  const filter: CaptureFilter = { addresses: [], ports: [] };
  const words = text.trim().split(/\s+/).filter(Boolean);
  const fail = (why: string): never => {
    throw new UsageError(`--filter ${JSON.stringify(text)}: ${why}`, 'capture');
  };
  for (let i = 0; i < words.length; ) {
    if (i > 0) {
      if (words[i] !== 'and') fail(`expected "and" before ${JSON.stringify(words[i])} (terms are joined by "and" only)`);
      i++;
    }
    let side: Side = 'SIDE_EITHER';
    if (words[i] === 'src' || words[i] === 'dst') side = words[i++] === 'src' ? 'SIDE_SRC' : 'SIDE_DST';
    const word = words[i++];
    if (word === undefined) fail('it ends where a term should follow');
    const value = (): string => words[i++] ?? fail(`${word} needs a value`);
    if (word === 'host' || word === 'net') filter.addresses!.push({ prefix: value(), side });
    else if (word === 'port') {
      const v = value();
      if (!/^\d+$/.test(v) || Number(v) > 0xffff) fail(`a port is a number 0 to 65535, got ${JSON.stringify(v)}`);
      filter.ports!.push({ port: Number(v), side });
    } else if (side !== 'SIDE_EITHER') fail(`src and dst go before host, net or port, not ${JSON.stringify(word)}`);
    else if (PROTOCOLS.includes(word!)) filter.protocol = word;
    else if (word === 'proto') filter.protocol = value();
    else if (word === 'ip' || word === 'ip6') filter.family = word === 'ip' ? 4 : 6;
    else fail(`unknown term ${JSON.stringify(word)}: host, net, port (each after src or dst if you like), ${PROTOCOLS.join(', ')}, proto N, ip, ip6`);
  }
  return filter;
}

function count(text: string | undefined, option: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > max) throw new UsageError(`--${option}: a number 1 to ${max}, got ${JSON.stringify(text)}`, 'capture');
  return Number(text);
}

const DIRECTIONS = { in: 'DIRECTION_INGRESS', out: 'DIRECTION_EGRESS', both: 'DIRECTION_BOTH' } as const;

/** The hosts whose chains use netdev `name` (linked to a cube or stacked on), per the chains in etcd. */
function hostsUsingNetdev(chains: StoredChain[], name: string): string[] {
  const hosts = new Set(chains.flatMap(c => c.chain.spec.cubes.map(cube => cube.host)));
  return [...hosts].sort().filter(host => {
    const topology = planHost(chains.map(c => c.chain), host).topology;
    return [...topology.links.flatMap(l => [l.a, l.b]), ...topology.stacks.map(s => s.target)].some(e => 'netdev' in e && e.netdev === name);
  });
}

/**
 * What `what` (CUBE, CUBE:PORT or NETDEV) names, as the request's fields, and the
 * daemon of its host: a cube by the chain that places it, a netdev by the hosts
 * whose chains use it (`host` when several do).
 */
async function resolveTarget(daemons: DaemonConnections, what: string, host: string | undefined): Promise<{ fields: Pick<CaptureRequest, 'cube' | 'port' | 'netdev'>; connection: Connection }> {
  const colon = what.indexOf(':');
  const cube = colon < 0 ? what : what.slice(0, colon);
  const chains = await daemons.allChains();
  const placed = chains.flatMap(c => c.chain.spec.cubes).find(spec => spec.name === cube);
  if (placed || colon >= 0) {
    const connection = await daemons.forCube(cube);
    if (host !== undefined && host !== connection.host) throw new UsageError(`--host ${host}: cube ${cube} runs on host ${connection.host}; leave --host out`, 'capture');
    return { fields: colon < 0 ? { cube } : { cube, port: what.slice(colon + 1) }, connection };
  }
  const users = hostsUsingNetdev(chains, what);
  if (host !== undefined) return { fields: { netdev: what }, connection: await daemons.connect(host) };
  if (users.length === 1) return { fields: { netdev: what }, connection: await daemons.connect(users[0]) };
  if (users.length > 1) throw new UsageError(`netdev ${what} is used on hosts ${users.join(', ')}: say which with --host`, 'capture');
  const cubes = chains.flatMap(c => c.chain.spec.cubes.map(spec => spec.name)).sort();
  throw new CommandFailed(
    `no chain has a cube or uses a netdev named ${what} (cubes: ${cubes.length ? some(cubes, 8) : 'none'}): give a packetcapture cube, CUBE:PORT, or a netdev a chain links or stacks on (see netcubectl topology)`,
  );
}

export const capture: Command = {
  name: 'capture',
  summary: 'write the packets that cross a cube port or a netdev to a pcapng file',
  usage: ['capture CUBE[:PORT]|NETDEV [--host HOST] -w FILE|- [-c COUNT] [--filter EXPR] [-s SNAPLEN] [--direction in|out|both] [--rate N]'],
  description: `
Streams copies of the packets that cross a point of a host's data plane, from
the daemon of that host, into a pcapng file (one Ethernet interface named
"HOST CUBE", "HOST CUBE:PORT" or "HOST NETDEV", nanosecond timestamps, each
packet's direction), or to stdout with -w - (pipe it into tcpdump -r - or
Wireshark). The point is:
  CUBE       a packetcapture cube a chain stacks where the packets pass; it
             copies nothing while no capture runs.
  CUBE:PORT  a port of any cube with ports: the daemon stacks a packetcapture
             cube of its own there, outermost (what crosses the link), for the
             capture alone.
  NETDEV     a netdev the chains link or stack on (--host when the chains use
             it on several hosts): the same, outermost (what crosses the wire).
Direction "in" is into the port, or from the wire for a netdev. One capture at a
time on each cube, port or netdev. The daemon's own cube is removed when the
capture ends, however it ends (a daemon killed meanwhile removes it when it
starts again). Ends after -c packets, or on Ctrl-C; the file is valid either
way. Packets are never held up: past --rate, or when this reader is too slow for
the cube's ring, they are not copied, and the counts are printed at the end.`,
  options: {
    host: { type: 'string' },
    write: { type: 'string', short: 'w' },
    count: { type: 'string', short: 'c' },
    filter: { type: 'string' },
    snaplen: { type: 'string', short: 's' },
    direction: { type: 'string' },
    rate: { type: 'string' },
  },
  optionHelp: [
    ['--host HOST', 'the host of NETDEV, when the chains use it on several'],
    ['-w, --write FILE|-', 'the pcapng file to write, or - for stdout'],
    ['-c, --count COUNT', 'stop after COUNT packets'],
    ['--filter EXPR', 'terms joined by "and": [src|dst] host ADDR, [src|dst] net PREFIX, [src|dst] port N, tcp, udp, icmp, icmpv6, sctp, proto N, ip, ip6'],
    ['-s, --snaplen N', 'bytes kept of each packet, 1 to 1536 (default 1536)'],
    ['--direction DIR', 'in, out or both (default both)'],
    ['--rate N', 'packets copied a second at most (default 50000, at most 1000000)'],
  ],
  outputs: ['text'],
  examples: [
    'netcubectl capture cap1 -w /tmp/cap1.pcapng',
    "netcubectl capture cap1 --filter 'udp and dst port 53' -c 10 -w - | tcpdump -n -r -",
    'netcubectl capture router1:left -c 100 -w /tmp/left.pcapng',
    'netcubectl capture eth0 --host h2 -w - | tcpdump -n -r -',
  ],
  async run(session, args) {
    const [what] = positionals(args, 'capture', ['CUBE[:PORT]|NETDEV']);
    const target = requireOption(args, 'write', 'capture', 'give a file for the pcapng, or - for stdout');
    const filterText = stringOption(args, 'filter');
    const direction = stringOption(args, 'direction') ?? 'both';
    if (!(direction in DIRECTIONS)) throw new UsageError(`--direction: in, out or both, got ${JSON.stringify(direction)}`, 'capture');
    const req: CaptureRequest = {
      direction: DIRECTIONS[direction as keyof typeof DIRECTIONS],
      filter: filterText === undefined ? undefined : parseCaptureFilter(filterText),
      snapLength: count(stringOption(args, 'snaplen'), 'snaplen', 1536),
      rate: count(stringOption(args, 'rate'), 'rate', 1_000_000),
      count: count(stringOption(args, 'count'), 'count'),
    };
    const daemons = await session.daemons();
    const { fields, connection } = await resolveTarget(daemons, what, stringOption(args, 'host'));
    Object.assign(req, fields);

    const fd = target === '-' ? undefined : fs.openSync(target, 'w');
    const write = (b: Buffer): void => {
      if (fd === undefined) session.io.stdout.write(b);
      else fs.writeSync(fd, b);
    };
    const stop = new AbortController();
    session.onInterrupt(() => stop.abort());
    let packets = 0;
    let stats = { captured: '0', overRate: '0', ringFull: '0' };
    try {
      await daemons.call(connection, async client => {
        for await (const msg of client.capture(req, { signal: stop.signal })) {
          if (msg.started) {
            write(pcapngHeader(msg.started.interface, msg.started.snapLength));
            session.note(`capturing on ${msg.started.interface} (${msg.started.mode === 'MODE_TC' ? 'tc' : 'xdp'}, snap length ${msg.started.snapLength})`);
          } else if (msg.packets) {
            const blocks = msg.packets.packets.map(p =>
              pcapngPacket({ data: p.data, wireLength: p.wireLength, timestampNs: BigInt(p.timestampUnixNs), direction: p.direction === 'DIRECTION_INGRESS' ? 'ingress' : 'egress' }),
            );
            if (blocks.length > 0) write(Buffer.concat(blocks));
            packets += blocks.length;
            if (msg.packets.stats) stats = msg.packets.stats;
          }
        }
      });
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
    session.note(`${packets} packets written; not copied: ${stats.overRate} over the rate, ${stats.ringFull} for a full ring (this reader was too slow)`);
  },
};
