// `get`: what etcd holds — chains, hosts, cubes with their status, cube types.

import { formatChain } from '@netcube/api/chain';
import { BrokenRecord, CubeStatusEntry, StoredChain } from '@netcube/api/store';
import { Command, positionals, stringOption, UsageError } from '../command';
import { cite } from '@netcube/api/cite';
import { some, table, when } from '../output';
import { Session } from '../session';
import { cubeState, describeState } from '../status';

const KINDS = ['chains', 'chain', 'hosts', 'cubes', 'types'] as const;

export const get: Command = {
  name: 'get',
  summary: 'list chains, hosts, cubes or cube types, or show one chain',
  usage: ['get chains', 'get chain NAME', 'get hosts', 'get cubes [--chain NAME] [--host HOST]', 'get types'],
  description: `
Reads what the cluster holds in etcd: the chains with their versions and how far
their hosts have applied them, the registered hosts, every cube with the status its
host reported, and the cube types. \`get chain NAME -o yaml\` prints the chain as a
file that \`apply -f\` takes back. What etcd holds that is not what netcube writes
(a chain, type or host record written by other means, or damaged) is listed as
broken, with what is wrong; apply the chain again or delete it to repair it.`,
  options: { chain: { type: 'string' }, host: { type: 'string' } },
  optionHelp: [
    ['--chain NAME', 'get cubes: only the cubes of this chain'],
    ['--host HOST', 'get cubes: only the cubes placed on this host'],
  ],
  examples: [
    'netcubectl get chains',
    'netcubectl get chain demo -o yaml > demo.yaml',
    'netcubectl get cubes --host h2',
    'netcubectl get hosts -o json',
  ],
  async run(session, args) {
    const kind = args.positionals[0];
    if (kind === undefined) throw new UsageError(`what to get: one of ${KINDS.join(', ')}`, 'get');
    if (!(KINDS as readonly string[]).includes(kind)) {
      const hint = kind === 'cube' ? '; to look at one cube: netcubectl describe cube NAME' : kind === 'host' ? '; try get hosts' : '';
      throw new UsageError(`cannot get ${JSON.stringify(kind)}: one of ${KINDS.join(', ')}${hint}`, 'get');
    }
    if (kind !== 'cubes' && (args.values.chain !== undefined || args.values.host !== undefined)) {
      throw new UsageError('--chain and --host filter get cubes only', 'get');
    }
    const store = await session.store();
    switch (kind) {
      case 'chains': {
        positionals(args, 'get', ['chains']);
        const [chains, reports] = await Promise.all([store.chains.listWithBroken(), store.status.listStatus()]);
        printChains(session, chains.values, chains.broken, reports);
        return;
      }
      case 'chain': {
        const [, name] = positionals(args, 'get', ['chain', 'the chain name']);
        const [chain, reports] = await Promise.all([store.chains.get(name), store.status.listStatus(name)]);
        if (session.output === 'json' || session.output === 'yaml') session.out(formatChain(chain.chain, session.output));
        else session.out(describeChain(chain, reports));
        return;
      }
      case 'hosts': {
        positionals(args, 'get', ['hosts']);
        const [{ values: hosts, broken }, reports] = await Promise.all([store.hosts.listHostsWithBroken(), store.status.listStatus()]);
        session.print(
          [...hosts.map(h => ({ ...h, cubes: reports.filter(r => r.host === h.name).length })), ...broken.map(brokenData)],
          () =>
            hosts.length + broken.length === 0
              ? 'no hosts registered: is netcubed running, and pointed at this etcd?\n'
              : table(
                  ['NAME', 'ENDPOINTS', 'KERNEL', 'CUBES', 'STARTED'],
                  [
                    ...hosts.map(h => [h.name, h.endpoints.join(','), h.kernel, reports.filter(r => r.host === h.name).length, when(h.startedAt)]),
                    ...broken.map(b => [cite(b.name), 'BROKEN', '-', '-', '-']),
                  ],
                ) + brokenText('host registration', broken),
        );
        return;
      }
      case 'cubes': {
        positionals(args, 'get', ['cubes']);
        const onlyChain = stringOption(args, 'chain');
        const onlyHost = stringOption(args, 'host');
        const [{ values: chains, broken }, reports] = await Promise.all([store.chains.listWithBroken(), store.status.listStatus()]);
        const unlisted = broken.filter(b => onlyChain === undefined || b.name === onlyChain);
        for (const b of unlisted) session.note(`netcubectl: chain ${cite(b.name)} is broken in etcd, its cubes are not listed: ${b.error}`);
        if (onlyChain !== undefined && !chains.some(c => c.name === onlyChain) && unlisted.length === 0) {
          throw new UsageError(`--chain ${onlyChain}: no such chain (chains: ${chains.map(c => c.name).join(', ') || 'none'})`, 'get');
        }
        const cubes = chains
          .filter(c => onlyChain === undefined || c.name === onlyChain)
          .flatMap(c =>
            c.chain.spec.cubes
              .filter(cube => onlyHost === undefined || cube.host === onlyHost)
              .map(cube => ({ ...cube, chain: c.name, version: c.version, status: cubeState(c, cube.name, reports) })),
          );
        session.print(cubes, () =>
          cubes.length === 0
            ? 'no cubes\n'
            : table(
                ['NAME', 'CHAIN', 'HOST', 'TYPE', 'MODE', 'PORTS', 'STATUS'],
                cubes.map(c => [c.name, `${c.chain} v${c.version}`, c.host, c.type, c.mode, c.ports.join(',') || '-', describeState(c.status)]),
              ),
        );
        return;
      }
      case 'types': {
        positionals(args, 'get', ['types']);
        const { values: types, broken } = await store.types.listTypesWithBroken();
        session.print(
          // The objects are megabytes of ELF: their digest identifies them.
          [...types.map(({ objects, ...t }) => ({ ...t, objectBytes: Object.fromEntries(Object.entries(objects).map(([m, o]) => [m, o?.length])) })), ...broken.map(brokenData)],
          () =>
            types.length + broken.length === 0
              ? 'no cube types registered: a netcubed publishes the built-in ones when it first reaches etcd\n'
              : table(
                  ['NAME', 'KIND', 'MODES', 'PROGRAMS', 'DIGEST', 'REGISTERED'],
                  [
                    ...types.map(t => [t.name, t.transparent ? 'transparent' : 'standard', t.modes.join(','), t.microcubes, t.sha256.slice(0, 12), when(t.registeredAt)]),
                    ...broken.map(b => [cite(b.name), 'BROKEN', '-', '-', '-', '-']),
                  ],
                ) + brokenText('cube type', broken),
        );
        return;
      }
    }
  },
};

/** A broken record as -o json/yaml shows it, beside the good ones. */
function brokenData(b: BrokenRecord): { name: string; broken: string; revision: number } {
  return { name: b.name, broken: b.error, revision: b.revision };
}

/** Below a table: what is wrong with each broken record, and what to do. */
function brokenText(what: string, broken: readonly BrokenRecord[]): string {
  return broken.map(b => `\n${what} ${cite(b.name)} is BROKEN in etcd: ${b.error}\n`).join('');
}

function printChains(session: Session, chains: StoredChain[], broken: BrokenRecord[], reports: CubeStatusEntry[]): void {
  const rows = chains.map(c => {
    const states = c.chain.spec.cubes.map(cube => cubeState(c, cube.name, reports));
    const applied = states.filter(s => s.state === 'applied').length;
    const errors = states.filter(s => s.state === 'error').length;
    const hosts = [...new Set(c.chain.spec.cubes.map(cube => cube.host))];
    return { chain: c, hosts, applied, errors };
  });
  session.print(
    [
      ...rows.map(r => ({
        name: r.chain.name,
        version: r.chain.version,
        revision: r.chain.revision,
        appliedAt: r.chain.appliedAt,
        cubes: r.chain.chain.spec.cubes.length,
        hosts: r.hosts,
        applied: r.applied,
        errors: r.errors,
      })),
      ...broken.map(brokenData),
    ],
    () =>
      rows.length + broken.length === 0
        ? 'no chains: create one with netcubectl apply -f FILE\n'
        : table(
            ['NAME', 'VERSION', 'CUBES', 'HOSTS', 'APPLIED', 'UPDATED'],
            [
              ...rows.map(r => [
                r.chain.name,
                r.chain.version,
                r.chain.chain.spec.cubes.length,
                some(r.hosts),
                `${r.applied}/${r.chain.chain.spec.cubes.length}${r.errors ? ` (${r.errors} failed)` : ''}`,
                when(r.chain.appliedAt),
              ]),
              ...broken.map(b => [cite(b.name), b.version ?? '-', '-', some([...new Set((b.cubes ?? []).map(c => c.host))]) || '-', 'BROKEN', '-']),
            ],
          ) + brokenText('chain', broken),
  );
}

function describeChain(stored: StoredChain, reports: CubeStatusEntry[]): string {
  const { spec } = stored.chain;
  const lines = [
    `Chain:    ${stored.name}`,
    `Version:  ${stored.version} (etcd revision ${stored.revision})`,
    `Applied:  ${when(stored.appliedAt)}`,
    '',
    'Cubes:',
    table(
      ['NAME', 'HOST', 'TYPE', 'MODE', 'PORTS', 'LOG', 'STATUS'],
      spec.cubes.map(c => [c.name, c.host, c.type, c.mode, c.ports.join(',') || '-', c.logLevel, describeState(cubeState(stored, c.name, reports))]),
    ).replace(/^/gm, '  ').trimEnd(),
  ];
  const withParams = spec.cubes.filter(c => Object.keys(c.params).length > 0);
  if (withParams.length > 0) {
    lines.push('', 'Params:', ...withParams.map(c => `  ${c.name}: ${JSON.stringify(c.params)}`));
  }
  if (spec.links.length > 0) {
    lines.push('', 'Links:', ...spec.links.map(l => `  ${l.from} <-> ${l.to}${l.via ? `  (via ${l.via.from} <-> ${l.via.to})` : ''}`));
  }
  if (spec.attachments.length > 0) {
    lines.push('', 'Attachments:', ...spec.attachments.map(a => `  ${a.cube} on ${a.to} (${a.direction})`));
  }
  return lines.join('\n') + '\n';
}
