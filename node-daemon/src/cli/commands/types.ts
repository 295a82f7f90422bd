// `types`: registering cube types from their compiled ELF objects, for the whole
// cluster: a daemon inspects the objects (a dry run: it stores nothing), then
// netcubectl stores the type in etcd as its own etcd user (the admin), which hosts
// may not (@netcube/api's store/access.ts).

import { readFileSync } from 'node:fs';
import { modeFromProto } from '@netcube/api/grpc/convert';
import { tableFacts } from '@netcube/api/chain';
import type { CubeType } from '@netcube/api/grpc/client';
import { Command, CommandFailed, positionals, stringOption, UsageError } from '../command';
import { DaemonCallError } from '../daemons';

function readObject(file: string, flagName: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`${flagName} ${file}: cannot read it (${code === 'ENOENT' ? 'no such file' : (err as Error).message})`, 'types');
  }
}

function typeView(t: CubeType) {
  return {
    name: t.name,
    builtin: t.builtin,
    transparent: t.transparent,
    modes: t.modes.map(m => modeFromProto(m, 'modes')),
    microcubes: t.microcubes,
    tables: t.tables.map(({ name, scope, mapType, keySize, valueSize, maxEntries }) => ({ name, scope, mapType, keySize, valueSize, maxEntries })),
    digest: t.digest,
  };
}

export const types: Command = {
  name: 'types',
  summary: 'register or unregister a cube type from its compiled objects',
  usage: ['types register NAME [--xdp FILE] [--tc FILE] [--host HOST]', 'types unregister NAME [--host HOST]'],
  description: `
Registers a cube type for the whole cluster from its ELF objects, built with
<netcube/netcube.h> once per hook (clang -target bpf -DNC_HOOK_XDP / -DNC_HOOK_TC).
A daemon checks the objects (programs, framework maps, kind), then netcubectl
stores the type in etcd (as your etcd user: the admin's); every host loads it when
a chain places a cube of it. The same objects again change nothing; other objects
under a registered name are refused (unregister first). unregister refuses while a
chain uses the type, and for the built-in types.
\`netcubectl get types\` lists the types.`,
  options: { xdp: { type: 'string' }, tc: { type: 'string' }, host: { type: 'string' } },
  optionHelp: [
    ['--xdp FILE', 'the object for XDP mode'],
    ['--tc FILE', 'the object for TC mode (at least one of the two)'],
    ['--host HOST', 'the daemon that checks the objects (default: one on this machine, or the first registered)'],
  ],
  examples: [
    'netcubectl types register counter --xdp build/counter.xdp.o --tc build/counter.tc.o',
    'netcubectl types unregister counter',
  ],
  async run(session, args) {
    const action = args.positionals[0];
    if (action !== 'register' && action !== 'unregister') {
      throw new UsageError(`types: ${action === undefined ? 'say what to do' : `unknown action ${JSON.stringify(action)}`}: register or unregister (get types lists them)`, 'types');
    }
    const [, name] = positionals(args, 'types', [action, 'the type name']);
    const xdp = stringOption(args, 'xdp');
    const tc = stringOption(args, 'tc');
    if (action === 'register' && xdp === undefined && tc === undefined) {
      throw new UsageError('types register needs the objects: --xdp FILE and/or --tc FILE', 'types');
    }
    if (action === 'unregister' && (xdp !== undefined || tc !== undefined)) {
      throw new UsageError('--xdp and --tc go with types register', 'types');
    }
    const objects = {
      ...(xdp !== undefined ? { xdpObject: readObject(xdp, '--xdp') } : {}),
      ...(tc !== undefined ? { tcObject: readObject(tc, '--tc') } : {}),
    };
    const daemons = await session.daemons();
    const host = stringOption(args, 'host');
    const connection = host ? await daemons.connect(host) : await daemons.any();
    const store = await session.store();
    if (action === 'register') {
      const type = typeView(await daemons.call(connection, client => client.registerType({ name, ...objects, dryRun: true })));
      const stored = { xdp: objects.xdpObject, tc: objects.tcObject };
      await store.types.putType({ name, transparent: type.transparent, microcubes: Math.max(...type.microcubes) + 1, modes: type.modes, tables: type.tables.map(tableFacts), objects: stored }, { replace: false });
      session.print(type, () => {
        const tables = type.tables.length ? type.tables.map(t => `${t.name} (${t.scope})`).join(', ') : 'none';
        return `cube type ${type.name} registered: ${type.transparent ? 'transparent' : 'standard'}, modes ${type.modes.join(', ')}, ` +
          `micro-cubes ${type.microcubes.join(', ')}, tables ${tables}\n`;
      });
    } else {
      const known = await daemons.call(connection, client => client.getType({ name })).catch(err => {
        // A host knows an uploaded type once a chain of its has placed a cube of it there.
        if (err instanceof DaemonCallError && err.cause.codeName === 'NOT_FOUND') return undefined;
        throw err;
      });
      if (known?.builtin) throw new CommandFailed(`cube type ${name} is built in and cannot be unregistered`);
      await store.types.deleteType(name);
      session.print({ name, unregistered: true }, () => `cube type ${name} unregistered\n`);
    }
  },
};
