// The node agent (`netcube-k8s node`): one per node, it keeps the node's kernel
// VXLAN netdev and its forwarding table in step with the cluster's Nodes (vxlan.ts
// says what they must hold and why), and makes the node's host link (host-link.ts).
// It follows the Nodes with the controller's informers (kube/source.ts) and, on
// every change and every resync period, reads what the kernel has and changes only
// what differs: idempotent, so a restarted agent, or a netdev someone changed by
// hand, converges. One direction only: the API in, the kernel out; it writes
// nothing to the API or to etcd.

import type { Logger } from '@netcube/api/log';
import type { KubeSource } from '../kube/source';
import { nodeModel, Problems, type ClusterSettings, type KubeNode, type NodeModel } from '../model';
import { SerialPasses } from '@netcube/api/passes';
import type { Iproute } from './iproute';
import { desiredFdb, fdbChanges, linkChange, vxlanSpec } from './vxlan';
import { hostLinkCommands, hostLinkSpec, type HostLinkSpec } from './host-link';

export interface NodeAgentOptions {
  /** This node's name (its Node's metadata.name). */
  node: string;
  /** Following Nodes (the others are not read). */
  source: KubeSource;
  settings: ClusterSettings;
  vxlan: { vni: number; port: number };
  iproute: Iproute;
  log: Logger;
  /** A pass at least this often. */
  resyncMs: number;
}

export class NodeAgent {
  private readonly serial = new SerialPasses(
    () => this.pass(),
    (err) => this.opts.log.error('VXLAN netdev not in step with the Nodes; the next change or resync tries again', { error: err.message }),
  );
  private resync?: NodeJS.Timeout;
  private closed = false;
  /** Problems already logged, so each is logged once. */
  private readonly told = new Set<string>();
  /** Passes that went through (one that failed or found its own Node unusable does not count). */
  passes = 0;

  constructor(private readonly opts: NodeAgentOptions) {}

  /** Follows the Nodes; resolves once they are listed (the first pass is then under way). */
  async start(): Promise<void> {
    this.opts.source.on('changed', () => this.schedule());
    await this.opts.source.start();
    this.resync = setInterval(() => this.schedule(), this.opts.resyncMs);
  }

  /** Stops following; the netdev and its table stay as they are (the data plane does not depend on the agent). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.resync);
    await this.opts.source.stop();
    await this.serial.idle();
  }

  /** Runs a pass soon; passes never overlap, changes during one make one more. */
  schedule(): void {
    this.serial.schedule(() => !this.closed);
  }

  private async pass(): Promise<void> {
    const { iproute, log, settings } = this.opts;
    const problems = new Problems();
    const nodes = new Map<string, NodeModel>();
    for (const n of this.opts.source.state().nodes as KubeNode[]) {
      const model = nodeModel(n, settings, problems);
      if (model) nodes.set(model.name, model);
    }
    for (const p of problems.list) this.tell('Node left out of the VXLAN forwarding table', { object: p.object, problem: p.message });
    const self = nodes.get(this.opts.node);
    if (!self) {
      this.tell('this node is not ready for pods yet: the VXLAN netdev waits for its Node', { node: this.opts.node, problem: problems.list.find((p) => p.object === `Node ${this.opts.node}`)?.message ?? 'no such Node' });
      return;
    }
    const spec = vxlanSpec(self, { name: settings.vxlanNetdev, ...this.opts.vxlan, uplinkMtu: await iproute.mtu(self.uplink) });
    const change = linkChange(await iproute.link(spec.name), spec);
    if (change.kind === 'recreate') {
      log.warn('VXLAN netdev made anew', { netdev: spec.name, why: change.why });
      await iproute.deleteLink(spec.name);
    }
    if (change.kind === 'create' || change.kind === 'recreate') {
      await iproute.createVxlan(spec);
      log.info('VXLAN netdev made', { netdev: spec.name, vni: spec.vni, port: spec.port, local: spec.local, uplink: spec.uplink, mtu: spec.mtu });
    } else if (change.kind === 'adjust') {
      await iproute.setLink(spec.name, change.mtu, change.setUp);
      log.info('VXLAN netdev adjusted', { netdev: spec.name, mtu: change.mtu, up: change.setUp || undefined });
    }
    const { add, remove } = fdbChanges(await iproute.fdb(spec.name), desiredFdb(self.name, nodes.values()));
    for (const e of remove) {
      await iproute.deleteFdb(spec.name, e);
      log.info('forwarding entry removed', { netdev: spec.name, mac: e.mac, dst: e.dst });
    }
    for (const e of add) {
      await iproute.addFdb(spec.name, e);
      log.info('forwarding entry added', { netdev: spec.name, mac: e.mac, dst: e.dst });
    }
    await ensureHostLink(iproute, hostLinkSpec(self, settings, spec.mtu), log);
    this.passes++;
  }

  private tell(message: string, fields: Record<string, string>): void {
    const text = `${message} ${JSON.stringify(fields)}`;
    if (this.told.has(text)) return;
    this.told.add(text);
    this.opts.log.warn(message, fields);
  }
}

/** Makes the node's host link as `spec` says, changing only what differs (host-link.ts). */
export async function ensureHostLink(iproute: Iproute, spec: HostLinkSpec, log: Logger): Promise<void> {
  const [kernel, chain] = await Promise.all([iproute.link(spec.kernel), iproute.link(spec.chain)]);
  const [addresses, routes] = kernel ? await Promise.all([iproute.addresses(spec.kernel), iproute.routes(spec.kernel)]) : [[], []];
  const commands = hostLinkCommands({ kernel, chain, addresses, routes }, spec);
  for (const args of commands) await iproute.ip(args);
  if (commands.length > 0) log.info('host link made', { netdev: spec.kernel, peer: spec.chain, address: spec.address, routes: spec.routes.map((r) => `${r.prefix} via ${r.via}`), mtu: spec.mtu, commands: commands.length });
}
