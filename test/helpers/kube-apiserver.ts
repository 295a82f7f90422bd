// A scripted Kubernetes API server for the controller's tests (no kube-apiserver
// can be installed on these machines): plain HTTP on loopback, the list and watch
// of the resources the controller reads, cluster-wide, with the API's semantics
// where a client can tell:
//   - one resourceVersion counter for every write; each object carries the version
//     of its last write, a list the version it was taken at;
//   - a watch from version V replays every event after V in order, then follows;
//     from 0 or no version it starts with ADDED for every object (as the API's
//     "any" semantics for a watch without a version);
//   - after compact(), a watch from an older version gets the API's answer: one
//     ERROR event with a Status of code 410 (Gone, reason Expired), then the end;
//   - the server may close any watch at any time (closeWatches()), as the API
//     server does when its watch timeout ends; bookmarks are never sent;
//   - a GET of one cluster-scoped object by name (a Node) answers it, or 404.
// Tests drive it: apply() and delete() write objects as the cluster's controllers
// would, every request is counted (requests) so a test can see lists and watches.

import type { ExecutionContext } from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeObject } from './kube-manifests';

interface Resource {
  /** The list's path, cluster-wide. */
  path: string;
  kind: string;
  apiVersion: string;
}

export const RESOURCES: Resource[] = [
  { path: '/api/v1/nodes', kind: 'Node', apiVersion: 'v1' },
  { path: '/api/v1/namespaces', kind: 'Namespace', apiVersion: 'v1' },
  { path: '/api/v1/pods', kind: 'Pod', apiVersion: 'v1' },
  { path: '/api/v1/services', kind: 'Service', apiVersion: 'v1' },
  { path: '/apis/discovery.k8s.io/v1/endpointslices', kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' },
  { path: '/apis/networking.k8s.io/v1/networkpolicies', kind: 'NetworkPolicy', apiVersion: 'networking.k8s.io/v1' },
];

interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KubeObject;
  version: number;
}

interface Watcher {
  kind: string;
  res: ServerResponse;
}

export interface RequestRecord {
  kind: string;
  watch: boolean;
  resourceVersion?: string;
  /** The answer: 200, or 410 as a watch's ERROR event. */
  outcome: 'list' | 'watch' | 'gone';
}

export class KubeApiServer {
  private version = 1;
  /** The oldest version a watch may start after; older ones are Gone. */
  private compacted = 0;
  private readonly objects = new Map<string, KubeObject>();
  private readonly history: WatchEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  readonly requests: RequestRecord[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(objects: readonly KubeObject[] = []): Promise<KubeApiServer> {
    let api!: KubeApiServer;
    const server = createServer((req, res) => api.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const { port } = server.address() as AddressInfo;
    api = new KubeApiServer(server, `http://127.0.0.1:${port}`);
    for (const o of objects) api.apply(o);
    return api;
  }

  /** The current resourceVersion. */
  get resourceVersion(): number {
    return this.version;
  }

  /** Creates or replaces an object (ADDED or MODIFIED); returns it as stored. */
  apply(object: KubeObject): KubeObject {
    if (!RESOURCES.some((r) => r.kind === object.kind)) throw new Error(`the scripted API server serves no ${object.kind}`);
    const key = keyOf(object);
    const type = this.objects.has(key) ? 'MODIFIED' : 'ADDED';
    const stored = structuredClone(object);
    this.version++;
    stored.metadata = { ...stored.metadata, resourceVersion: String(this.version), uid: (this.objects.get(key)?.metadata.uid as string) ?? `uid-${this.version}` };
    this.objects.set(key, stored);
    this.emit({ type, object: stored, version: this.version });
    return stored;
  }

  /** Deletes an object (DELETED, carrying the object at the deletion's version). */
  delete(kind: string, name: string, namespace?: string): void {
    const key = keyOf({ kind, metadata: { name, namespace } } as KubeObject);
    const existing = this.objects.get(key);
    if (!existing) throw new Error(`no ${kind} ${namespace ? `${namespace}/` : ''}${name} to delete`);
    this.objects.delete(key);
    this.version++;
    const object = { ...structuredClone(existing), metadata: { ...existing.metadata, resourceVersion: String(this.version) } };
    this.emit({ type: 'DELETED', object, version: this.version });
  }

  get(kind: string, name: string, namespace?: string): KubeObject | undefined {
    return this.objects.get(keyOf({ kind, metadata: { name, namespace } } as KubeObject));
  }

  /** Forgets the event history up to now: a watch from an older version is Gone (410). */
  compact(): void {
    this.compacted = this.version;
    this.history.length = 0;
  }

  /** Ends every open watch, as the API server does when a watch's timeout runs out. */
  closeWatches(): number {
    const n = this.watchers.size;
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
    return n;
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  async stop(): Promise<void> {
    this.closeWatches();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private emit(event: WatchEvent): void {
    this.history.push(event);
    for (const w of this.watchers) if (w.kind === event.object.kind) send(w.res, event);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    const resource = RESOURCES.find((r) => r.path === url.pathname);
    // One cluster-scoped object by name (a Node: a node's installer reads its own).
    const one = req.method === 'GET' && !resource ? RESOURCES.find((r) => url.pathname.startsWith(`${r.path}/`) && !url.pathname.slice(r.path.length + 1).includes('/')) : undefined;
    if (one) {
      const name = url.pathname.slice(one.path.length + 1);
      const object = this.objects.get(keyOf({ kind: one.kind, apiVersion: one.apiVersion, metadata: { name } }));
      res.writeHead(object ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify(object ?? status(404, 'NotFound', `${one.path.split('/').pop()} "${name}" not found`)));
      return;
    }
    if (req.method !== 'GET' || !resource) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify(status(404, 'NotFound', `the server could not find the requested resource (${req.method} ${url.pathname})`)));
      return;
    }
    const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    const from = url.searchParams.get('resourceVersion') ?? undefined;
    if (!watch) {
      this.requests.push({ kind: resource.kind, watch, resourceVersion: from, outcome: 'list' });
      const items = [...this.objects.values()].filter((o) => o.kind === resource.kind).sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: `${resource.kind}List`, apiVersion: resource.apiVersion, metadata: { resourceVersion: String(this.version) }, items }));
      return;
    }
    const since = from === undefined || from === '' || from === '0' ? undefined : Number(from);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    // A watch with nothing to replay still answers at once, as the API server does.
    res.flushHeaders();
    if (since !== undefined && (!Number.isInteger(since) || since < this.compacted)) {
      this.requests.push({ kind: resource.kind, watch, resourceVersion: from, outcome: 'gone' });
      res.end(`${JSON.stringify({ type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${from} (${this.compacted})`) })}\n`);
      return;
    }
    this.requests.push({ kind: resource.kind, watch, resourceVersion: from, outcome: 'watch' });
    if (since === undefined) {
      for (const o of this.objects.values()) if (o.kind === resource.kind) send(res, { type: 'ADDED', object: o, version: Number(o.metadata.resourceVersion) });
    } else {
      for (const e of this.history) if (e.version > since && e.object.kind === resource.kind) send(res, e);
    }
    const watcher: Watcher = { kind: resource.kind, res };
    this.watchers.add(watcher);
    res.on('close', () => this.watchers.delete(watcher));
  }
}

function send(res: ServerResponse, e: WatchEvent): void {
  res.write(`${JSON.stringify({ type: e.type, object: e.object })}\n`);
}

function status(code: number, reason: string, message: string): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

function keyOf(o: KubeObject): string {
  return `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

/** A kubeconfig file as a user would have it, removed in the test's teardown; `--master` (api.url) points it at the scripted server. */
export function kubeconfig(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), `nct-kube-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'kubeconfig');
  writeFileSync(
    file,
    [
      'apiVersion: v1',
      'kind: Config',
      // The scripted server speaks plain HTTP, which client-node allows only so.
      'clusters: [{ name: scripted, cluster: { server: "http://127.0.0.1:1", insecure-skip-tls-verify: true } }]',
      'users: [{ name: controller, user: { token: test } }]',
      'contexts: [{ name: scripted, context: { cluster: scripted, user: controller } }]',
      'current-context: scripted',
      '',
    ].join('\n'),
  );
  return file;
}
