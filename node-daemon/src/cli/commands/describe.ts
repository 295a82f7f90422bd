// `describe`: one cube or one host as its daemon sees it now — ports, peers,
// per-port counters, stacking — with the status its host reported to etcd.

import { Command, positionals, stringOption, UsageError } from '../command';
import { table, when } from '../output';
import { cubeState, describeState } from '../status';
import { cubeView } from '../wire';

export const describe: Command = {
  name: 'describe',
  summary: 'show a cube (ports, peers, counters, status) or a host, from its daemon',
  usage: ['describe cube NAME [--host HOST]', 'describe host NAME'],
  description: `
Asks the daemon of the cube's host (found through the chains in etcd, or given
with --host) what it runs: the cube's ports with their peers and packet counters,
where a transparent cube is stacked, its micro-cubes, and the status the host
reported for it. \`describe host\` shows a daemon's version, kernel features,
data-plane error counters and whether it reaches etcd.`,
  options: { host: { type: 'string' } },
  optionHelp: [['--host HOST', 'ask this host (default: the host the chains place the cube on)']],
  examples: ['netcubectl describe cube fwd2', 'netcubectl describe cube fwd2 -o json | jq .ports', 'netcubectl describe host h2'],
  async run(session, args) {
    const [kind, name] = positionals(args, 'describe', ['what (cube or host)', 'its name']);
    const daemons = await session.daemons();
    if (kind === 'host') {
      if (args.values.host !== undefined) throw new UsageError('--host goes with describe cube; describe host takes the host name', 'describe');
      const connection = await daemons.connect(name);
      const host = await daemons.call(connection, client => client.getHost());
      session.print({ ...host, endpoint: connection.endpoint }, () => {
        const features = Object.entries(host.features ?? {}).filter(([, on]) => on).map(([f]) => f);
        const errors = Object.entries(host.errors).filter(([, n]) => n !== '0');
        return [
          `Host:       ${host.name}`,
          `Reached at: ${connection.endpoint}`,
          `Endpoints:  ${host.endpoints.join(', ')}`,
          `netcubed:   ${host.version}`,
          `Kernel:     ${host.kernel} (${features.join(', ')})`,
          `etcd:       ${host.storeConnected ? 'connected' : 'NOT CONNECTED: serving from pinned state'}`,
          `Applied:    up to etcd revision ${host.appliedRevision}`,
          `Errors:     ${errors.length ? errors.map(([cause, n]) => `${cause} ${n}`).join(', ') : 'none'}`,
          '',
        ].join('\n');
      });
      return;
    }
    if (kind !== 'cube') throw new UsageError(`describe ${kind}: describe a cube or a host`, 'describe');

    const explicit = stringOption(args, 'host');
    const chains = await daemons.allChains();
    const connection = explicit ? await daemons.connect(explicit) : await daemons.forCube(name);
    const cube = cubeView(await daemons.call(connection, client => client.getCube({ name })));
    const stored = chains.find(c => c.name === cube.chain);
    const reports = stored ? await (await session.store()).status.listStatus(stored.name) : [];
    const status = stored ? cubeState(stored, name, reports) : undefined;
    session.print({ host: connection.host, ...cube, status }, () => {
      const lines = [
        `Cube:       ${cube.name}`,
        `Host:       ${connection.host}`,
        `Chain:      ${cube.chain || '-'}${stored ? ` (version ${stored.version})` : ''}`,
        `Type:       ${cube.type} (${cube.transparent ? 'transparent' : 'standard'}, ${cube.mode} mode)`,
        `Log level:  ${cube.logLevel}`,
        `Status:     ${status ? `${describeState(status)}${status.updatedAt ? `, reported ${when(status.updatedAt)}` : ''}` : '-'}`,
        `Data plane: id ${cube.id}, micro-cubes ${cube.microcubes.join(', ')}` +
          (Object.keys(cube.replacedMicrocubes).length ? ` (replaced: ${Object.keys(cube.replacedMicrocubes).join(', ')})` : ''),
      ];
      if (Object.keys(cube.params).length > 0) lines.push(`Params:     ${JSON.stringify(cube.params)}`);
      const sizes = Object.entries(cube.tableSizes);
      if (sizes.length > 0) lines.push(`Tables:     sized by its chain: ${sizes.map(([table, n]) => `${table} ${n}`).join(', ')}`);
      if (cube.attachment) {
        lines.push(`Stacked on: ${cube.attachment.target}, ${cube.attachment.direction}, layer ${cube.attachment.position} (0 is outermost)`);
      }
      if (cube.ports.length > 0) {
        lines.push(
          '',
          'Ports:',
          table(
            ['NAME', 'INDEX', 'PEER', 'RX PACKETS', 'RX BYTES', 'TX PACKETS', 'TX BYTES', 'DROPS', 'TO CONTROLLER'],
            cube.ports.map(p => [p.name, p.index, p.peer, p.stats?.rxPackets ?? '-', p.stats?.rxBytes ?? '-', p.stats?.txPackets ?? '-', p.stats?.txBytes ?? '-', p.stats?.drops ?? '-', p.stats?.toController ?? '-']),
          ).replace(/^/gm, '  ').trimEnd(),
        );
      }
      return lines.join('\n') + '\n';
    });
  },
};
