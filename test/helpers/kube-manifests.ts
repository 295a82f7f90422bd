// Kubernetes manifests kept in test/ (YAML as users write them): the objects the
// scripted API server serves and the model's tests start from.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { StoredPodPort } from '@netcube/api/store';
import type { ClusterState } from '@netcube/k8s/model';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [field: string]: unknown };
  [field: string]: unknown;
}

/** The manifests' directory in the source tree (tests run from build/js). */
export const MANIFESTS = join(__dirname, '../../../../test/k8s/manifests');

/** Every object of the files (names relative to MANIFESTS). */
export function loadManifests(...files: string[]): KubeObject[] {
  return files.flatMap((f) =>
    parseAllDocuments(readFileSync(join(MANIFESTS, f), 'utf8')).map((doc, i) => {
      if (doc.errors.length > 0) throw new Error(`${f} document ${i + 1}: ${doc.errors[0].message}`);
      return doc.toJS() as KubeObject;
    }),
  );
}

const KINDS: Record<string, keyof Omit<ClusterState, 'podPorts'>> = {
  Node: 'nodes',
  Pod: 'pods',
  Namespace: 'namespaces',
  Service: 'services',
  EndpointSlice: 'endpointSlices',
  NetworkPolicy: 'networkPolicies',
};

/** The objects as the model's state. */
export function clusterState(objects: readonly KubeObject[], podPorts: StoredPodPort[] = []): ClusterState {
  const state = { nodes: [], pods: [], namespaces: [], services: [], endpointSlices: [], networkPolicies: [], podPorts } as {
    [K in keyof ClusterState]: ClusterState[K] extends readonly (infer T)[] ? T[] : never;
  };
  for (const o of objects) {
    const field = KINDS[o.kind];
    if (!field) throw new Error(`manifest object ${o.kind} ${o.metadata.name}: the model reads no ${o.kind}`);
    (state[field] as unknown[]).push(structuredClone(o));
  }
  return state;
}

/** The pod port a CNI ADD of `pod` records on its node, as netcube-cni makes it. */
export function podPortOf(objects: readonly KubeObject[], namespace: string, name: string, netdev: string, revision: number): StoredPodPort {
  const pod = objects.find((o) => o.kind === 'Pod' && o.metadata.name === name && o.metadata.namespace === namespace) as
    | (KubeObject & { spec: { nodeName: string }; status: { podIP: string } })
    | undefined;
  if (!pod) throw new Error(`no pod ${namespace}/${name} in the manifests`);
  return {
    host: pod.spec.nodeName,
    netdev,
    namespace,
    pod: name,
    containerId: `c-${name}`,
    ifname: 'eth0',
    addresses: [`${pod.status.podIP}/24`],
    mac: '0a:58:00:00:00:01',
    createdAt: '2026-01-01T00:00:00Z',
    revision,
  };
}
