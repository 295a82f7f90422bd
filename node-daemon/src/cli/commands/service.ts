// `config` and `state`: a cube's config and live state through the config API its
// remote service serves (netcube.service.v1.ServiceConfig), whatever the service:
// the firewall's rules with their counters, the NAT table, the load balancer's
// sessions, a bridge's FDB. The service is found from the cube's type: its elected
// leader records where it serves the API in etcd.

import { parse as parseYaml } from 'yaml';
import type { JsonObject } from '@netcube/api/chain';
import { servicePrefix } from '@netcube/api/store';
import { ServiceClient } from '@netcube/sdk/service-client';
import { Command, CommandFailed, flag, positionals, stringOption, UsageError } from '../command';
import { readInput } from '../input';
import { toYaml } from '../output';
import type { Session } from '../session';

/** The leader of the service of `cube`'s type, and a client of its config API. */
async function serviceOf(session: Session, cube: string): Promise<{ type: string; client: ServiceClient }> {
  const store = await session.store();
  const spec = (await store.chains.list()).flatMap((c) => c.chain.spec.cubes).find((c) => c.name === cube);
  if (!spec) throw new CommandFailed(`no chain has a cube named ${cube}`);
  const key = `${servicePrefix(spec.type)}leader`;
  const text = await store.etcdClient.get(key).string();
  if (text === null) throw new CommandFailed(`no ${spec.type} service leads now: start one (netcube-${spec.type} --etcd ... --listen HOST:PORT)`);
  let leader: { replica?: string; endpoint?: string };
  try {
    leader = JSON.parse(text) as typeof leader;
  } catch {
    throw new CommandFailed(`etcd key ${key} does not hold a leader record: ${text.slice(0, 80)}`);
  }
  if (!leader.endpoint) throw new CommandFailed(`the ${spec.type} service's leader (replica ${leader.replica}) serves no config API: start it with --listen HOST:PORT`);
  // A config API on TCP is reached with TLS when netcubectl has TLS files (as daemons are).
  const tls = !leader.endpoint.startsWith('unix:') && session.tls ? { ca: session.tls.ca, cert: session.tls.cert, key: session.tls.key } : undefined;
  return { type: spec.type, client: ServiceClient.connect({ target: leader.endpoint, tls }) };
}

export const config: Command = {
  name: 'config',
  summary: 'show or set a cube\'s config, through its service',
  usage: ['config CUBE', 'config CUBE -f FILE [--dry-run]'],
  description: `
Without -f, shows the cube's config as its service reads it: checked against the
service's schema, every default filled in. With -f, sets it: FILE (YAML or JSON,
- for stdin) is checked by the service, which says which field is wrong and why,
and kept by the service in etcd beside the chain (the chain is not changed: its
params stay what the chain gives, and a new chain version's params replace what
was set here). --dry-run only checks it.`,
  options: { file: { type: 'string', short: 'f' }, 'dry-run': { type: 'boolean' } },
  optionHelp: [
    ['-f, --file FILE', 'the new config, YAML or JSON; - reads it from stdin'],
    ['--dry-run', 'check the config, change nothing'],
  ],
  examples: ['netcubectl config fw1', 'netcubectl config fw1 -o yaml > fw1.yaml && netcubectl config fw1 -f fw1.yaml', 'netcubectl config lb1 -f services.json --dry-run'],
  async run(session, args) {
    const [cube] = positionals(args, 'config', ['CUBE']);
    const file = stringOption(args, 'file');
    if (file === undefined && flag(args, 'dry-run')) throw new UsageError('--dry-run goes with -f FILE', 'config');
    const { client } = await serviceOf(session, cube);
    try {
      if (file === undefined) {
        const res = await client.getConfig(cube);
        session.print(res.config, () => toYaml(res.config));
        return;
      }
      const { text, source } = await readInput(session, file, 'config', 'the config');
      let value: unknown;
      try {
        value = parseYaml(text);
      } catch (err) {
        throw new UsageError(`${source}: not YAML or JSON: ${(err as Error).message}`, 'config');
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UsageError(`${source}: the config is an object (its fields at the top)`, 'config');
      const dryRun = flag(args, 'dry-run');
      const res = await client.setConfig({ cube, config: value as JsonObject, validateOnly: dryRun });
      if (session.output === 'text') {
        session.out(dryRun ? `config of ${cube} is valid (nothing changed)\n` : `config of ${cube} set (revision ${res.revision}; chain ${res.chain} unchanged)\n`);
      } else {
        session.data({ cube, chain: res.chain, revision: res.revision, dryRun, config: res.config });
      }
    } finally {
      client.close();
    }
  },
};

export const state: Command = {
  name: 'state',
  summary: 'show a cube\'s live state, from its service',
  usage: ['state CUBE'],
  description: `
Asks the leader of the cube's service what the cube holds now, as the service
describes it: a firewall's rules with their packet and byte counters, a NAT's
translations and counters, a load balancer's services and sessions, a bridge's
FDB, a router's neighbours. Text output is YAML; -o json for programs.`,
  options: {},
  optionHelp: [],
  examples: ['netcubectl state fw1', 'netcubectl state nat1 -o json | jq .translations', 'netcubectl state lb1'],
  async run(session, args) {
    const [cube] = positionals(args, 'state', ['CUBE']);
    const { client } = await serviceOf(session, cube);
    try {
      const value = await client.getState(cube);
      session.print(value, () => toYaml(value));
    } finally {
      client.close();
    }
  },
};
