// deploy/k8s's manifests, read as the API server would take them, against the code
// they run: every netcube command exists and takes the flags the manifest gives it
// (its own parser, with the $(VAR)s the pod's env defines), every mount names a
// volume, every service account exists, and the controller's ClusterRole lets it list
// and watch every resource it follows. No cluster runs here: what can be checked
// without one is checked.

import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { parseCniConfigFlags, parseControllerFlags, parseNodeAgentFlags } from '@netcube/k8s';
import { parseFlags } from '@netcube/sdk/run';
import { parseConfig as parseNetcubedFlags } from '../../node-daemon/src/daemon/config';
import { REPO } from '../cli/run';
import { RESOURCES } from '../helpers/kube-apiserver';

interface Container {
  name: string;
  image: string;
  command: string[];
  env?: { name: string }[];
  volumeMounts?: { name: string; mountPath: string }[];
}

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: {
    template?: { spec: { serviceAccountName?: string; initContainers?: Container[]; containers: Container[]; volumes?: { name: string }[] } };
    volumeClaimTemplates?: { metadata: { name: string } }[];
  };
  rules?: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
}

const DIR = join(REPO, 'deploy/k8s');
const manifests: Manifest[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .flatMap((f) =>
    parseAllDocuments(readFileSync(join(DIR, f), 'utf8')).map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${f}: ${doc.errors[0].message}`);
      return doc.toJS() as Manifest;
    }),
  );

const workloads = manifests.filter((m) => m.spec?.template);

/** Every command the repository's packages put on PATH. */
const BINS = new Set(
  ['package.json', ...readdirSync(join(REPO, 'remote-services')).map((d) => `remote-services/${d}/package.json`)].flatMap((f) => {
    try {
      return Object.keys(JSON.parse(readFileSync(join(REPO, f), 'utf8')).bin ?? {});
    } catch {
      return [];
    }
  }),
);

/** The flag parser of each netcube command (a subcommand as `command sub`). */
const PARSERS: Record<string, (argv: string[]) => unknown> = {
  netcubed: (argv) => parseNetcubedFlags(argv, {}),
  'netcube-k8s': (argv) => parseControllerFlags(argv, {}),
  'netcube-k8s cni-config': (argv) => parseCniConfigFlags(argv, {}),
  'netcube-k8s node': (argv) => parseNodeAgentFlags(argv, {}),
};
const parserOf = (command: string[]): [string, string[]] => {
  if (PARSERS[`${command[0]} ${command[1]}`]) return [`${command[0]} ${command[1]}`, command.slice(2)];
  return [command[0], command.slice(1)];
};

test('the manifests are Kubernetes objects, in netcube-system where namespaced', (t) => {
  t.true(manifests.length >= 10);
  for (const m of manifests) {
    t.truthy(m.apiVersion && m.kind && m.metadata?.name, JSON.stringify(m).slice(0, 80));
    const clusterScoped = ['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(m.kind);
    t.is(m.metadata.namespace, clusterScoped ? undefined : 'netcube-system', `${m.kind} ${m.metadata.name}`);
  }
  t.deepEqual(workloads.map((w) => `${w.kind} ${w.metadata.name}`).sort(), ['DaemonSet netcube-node', 'Deployment netcube-controller', 'StatefulSet netcube-etcd']);
});

test('every netcube command exists and takes the flags it is given; mounts name volumes; $(VAR)s are defined', (t) => {
  let checked = 0;
  for (const w of workloads) {
    const pod = w.spec!.template!.spec;
    const volumes = new Set([...(pod.volumes ?? []).map((v) => v.name), ...(w.spec!.volumeClaimTemplates ?? []).map((v) => v.metadata.name)]);
    if (pod.serviceAccountName) t.true(manifests.some((m) => m.kind === 'ServiceAccount' && m.metadata.name === pod.serviceAccountName), `${w.metadata.name}: service account ${pod.serviceAccountName}`);
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      const at = `${w.metadata.name}/${c.name}`;
      t.is(c.image, 'netcube:dev', at);
      for (const m of c.volumeMounts ?? []) t.true(volumes.has(m.name), `${at}: volume ${m.name}`);
      const env = new Set((c.env ?? []).map((e) => e.name));
      const args = c.command.map((a) =>
        a.replace(/\$\(([A-Z_]+)\)/g, (_, name: string) => {
          t.true(env.has(name), `${at}: $(${name}) is not in its env`);
          return name === 'NODE_IP' ? '10.0.0.1' : `${name.toLowerCase().replace(/_/g, '-')}-1`;
        }),
      );
      if (!args[0].startsWith('netcube')) continue;
      t.true(BINS.has(args[0]), `${at}: ${args[0]} is a command of the repository`);
      const [command, argv] = parserOf(args);
      const parse = PARSERS[command] ?? ((a: string[]) => parseFlags(a, {}));
      t.notThrows(() => t.not(parse(argv), 'help'), `${at}: ${command} ${argv.join(' ')}`);
      checked++;
    }
  }
  t.is(checked, 8, 'netcubed, cni-config, the node agent, netcube-k8s and four services');
});

test('the controller may list and watch everything it follows; a node may read and follow Nodes', (t) => {
  const role = (name: string) => manifests.find((m) => m.kind === 'ClusterRole' && m.metadata.name === name)!.rules!;
  const may = (name: string, group: string, resource: string, verb: string) =>
    role(name).some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));
  for (const r of RESOURCES) {
    const [, group, resource] = /^\/apis?\/(?:(.+)\/)?v1\/(.+)$/.exec(r.path)!;
    const apiGroup = r.path.startsWith('/api/v1') ? '' : group;
    for (const verb of ['list', 'watch']) t.true(may('netcube-controller', apiGroup, resource, verb), `${verb} ${apiGroup || 'core'}/${resource}`);
  }
  for (const verb of ['get', 'list', 'watch']) t.true(may('netcube-node', '', 'nodes', verb), `a node may ${verb} nodes`);
  for (const binding of manifests.filter((m) => m.kind === 'ClusterRoleBinding')) t.truthy(role(binding.metadata.name));
});
