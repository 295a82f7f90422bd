// The Kubernetes objects the controller reads, followed with @kubernetes/client-node
// informers: each lists, then watches from the list's resourceVersion; a watch the
// server ends is resumed from the last version seen; a 410 Gone (the version was
// compacted away) makes it list again, and the cache emits deletions for what went
// meanwhile. An informer stops on any other error (client-node leaves restarting to
// its user): it is started again after a pause that grows to retryMaxMs.
// Handlers only say that something changed: the controller derives every chain from
// the caches whole (model/), so an event lost, doubled or out of order cannot leave
// a chain wrong, and the resync period re-derives them anyway.

import { EventEmitter } from 'node:events';
import type * as K8s from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import type { Logger } from '@netcube/api/log';
import type { ClusterState } from '../model';

// @kubernetes/client-node 1.x is an ES module: Node 20.19 and later load it with
// require(), which TypeScript's CommonJS output does not write by itself.
const k8s = require('@kubernetes/client-node') as typeof K8s;

type Informer = K8s.Informer<K8s.KubernetesObject> & K8s.ObjectCache<K8s.KubernetesObject>;

export interface KubeSourceOptions {
  log: Logger;
  /** First pause before an informer that failed starts again; doubled up to retryMaxMs. */
  retryMs?: number;
  retryMaxMs?: number;
  /** The resources to follow (default: all); the others' lists in state() stay empty. */
  resources?: readonly KubeResource[];
}

interface KubeSourceEvents {
  /** Some object changed (after the first sync). */
  changed: [];
}

export type KubeResource = keyof Omit<ClusterState, 'podPorts'>;

export class KubeSource extends EventEmitter<KubeSourceEvents> {
  private readonly informers = new Map<KubeResource, Informer>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  private synced = false;

  constructor(
    private readonly kc: K8s.KubeConfig,
    private readonly options: KubeSourceOptions,
  ) {
    super();
  }

  /** Starts every informer; resolves once each has listed. */
  async start(): Promise<void> {
    const core = this.kc.makeApiClient(k8s.CoreV1Api);
    const discovery = this.kc.makeApiClient(k8s.DiscoveryV1Api);
    const networking = this.kc.makeApiClient(k8s.NetworkingV1Api);
    const lists: Record<KubeResource, [string, () => Promise<K8s.KubernetesListObject<K8s.KubernetesObject>>]> = {
      nodes: ['/api/v1/nodes', () => core.listNode()],
      namespaces: ['/api/v1/namespaces', () => core.listNamespace()],
      pods: ['/api/v1/pods', () => core.listPodForAllNamespaces()],
      services: ['/api/v1/services', () => core.listServiceForAllNamespaces()],
      endpointSlices: ['/apis/discovery.k8s.io/v1/endpointslices', () => discovery.listEndpointSliceForAllNamespaces()],
      networkPolicies: ['/apis/networking.k8s.io/v1/networkpolicies', () => networking.listNetworkPolicyForAllNamespaces()],
    };
    const ready: Promise<void>[] = [];
    for (const [resource, [path, list]] of Object.entries(lists) as [KubeResource, (typeof lists)[KubeResource]][]) {
      if (this.options.resources && !this.options.resources.includes(resource)) continue;
      const informer = k8s.makeInformer(this.kc, path, list) as Informer;
      this.informers.set(resource, informer);
      const changed = (): void => {
        if (this.synced) this.emit('changed');
      };
      informer.on('add', changed);
      informer.on('update', changed);
      informer.on('delete', changed);
      ready.push(this.run(resource, informer));
    }
    await Promise.all(ready);
    this.synced = true;
    this.emit('changed');
  }

  /** The objects as the caches hold them now. */
  state(): Omit<ClusterState, 'podPorts'> {
    const of = (r: KubeResource) => (this.informers.get(r)?.list() ?? []) as never[];
    return {
      nodes: of('nodes'),
      namespaces: of('namespaces'),
      pods: of('pods'),
      services: of('services'),
      endpointSlices: of('endpointSlices'),
      networkPolicies: of('networkPolicies'),
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
  }

  /** Starts `informer`, again after each error; resolves after its first list. */
  private run(resource: KubeResource, informer: Informer): Promise<void> {
    const first = this.options.retryMs ?? 500;
    const max = this.options.retryMaxMs ?? 30_000;
    let pause = first;
    return new Promise((resolve) => {
      let listed = false;
      // An informer whose list fails reports the error and still resolves start().
      let failed = false;
      informer.on('connect', () => {
        // A connect follows a list or a resumed watch: the informer works again.
        pause = first;
      });
      const restart = (): void => {
        if (this.stopped) return;
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          start();
        }, pause);
        this.timers.add(timer);
        pause = Math.min(pause * 2, max);
      };
      const start = (): void => {
        failed = false;
        void informer.start().then(() => {
          if (failed || listed) return;
          listed = true;
          resolve();
        }, onError);
      };
      const onError = (err: unknown): void => {
        failed = true;
        if (this.stopped) return;
        this.options.log.warn('Kubernetes watch failed; starting it again', { resource, error: describe(err), retryInMs: pause });
        restart();
      };
      informer.on('error', onError);
      start();
    });
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  const code = (err as { code?: number; statusCode?: number })?.statusCode ?? (err as { code?: number })?.code;
  return code ? `HTTP ${code}` : String(err);
}

export interface KubeConfigFlags {
  /** --kubeconfig, as kube components name it; else $KUBECONFIG, else in-cluster, else ~/.kube/config. */
  kubeconfig?: string;
  /** --master: the API server's address, over the kubeconfig's. */
  master?: string;
}

/** The client's config from the flags, as kube-controller-manager and kube-proxy read theirs. */
export function loadKubeConfig(flags: KubeConfigFlags): K8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (flags.kubeconfig) kc.loadFromFile(flags.kubeconfig);
  else kc.loadFromDefault();
  if (flags.master) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('--master: the kubeconfig has no current cluster to point at it');
    kc.clusters = kc.clusters.map((c) => (c.name === cluster.name ? { ...c, server: flags.master! } : c));
  }
  if (!kc.getCurrentCluster()) throw new Error('no Kubernetes API server: give --kubeconfig FILE (or $KUBECONFIG), or run in a pod (in-cluster config)');
  return kc;
}

/** One Node, read once (a node's installer, netcube-k8s cni-config); the error says whether it does not exist. */
export async function readNode(kc: K8s.KubeConfig, name: string): Promise<unknown> {
  try {
    return await kc.makeApiClient(k8s.CoreV1Api).readNode({ name });
  } catch (err) {
    const code = (err as { code?: number }).code;
    throw new Error(code === 404 ? `Node ${name} does not exist` : `Node ${name} could not be read: ${(err as Error).message}`);
  }
}
