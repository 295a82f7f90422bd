// `logs`: the data plane's log lines (nc_log), streamed from the hosts' daemons and
// merged. A daemon buffers lines while nobody listens, so `logs` without -f prints
// what is waiting and returns once the hosts go quiet.

import { LOG_LEVELS } from '@netcube/api/chain';
import { logLevelFromProto, logLevelToProto } from '@netcube/api/grpc/convert';
import type { LogLine } from '@netcube/api/grpc/client';
import { Command, CommandFailed, flag, stringOption, UsageError } from '../command';
import { Connection } from '../daemons';
import { some } from '../output';

/** Without -f: how long the streams must stay quiet before logs returns, at first (connecting) and after a line. */
const FIRST_QUIET_MS = 2_000;
const QUIET_MS = 700;

export const logs: Command = {
  name: 'logs',
  summary: 'print the data-plane log lines of cubes, streamed from their hosts',
  usage: ['logs [-f] [CUBE...] [--level LEVEL] [--host HOST]'],
  description: `
Streams the log lines the cubes' data planes write (nc_log in eBPF) from their
hosts: the hosts of the CUBEs given (per the chains in etcd), or every registered
host. Without -f it prints the lines waiting on the hosts and returns once they go
quiet; with -f it follows until interrupted (Ctrl-C). A cube logs at its logLevel
(set in its chain); --level filters further. -o json prints one JSON object per line.`,
  options: { follow: { type: 'boolean', short: 'f' }, level: { type: 'string' }, host: { type: 'string' } },
  optionHelp: [
    ['-f, --follow', 'keep streaming until interrupted'],
    ['--level LEVEL', `only lines this severe or more: ${LOG_LEVELS.filter(l => l !== 'off').join(', ')}`],
    ['--host HOST', 'only this host'],
  ],
  outputs: ['text', 'json'],
  examples: ['netcubectl logs -f', 'netcubectl logs fwd2 --level debug -f', 'netcubectl logs --host h2 -o json'],
  async run(session, args) {
    const cubes = args.positionals;
    const follow = flag(args, 'follow');
    const levelText = stringOption(args, 'level');
    if (levelText !== undefined && (!(LOG_LEVELS as readonly string[]).includes(levelText) || levelText === 'off')) {
      throw new UsageError(`--level: one of ${LOG_LEVELS.filter(l => l !== 'off').join(', ')}; got ${JSON.stringify(levelText)}`, 'logs');
    }
    const level = levelText ? logLevelToProto(levelText as (typeof LOG_LEVELS)[number]) : undefined;
    const daemons = await session.daemons();
    const only = stringOption(args, 'host');

    let connections: Connection[];
    if (only !== undefined) {
      connections = [await daemons.connect(only)];
    } else if (cubes.length > 0) {
      const byHost = new Map<string, Connection>();
      for (const cube of cubes) {
        const c = await daemons.forCube(cube);
        byHost.set(c.host, c);
      }
      connections = [...byHost.values()];
    } else {
      const hosts = await daemons.hosts();
      if (hosts.length === 0) throw new CommandFailed('no host is registered in etcd: nothing to stream logs from');
      connections = await Promise.all(hosts.map(h => daemons.connect(h.name)));
    }

    const stop = new AbortController();
    session.onInterrupt(() => stop.abort());
    let quiet: NodeJS.Timeout | undefined;
    const idle = (ms = QUIET_MS) => {
      if (follow) return;
      clearTimeout(quiet);
      quiet = setTimeout(() => stop.abort(), ms);
    };
    const print = (host: string, line: LogLine) => {
      const lvl = logLevelFromProto(line.level, 'level') ?? 'info';
      if (session.output === 'json') {
        session.out(`${JSON.stringify({ host, cube: line.cube, cubeId: line.cubeId, level: lvl, message: line.message, timestampNs: line.timestampNs })}\n`);
      } else {
        // The data plane's clock is CLOCK_MONOTONIC: seconds since boot, as dmesg shows them.
        const seconds = (Number(BigInt(line.timestampNs || '0') / 1000n) / 1e6).toFixed(6);
        session.out(`[${seconds.padStart(13)}] ${host} ${line.cube || `#${line.cubeId}`} ${lvl}: ${line.message}\n`);
      }
      idle();
    };

    idle(FIRST_QUIET_MS);
    const failures: string[] = [];
    await Promise.all(
      connections.map(connection =>
        daemons
          .call(connection, async client => {
            for await (const line of client.streamLogs({ cubes, ...(level ? { level } : {}) }, { signal: stop.signal })) print(connection.host, line);
          })
          .catch(err => {
            failures.push((err as Error).message);
            session.note(`warning: ${(err as Error).message}`);
          }),
      ),
    );
    clearTimeout(quiet);
    if (failures.length === connections.length) {
      throw new CommandFailed(`no host streamed its logs (${some(connections.map(c => c.host))})`);
    }
  },
};
