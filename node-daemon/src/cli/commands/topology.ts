// `topology`: what every host runs, asked of its daemon, as a text tree or as Graphviz.
// Cables between hosts are not visible to any one daemon: they come from the `via`
// of the chains in etcd.

import { StoredChain } from '@netcube/api/store';
import { parseEndpoint } from '@netcube/api/chain';
import { Command, CommandFailed, positionals, stringOption } from '../command';
import { Session } from '../session';
import { topologyView, TopologyView } from '../wire';

interface HostTopology {
  host: string;
  endpoint?: string;
  topology?: TopologyView;
  /** Why the host's topology could not be read. */
  error?: string;
  /** Cubes the chains place on the host (shown for a host that cannot be asked). */
  placed: string[];
}

/** Two netdevs on different hosts that a chain says are cabled together. */
interface Cable {
  chain: string;
  a: { host: string; netdev: string };
  b: { host: string; netdev: string };
}

export const topology: Command = {
  name: 'topology',
  summary: 'show what each host runs: cubes, ports, netdevs, links, stacks',
  usage: ['topology [--host HOST] [-o text|json|yaml|dot]'],
  description: `
Asks every registered host's daemon (or only HOST's) for the topology it runs now,
with per-port packet counters, and shows it as a tree per host. The cables between
hosts (the \`via\` netdevs of the chains) are drawn between the hosts' netdevs.
-o dot prints a Graphviz graph: hosts as clusters, cubes as records with their ports,
netdevs, links, and transparent cubes joined to the port or netdev they are
stacked on.`,
  options: { host: { type: 'string' } },
  optionHelp: [['--host HOST', 'only this host']],
  outputs: ['text', 'json', 'yaml', 'dot'],
  examples: ['netcubectl topology', 'netcubectl topology --host h2', 'netcubectl topology -o dot | dot -Tsvg > topology.svg'],
  async run(session, args) {
    positionals(args, 'topology', []);
    const only = stringOption(args, 'host');
    const { hosts, cables } = await collect(session, only);
    if (session.output === 'dot') session.out(dot(hosts, cables));
    else session.print({ hosts, cables }, () => tree(hosts, cables));
    const failed = hosts.filter(h => h.error);
    if (failed.length === hosts.length && hosts.length > 0) {
      throw new CommandFailed(`no host could be asked for its topology: ${failed.map(h => `${h.host}: ${h.error}`).join('; ')}`);
    }
    for (const h of failed) session.note(`warning: ${h.host}: ${h.error}`);
  },
};

async function collect(session: Session, only: string | undefined): Promise<{ hosts: HostTopology[]; cables: Cable[] }> {
  const daemons = await session.daemons();
  const [registered, chains] = await Promise.all([daemons.hosts(), daemons.allChains()]);
  const placed = new Map<string, string[]>();
  for (const chain of chains) {
    for (const cube of chain.chain.spec.cubes) placed.set(cube.host, [...(placed.get(cube.host) ?? []), cube.name]);
  }
  let names = [...new Set([...registered.map(h => h.name), ...placed.keys()])].sort();
  if (only !== undefined) {
    if (!names.includes(only)) {
      throw new CommandFailed(`host ${only} is neither registered nor used by a chain (hosts: ${names.join(', ') || 'none'})`);
    }
    names = [only];
  }
  const hosts = await Promise.all(
    names.map(async (host): Promise<HostTopology> => {
      const entry: HostTopology = { host, placed: placed.get(host) ?? [] };
      if (!registered.some(h => h.name === host)) return { ...entry, error: 'not registered in etcd: is its netcubed running?' };
      try {
        const connection = await daemons.connect(host);
        entry.endpoint = connection.endpoint;
        entry.topology = topologyView(await daemons.call(connection, client => client.getTopology()));
      } catch (err) {
        entry.error = (err as Error).message;
      }
      return entry;
    }),
  );
  return { hosts, cables: cablesOf(chains).filter(c => only === undefined || c.a.host === only || c.b.host === only) };
}

function cablesOf(chains: StoredChain[]): Cable[] {
  const cables: Cable[] = [];
  for (const { name, chain } of chains) {
    const hostOf = new Map(chain.spec.cubes.map(c => [c.name, c.host]));
    for (const link of chain.spec.links) {
      const from = parseEndpoint(link.from);
      const to = parseEndpoint(link.to);
      if (!link.via || from?.kind !== 'port' || to?.kind !== 'port') continue;
      const a = hostOf.get(from.cube);
      const b = hostOf.get(to.cube);
      if (a && b && a !== b) cables.push({ chain: name, a: { host: a, netdev: link.via.from }, b: { host: b, netdev: link.via.to } });
    }
  }
  return cables;
}

// ----------------------------------------------------------------- text

interface Node {
  text: string;
  children: Node[];
}

function render(nodes: Node[], indent = ''): string[] {
  return nodes.flatMap((node, i) => {
    const last = i === nodes.length - 1;
    return [`${indent}${last ? '└── ' : '├── '}${node.text}`, ...render(node.children, indent + (last ? '    ' : '│   '))];
  });
}

function stackText(topology: TopologyView, target: string): Node[] {
  const stack = topology.stacks.find(s => s.target === target);
  if (!stack || stack.layers.length === 0) return [];
  return [{ text: `stack: ${stack.layers.map(l => `${l.cube} (${l.direction})`).join(', ')}`, children: [] }];
}

function tree(hosts: HostTopology[], cables: Cable[]): string {
  if (hosts.length === 0) return 'no hosts: none is registered and no chain places a cube\n';
  const out: string[] = [];
  for (const h of hosts) {
    out.push(`${h.host}${h.endpoint ? `  (${h.endpoint})` : ''}`);
    if (!h.topology) {
      const placed = h.placed.length ? `; chains place ${h.placed.join(', ')} here` : '';
      out.push(...render([{ text: `unknown: ${h.error}${placed}`, children: [] }]));
      continue;
    }
    const topo = h.topology;
    const peerOf = new Map<string, string>();
    for (const l of topo.links) {
      peerOf.set(l.a, l.b);
      peerOf.set(l.b, l.a);
    }
    const nodes: Node[] = topo.cubes.map(cube => {
      const kind = [cube.type, cube.mode, ...(cube.transparent ? ['transparent'] : []), ...(cube.chain ? [`chain ${cube.chain}`] : [])].join(', ');
      const width = Math.max(0, ...cube.ports.map(p => p.name.length));
      const peerWidth = Math.max(0, ...cube.ports.map(p => p.peer.length));
      return {
        text: `cube ${cube.name}  ${kind}`,
        children: cube.ports.map(p => ({
          text: `port ${p.name.padEnd(width)}  <-> ${p.peer.padEnd(peerWidth)}  rx ${p.stats?.rxPackets ?? '?'}  tx ${p.stats?.txPackets ?? '?'}  drops ${p.stats?.drops ?? '?'}`,
          children: stackText(topo, `${cube.name}:${p.name}`),
        })),
      };
    });
    const netdevs = new Set<string>();
    for (const l of topo.links) for (const e of [l.a, l.b]) if (e.startsWith('netdev:')) netdevs.add(e.slice('netdev:'.length));
    for (const s of topo.stacks) if (s.target.startsWith('netdev:')) netdevs.add(s.target.slice('netdev:'.length));
    for (const c of cables) for (const end of [c.a, c.b]) if (end.host === h.host) netdevs.add(end.netdev);
    const names = [...netdevs].sort();
    const width = Math.max(0, ...names.map(n => n.length));
    for (const netdev of names) {
      const peer = peerOf.get(`netdev:${netdev}`);
      const cabled = cables
        .flatMap(c => (c.a.host === h.host && c.a.netdev === netdev ? [c.b] : c.b.host === h.host && c.b.netdev === netdev ? [c.a] : []))
        .map(end => `  ==> ${end.host} netdev:${end.netdev}`)
        .join('');
      nodes.push({ text: `netdev ${netdev.padEnd(width)}  <-> ${peer ?? '(kernel stack)'}${cabled}`, children: stackText(topo, `netdev:${netdev}`) });
    }
    out.push(...render(nodes.length ? nodes : [{ text: 'nothing', children: [] }]));
  }
  return out.join('\n') + '\n';
}

// ----------------------------------------------------------------- Graphviz

/** A quoted DOT id; `\\n` in it stays DOT's line break. */
const q = (id: string): string => `"${id.replace(/"/g, '\\"')}"`;

function dot(hosts: HostTopology[], cables: Cable[]): string {
  const lines = [
    'digraph netcube {',
    '  rankdir=LR;',
    '  compound=true;',
    '  node [fontname="Helvetica", fontsize=10];',
    '  edge [fontname="Helvetica", fontsize=9];',
  ];
  const edges: string[] = [];
  const cubeId = (host: string, cube: string) => q(`${host}/cube/${cube}`);
  const netdevId = (host: string, netdev: string) => q(`${host}/netdev/${netdev}`);
  const endpointId = (host: string, endpoint: string): string => {
    const e = parseEndpoint(endpoint);
    if (!e) return q(`${host}/${endpoint}`);
    return e.kind === 'netdev' ? netdevId(host, e.ifname) : `${cubeId(host, e.cube)}:${q(e.port)}`;
  };
  for (const h of hosts) {
    lines.push(`  subgraph ${q(`cluster_${h.host}`)} {`);
    lines.push(`    label=${q(h.topology ? h.host : `${h.host} (unknown: ${h.error})`)};`, '    style=rounded;');
    const netdevs = new Set<string>();
    const topo = h.topology;
    for (const cube of topo?.cubes ?? []) {
      if (cube.transparent) {
        lines.push(`    ${cubeId(h.host, cube.name)} [shape=hexagon, label=${q(`${cube.name}\\n${cube.type}, ${cube.mode}`)}];`);
      } else {
        const ports = cube.ports.map(p => `<${p.name}> ${p.name}`).join(' | ');
        lines.push(`    ${cubeId(h.host, cube.name)} [shape=Mrecord, label=${q(`{ ${cube.name}\\n${cube.type}, ${cube.mode} | { ${ports} } }`)}];`);
      }
    }
    for (const l of topo?.links ?? []) {
      for (const e of [l.a, l.b]) if (e.startsWith('netdev:')) netdevs.add(e.slice('netdev:'.length));
      edges.push(`  ${endpointId(h.host, l.a)} -> ${endpointId(h.host, l.b)} [dir=both];`);
    }
    for (const s of topo?.stacks ?? []) {
      if (s.target.startsWith('netdev:')) netdevs.add(s.target.slice('netdev:'.length));
      s.layers.forEach((layer, i) => {
        edges.push(`  ${cubeId(h.host, layer.cube)} -> ${endpointId(h.host, s.target)} [style=dashed, arrowhead=odot, label=${q(`${layer.direction} #${i}`)}];`);
      });
    }
    for (const c of cables) for (const end of [c.a, c.b]) if (end.host === h.host) netdevs.add(end.netdev);
    for (const netdev of [...netdevs].sort()) lines.push(`    ${netdevId(h.host, netdev)} [shape=box, style=filled, fillcolor=lightgrey, label=${q(netdev)}];`);
    if (!topo) lines.push(`    ${q(`${h.host}/unknown`)} [shape=plaintext, label=${q(h.placed.length ? `placed: ${h.placed.join(', ')}` : 'unknown')}];`);
    lines.push('  }');
  }
  for (const c of cables) {
    edges.push(`  ${netdevId(c.a.host, c.a.netdev)} -> ${netdevId(c.b.host, c.b.netdev)} [dir=both, penwidth=2, label=${q(`cable (chain ${c.chain})`)}];`);
  }
  return [...lines, ...edges, '}', ''].join('\n');
}
