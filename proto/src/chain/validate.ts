// Everything that makes a well-formed chain impossible to run: names that clash across
// the cluster, links to nothing, peers taken twice, modes that cannot tail-call each
// other, hosts joined without netdevs, loops, and the kernel's tail-call limit.

import { ChainValidationError } from './errors';
import { locateIssues, sourceOf } from './parse';
import { tableResizeProblem } from './tables';
import { endpointOf, formatEndpoint, normalizeChain, Path, PathIssue, stackDirections } from './schema';
import {
  Chain,
  CubeSpec,
  CubeTypeInfo,
  PortEndpoint,
  TypeCatalog,
  ValidationContext,
} from './types';

export function validateChain(chain: Chain, ctx: ValidationContext): void {
  const found = new ChainCheck(checkedChain(chain), ctx).run();
  if (found.length > 0) throw new ChainValidationError(chain.metadata.name, locateIssues(chain, found), sourceOf(chain));
}

/**
 * The normalized form of anything claiming to be a chain (defaults filled in), or a
 * ChainValidationError listing its shape problems: for chains that come from code or
 * over the wire rather than through parseChain.
 */
export function checkedChain(chain: Chain): Chain {
  const { chain: normalized, issues } = normalizeChain(chain);
  if (normalized) return normalized;
  const name = typeof chain?.metadata?.name === 'string' ? chain.metadata.name : undefined;
  throw new ChainValidationError(name, locateIssues(chain, issues), sourceOf(chain));
}

export function typeCatalog(types: Iterable<CubeTypeInfo>): TypeCatalog {
  const byName = new Map<string, CubeTypeInfo>();
  for (const type of types) byName.set(type.name, type);
  return { get: name => byName.get(name), names: () => [...byName.keys()].sort() };
}

interface KnownCube {
  spec: CubeSpec;
  index: number;
  info?: CubeTypeInfo;
}

/** A netdev bound to a cube port on a host, by a link to it or as one side of a `via`. */
interface NetdevBinding {
  host: string;
  ifname: string;
  cube: string;
  port: string;
  /** Index of the link that binds it. */
  link: number;
  path: Path;
}

function netdevBindings(chain: Chain): NetdevBinding[] {
  const cubes = new Map(chain.spec.cubes.map(cube => [cube.name, cube]));
  const bindings: NetdevBinding[] = [];
  chain.spec.links.forEach((link, i) => {
    const from = endpointOf(link.from);
    const to = endpointOf(link.to);
    const bind = (end: PortEndpoint, ifname: string, path: Path) => {
      const cube = cubes.get(end.cube);
      if (cube) bindings.push({ host: cube.host, ifname, cube: end.cube, port: end.port, link: i, path });
    };
    if (from.kind === 'port' && to.kind === 'port') {
      const fromHost = cubes.get(from.cube)?.host;
      const toHost = cubes.get(to.cube)?.host;
      if (link.via && fromHost && toHost && fromHost !== toHost) {
        bind(from, link.via.from, ['spec', 'links', i, 'via', 'from']);
        bind(to, link.via.to, ['spec', 'links', i, 'via', 'to']);
      }
    } else if (from.kind === 'port' && to.kind === 'netdev') {
      bind(from, to.ifname, ['spec', 'links', i, 'to']);
    } else if (from.kind === 'netdev' && to.kind === 'port') {
      bind(to, from.ifname, ['spec', 'links', i, 'from']);
    }
  });
  return bindings;
}

const hostKey = (host: string, name: string) => `${host}\0${name}`;

class ChainCheck {
  private readonly issues: PathIssue[] = [];
  private readonly others: Chain[];
  private readonly cubes = new Map<string, KnownCube>();

  constructor(
    private readonly chain: Chain,
    private readonly ctx: ValidationContext,
  ) {
    this.others = ctx.otherChains.filter(other => other.metadata.name !== chain.metadata.name);
  }

  run(): PathIssue[] {
    this.checkCubes();
    this.checkLinks();
    this.checkAttachments();
    // Loops and path lengths are only meaningful on a topology whose every name resolves.
    if (this.issues.length === 0) this.checkTopology();
    return this.issues;
  }

  private problem(path: Path, message: string) {
    this.issues.push({ path, message });
  }

  private owningChain(cube: string): { chain: string; host: string } | undefined {
    for (const other of this.others) {
      const found = other.spec.cubes.find(c => c.name === cube);
      if (found) return { chain: other.metadata.name, host: found.host };
    }
    return undefined;
  }

  private checkCubes() {
    this.chain.spec.cubes.forEach((cube, i) => {
      const path = ['spec', 'cubes', i];
      const earlier = this.cubes.get(cube.name);
      const owner = this.owningChain(cube.name);
      if (earlier) {
        this.problem([...path, 'name'], `cube name ${cube.name} is already used by spec.cubes[${earlier.index}]; cube names are unique across the cluster: rename one of them`);
      } else if (owner) {
        this.problem([...path, 'name'], `cube name ${cube.name} is already used by chain ${owner.chain} (on ${owner.host}); cube names are unique across the cluster: rename it`);
      }

      const info = this.ctx.types.get(cube.type);
      if (!earlier) this.cubes.set(cube.name, { spec: cube, index: i, info });
      if (!info) {
        const known = this.ctx.types.names();
        const list = known.length ? `known types are ${known.join(', ')}` : 'no types are registered';
        this.problem([...path, 'type'], `unknown cube type ${cube.type} (${list}): fix the name or register the type first`);
      } else {
        if (!info.modes.includes(cube.mode)) {
          this.problem([...path, 'mode'], `cube type ${cube.type} does not run in ${cube.mode} mode, only in ${info.modes.join(' and ')}: set mode: ${info.modes[0]}`);
        }
        if (info.transparent && cube.ports.length > 0) {
          this.problem([...path, 'ports'], `cube type ${cube.type} is transparent, so its cubes have no ports: remove ports and stack ${cube.name} with spec.attachments`);
        }
        for (const index of Object.keys(cube.replacedMicrocubes ?? {})) {
          if (Number(index) >= info.microcubes) {
            this.problem([...path, 'replacedMicrocubes', index], `cube type ${cube.type} has micro-cubes 0 to ${info.microcubes - 1}: there is no micro-cube ${index} to replace`);
          }
        }
        // A record without its tables (written before types published them) leaves the check to netcubed.
        for (const table of info.tables ? Object.keys(cube.tableSizes ?? {}) : []) {
          const problem = tableResizeProblem(cube.type, table, info.tables!);
          if (problem) this.problem([...path, 'tableSizes', table], problem);
        }
      }

      const seen = new Set<string>();
      cube.ports.forEach((port, k) => {
        if (seen.has(port)) this.problem([...path, 'ports', k], `port ${port} is listed twice in cube ${cube.name}: remove one`);
        seen.add(port);
      });
    });
  }

  /** The cube a port endpoint names, if it exists in this chain and has that port. */
  private resolvePort(end: PortEndpoint, path: Path): KnownCube | undefined {
    const cube = this.cubes.get(end.cube);
    if (!cube) {
      const owner = this.owningChain(end.cube);
      this.problem(
        path,
        owner
          ? `cube ${end.cube} belongs to chain ${owner.chain}: a chain refers only to its own cubes`
          : `unknown cube ${end.cube}; the cubes of this chain are ${[...this.cubes.keys()].join(', ')}`,
      );
      return undefined;
    }
    if (cube.info?.transparent) {
      this.problem(path, `cube ${end.cube} is transparent and has no ports: stack it with spec.attachments instead`);
      return undefined;
    }
    if (!cube.spec.ports.includes(end.port)) {
      const ports = cube.spec.ports.length ? `its ports are ${cube.spec.ports.join(', ')}` : 'it has no ports';
      this.problem(path, `cube ${end.cube} has no port ${end.port} (${ports}): fix the name or add it to spec.cubes[${cube.index}].ports`);
      return undefined;
    }
    return cube;
  }

  private checkLinks() {
    const peers = new Map<string, { index: number; other: string }>();
    const resolved = new Set<number>();

    this.chain.spec.links.forEach((link, i) => {
      const path = ['spec', 'links', i];
      const from = endpointOf(link.from);
      const to = endpointOf(link.to);
      if (from.kind === 'netdev' && to.kind === 'netdev') {
        this.problem(path, `both ends (${link.from}, ${link.to}) are netdevs: a link joins a cube port to another cube port or to a netdev`);
        return;
      }
      const fromCube = from.kind === 'port' ? this.resolvePort(from, [...path, 'from']) : undefined;
      const toCube = to.kind === 'port' ? this.resolvePort(to, [...path, 'to']) : undefined;
      if ((from.kind === 'port' && !fromCube) || (to.kind === 'port' && !toCube)) return;
      if (link.from === link.to) {
        this.problem(path, `both ends are ${link.from}: a link joins two different ports`);
        return;
      }
      resolved.add(i);

      for (const [side, end, other] of [['from', from, link.to], ['to', to, link.from]] as const) {
        if (end.kind !== 'port') continue;
        const key = formatEndpoint(end);
        const earlier = peers.get(key);
        if (earlier) {
          this.problem([...path, side], `port ${key} already has a peer: spec.links[${earlier.index}] links it to ${earlier.other}; a port has at most one peer`);
        } else {
          peers.set(key, { index: i, other });
        }
      }

      if (fromCube && toCube) {
        const a = fromCube.spec;
        const b = toCube.spec;
        if (a.host === b.host) {
          if (link.via) {
            this.problem([...path, 'via'], `cubes ${a.name} and ${b.name} are both on ${a.host}, where cubes are joined by tail calls: remove via`);
          }
          if (a.mode !== b.mode) {
            this.problem(path, `cube ${a.name} runs in ${a.mode} mode and ${b.name} in ${b.mode} mode on ${a.host}: XDP and TC programs cannot tail-call each other; give both the same mode, or place them on different hosts joined through netdevs`);
          }
        } else if (!link.via) {
          this.problem([...path, 'via'], `cube ${a.name} on ${a.host} and ${b.name} on ${b.host} are on different hosts: add via: {from: <netdev on ${a.host}>, to: <netdev on ${b.host}>}`);
        }
      } else if (link.via) {
        this.problem([...path, 'via'], `via joins cubes on different hosts, and this link ends at a netdev: remove via`);
      }
    });

    // A netdev has one peer on its host, whichever chain binds it.
    const netdevs = new Map<string, string>();
    for (const other of this.others) {
      for (const b of netdevBindings(other)) {
        netdevs.set(hostKey(b.host, b.ifname), `chain ${other.metadata.name} links it to ${b.cube}:${b.port}`);
      }
    }
    for (const b of netdevBindings(this.chain)) {
      if (!resolved.has(b.link)) continue;
      const key = hostKey(b.host, b.ifname);
      const earlier = netdevs.get(key);
      if (earlier) {
        this.problem(b.path, `netdev ${b.ifname} on ${b.host} already has a peer: ${earlier}; a netdev has at most one peer`);
      } else {
        netdevs.set(key, `spec.links[${b.link}] links it to ${b.cube}:${b.port}`);
      }
    }
  }

  private checkAttachments() {
    const attached = new Map<string, number>();

    // Which cube each netdev feeds, so a stack on it can be checked for a matching mode.
    const netdevCube = new Map<string, CubeSpec>();
    for (const chain of [...this.others, this.chain]) {
      const cubes = new Map(chain.spec.cubes.map(cube => [cube.name, cube]));
      for (const b of netdevBindings(chain)) {
        const cube = cubes.get(b.cube);
        if (cube) netdevCube.set(hostKey(b.host, b.ifname), cube);
      }
    }

    // One chain owns each stack, so the order of its cubes is written in one place.
    const stackOwners = new Map<string, { chain: string; cubes: string[] }>();
    for (const other of this.others) {
      const hosts = new Map(other.spec.cubes.map(cube => [cube.name, cube.host]));
      for (const a of other.spec.attachments) {
        for (const direction of stackDirections(a.direction)) {
          const key = `${hosts.get(a.cube)}\0${a.to}\0${direction}`;
          const owner = stackOwners.get(key) ?? { chain: other.metadata.name, cubes: [] };
          owner.cubes.push(a.cube);
          stackOwners.set(key, owner);
        }
      }
    }

    this.chain.spec.attachments.forEach((attachment, i) => {
      const path = ['spec', 'attachments', i];
      const cube = this.cubes.get(attachment.cube);
      if (!cube) {
        const owner = this.owningChain(attachment.cube);
        this.problem(
          [...path, 'cube'],
          owner
            ? `cube ${attachment.cube} belongs to chain ${owner.chain}: a chain attaches only its own cubes`
            : `unknown cube ${attachment.cube}; the cubes of this chain are ${[...this.cubes.keys()].join(', ')}`,
        );
        return;
      }
      if (cube.info && !cube.info.transparent) {
        this.problem([...path, 'cube'], `cube ${attachment.cube} is not transparent (type ${cube.spec.type} has ports): link its ports with spec.links instead`);
        return;
      }
      const earlier = attached.get(attachment.cube);
      if (earlier !== undefined) {
        this.problem([...path, 'cube'], `cube ${attachment.cube} is already attached by spec.attachments[${earlier}]; a transparent cube sits in one place (direction: both covers ingress and egress)`);
        return;
      }
      attached.set(attachment.cube, i);

      const { host, mode } = cube.spec;
      const target = endpointOf(attachment.to);
      if (target.kind === 'port') {
        const carrier = this.resolvePort(target, [...path, 'to']);
        if (!carrier) return;
        if (carrier.spec.host !== host) {
          this.problem([...path, 'to'], `cube ${attachment.cube} is on ${host} but ${target.cube} is on ${carrier.spec.host}: a transparent cube attaches to a port or netdev on its own host`);
        } else if (carrier.spec.mode !== mode) {
          this.problem([...path, 'to'], `cube ${attachment.cube} runs in ${mode} mode and ${target.cube} in ${carrier.spec.mode} mode: XDP and TC programs cannot tail-call each other; give both the same mode`);
        }
      } else {
        const fed = netdevCube.get(hostKey(host, target.ifname));
        if (fed && fed.mode !== mode) {
          this.problem([...path, 'to'], `cube ${attachment.cube} runs in ${mode} mode but netdev ${target.ifname} on ${host} is linked to ${fed.name}, which runs in ${fed.mode} mode: XDP and TC programs cannot tail-call each other; give both the same mode`);
        } else if (!fed && mode === 'xdp' && attachment.direction !== 'ingress') {
          this.problem([...path, 'direction'], `XDP sees only the packets a netdev receives, and no cube sends to netdev ${target.ifname} on ${host}: use mode: tc for ${attachment.direction}, or direction: ingress`);
        }
      }

      for (const direction of stackDirections(attachment.direction)) {
        const owner = stackOwners.get(`${host}\0${attachment.to}\0${direction}`);
        if (owner) {
          this.problem([...path, 'to'], `the ${direction} stack of ${attachment.to} on ${host} belongs to chain ${owner.chain} (${owner.cubes.join(', ')}); the cubes of one stack are listed in one chain: move ${attachment.cube} there or attach it elsewhere`);
        }
      }
    });
    // A transparent cube in no attachment is detached (the API's Detach): it is
    // loaded, and no packet reaches it.
  }

  /**
   * Each host's whole plan (all chains) goes through the host check, which knows every
   * path a packet can take there and what it costs in tail calls: the one place loops
   * and the kernel's limit are found.
   */
  private checkTopology() {
    const { hostCheck } = this.ctx;
    if (!hostCheck) return;
    const hosts = [...new Set(this.chain.spec.cubes.map(cube => cube.host))];
    for (const host of hosts) {
      const problem = hostCheck([this.chain, ...this.others], host, this.ctx.types);
      if (problem) this.problem(['spec'], `on ${host}: ${problem}`);
    }
  }
}
