// The node's VXLAN netdev and forwarding table, and its host link, through iproute2 (`ip -j`, `bridge -j`),
// in the agent's own network namespace or in the one given (a namespace-node of
// deploy/hosts.sh, whose agent runs beside the API server it reads).

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { FdbEntry, IpLink, VxlanSpec } from './vxlan';

const execFileAsync = promisify(execFile);

export class Iproute {
  /** @param netns a network namespace file (/run/netns/NAME) to act in; default: the agent's own. */
  constructor(private readonly netns?: string) {}

  /** The netdev `name`, or undefined when there is none. */
  async link(name: string): Promise<IpLink | undefined> {
    const out = await this.run('ip', ['-j', '-d', 'link', 'show', 'dev', name], (stderr) => /does not exist|Cannot find device/.test(stderr));
    return out === undefined ? undefined : (JSON.parse(out) as IpLink[])[0];
  }

  async createVxlan(spec: VxlanSpec): Promise<void> {
    await this.run('ip', ['link', 'add', spec.name, 'type', 'vxlan', 'id', String(spec.vni), 'dstport', String(spec.port), 'local', spec.local, 'dev', spec.uplink, 'nolearning']);
    await this.setLink(spec.name, spec.mtu, true);
  }

  async setLink(name: string, mtu: number | undefined, up: boolean): Promise<void> {
    await this.run('ip', ['link', 'set', 'dev', name, ...(mtu === undefined ? [] : ['mtu', String(mtu)]), ...(up ? ['up'] : [])]);
  }

  async deleteLink(name: string): Promise<void> {
    await this.run('ip', ['link', 'delete', 'dev', name], (stderr) => /Cannot find device/.test(stderr));
  }

  /** The netdev's forwarding entries. */
  async fdb(name: string): Promise<{ mac: string; dst?: string }[]> {
    return JSON.parse((await this.run('bridge', ['-j', 'fdb', 'show', 'dev', name])) || '[]') as { mac: string; dst?: string }[];
  }

  /** Adds an entry beside those of its MAC (a flood entry has one per node). */
  async addFdb(name: string, e: FdbEntry): Promise<void> {
    await this.run('bridge', ['fdb', 'append', e.mac, 'dev', name, 'dst', e.dst, 'self', 'permanent'], (stderr) => /File exists/.test(stderr));
  }

  async deleteFdb(name: string, e: FdbEntry): Promise<void> {
    await this.run('bridge', ['fdb', 'del', e.mac, 'dev', name, 'dst', e.dst, 'self'], (stderr) => /No such file|not found/i.test(stderr));
  }

  /** The IPv4 addresses of netdev `name`, as a.b.c.d/n. */
  async addresses(name: string): Promise<string[]> {
    const out = JSON.parse((await this.run('ip', ['-j', '-4', 'addr', 'show', 'dev', name])) || '[]') as { addr_info?: { local: string; prefixlen: number }[] }[];
    return (out[0]?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`);
  }

  /** The IPv4 routes through netdev `name`. */
  async routes(name: string): Promise<{ dst: string; gateway?: string }[]> {
    return JSON.parse((await this.run('ip', ['-j', '-4', 'route', 'show', 'dev', name])) || '[]') as { dst: string; gateway?: string }[];
  }

  /** Runs `ip` with `args`. */
  async ip(args: string[]): Promise<void> {
    await this.run('ip', args);
  }

  /** The MTU of netdev `name`; an error that says so when it does not exist. */
  async mtu(name: string): Promise<number> {
    const link = await this.link(name);
    if (!link) throw new Error(`netdev ${name} does not exist: the node's uplink (--uplink, or the Node's netcube.io/uplink annotation) carries the VXLAN traffic`);
    return link.mtu;
  }

  /** Runs a command; its stdout, or undefined when it failed in a way `absent` accepts. */
  private async run(command: string, args: string[], absent?: (stderr: string) => boolean): Promise<string | undefined> {
    const [file, argv] = this.netns ? ['nsenter', [`--net=${this.netns}`, '--', command, ...args]] : [command, args];
    try {
      return (await execFileAsync(file, argv, { timeout: 10_000 })).stdout;
    } catch (err) {
      const stderr = String((err as { stderr?: string }).stderr ?? '');
      if (absent?.(stderr)) return undefined;
      throw new Error(`${command} ${args.join(' ')}${this.netns ? ` (in ${this.netns})` : ''} failed: ${stderr.trim() || (err as Error).message}`);
    }
  }
}
