// `table`: a cube's tables (eBPF maps), read and written live on its host. Keys and
// values are JSON that the daemon encodes and decodes through the map's BTF (structs
// as objects, enums by name, char arrays as strings, typed fields as addresses), or
// hex bytes with --raw.

import { isIP } from 'node:net';

import type { Entry } from '@netcube/api/grpc/client';
import type { Entry as EntryRequest } from '@netcube/api/generated/netcube/v1/Entry';
import { Command, flag, positionals, stringOption, UsageError } from '../command';
import { Connection } from '../daemons';
import { plural, table as columns } from '../output';
import { Session } from '../session';

const ACTIONS = ['list', 'dump', 'get', 'put', 'delete'] as const;

export const table: Command = {
  name: 'table',
  summary: 'list, dump, read and write the tables of a cube',
  usage: [
    'table list CUBE',
    'table dump CUBE TABLE [--raw]',
    'table get CUBE TABLE KEY [--raw]',
    'table put CUBE TABLE KEY VALUE [--raw]',
    'table delete CUBE TABLE KEY [--raw]',
  ],
  description: `
Works on the live tables of a cube, on the host that runs it (found through the
chains in etcd, or given with --host). KEY and VALUE are JSON, encoded through the
table's BTF: numbers (or decimal strings for 64 bits), objects for structs, enum
names as strings, strings for char arrays, addresses for the framework's typed
fields (IPv4, IPv6, MAC; a bare address needs no quotes). With --raw they are hex bytes in the
kernel's layout (0a000001, or 0a:00:00:01), and dumps show hex. Table contents are
live state, not desired state: they are not stored in etcd.`,
  options: { raw: { type: 'boolean' }, host: { type: 'string' } },
  optionHelp: [
    ['--raw', 'keys and values as hex bytes instead of JSON'],
    ['--host HOST', 'the host of the cube (default: from the chains in etcd)'],
  ],
  examples: [
    'netcubectl table list ddos2',
    'netcubectl table dump ddos2 blacklist_v4',
    'netcubectl table put ddos2 blacklist_v4 10.0.0.1 0',
    'netcubectl table get ddos2 blacklist_v4 0a000001 --raw',
    'netcubectl table dump fwd1 actions -o json',
  ],
  async run(session, args) {
    const action = args.positionals[0];
    if (action === undefined || !(ACTIONS as readonly string[]).includes(action)) {
      const what = action === undefined ? 'say what to do' : `unknown action ${JSON.stringify(action)}`;
      throw new UsageError(`table: ${what}: ${ACTIONS.join(', ')}`, 'table');
    }
    const raw = flag(args, 'raw');
    const need = { list: ['list', 'CUBE'], dump: ['dump', 'CUBE', 'TABLE'], get: ['get', 'CUBE', 'TABLE', 'KEY'], put: ['put', 'CUBE', 'TABLE', 'KEY', 'VALUE'], delete: ['delete', 'CUBE', 'TABLE', 'KEY'] }[action as (typeof ACTIONS)[number]];
    const [, cube, name, keyText, valueText] = positionals(args, 'table', need);
    if (action === 'list' && raw) throw new UsageError('--raw goes with dump, get, put and delete', 'table');
    const daemons = await session.daemons();
    const host = stringOption(args, 'host');
    const connection = host ? await daemons.connect(host) : await daemons.forCube(cube);
    const call = <T>(fn: (c: Connection['client']) => Promise<T>) => daemons.call(connection, fn);
    const ref = { cube, table: name };

    switch (action) {
      case 'list': {
        const { tables } = await call(client => client.listTables({ cube }));
        session.print(
          tables.map(t => ({ ...t, keyType: parseJsonOr(t.keyTypeJson), valueType: parseJsonOr(t.valueTypeJson), keyTypeJson: undefined, valueTypeJson: undefined })),
          () =>
            tables.length === 0
              ? `cube ${cube} has no tables\n`
              : columns(['NAME', 'SCOPE', 'TYPE', 'KEY', 'VALUE', 'MAX ENTRIES'], tables.map(t => [t.name, t.scope, t.mapType, `${t.keySize} B`, `${t.valueSize} B`, t.maxEntries])),
        );
        return;
      }
      case 'dump': {
        const entries: { key: unknown; value: unknown }[] = [];
        await call(async client => {
          for await (const entry of client.listEntries({ table: ref, raw })) entries.push(decodeEntry(entry));
        });
        printEntries(session, entries);
        return;
      }
      case 'get': {
        const entry = await call(client => client.getEntry({ table: ref, entry: keyOf(keyText, raw) }));
        const { value } = decodeEntry(entry);
        session.print(value, () => `${typeof value === 'string' && raw ? value : JSON.stringify(value)}\n`);
        return;
      }
      case 'put': {
        await call(client => client.putEntry({ table: ref, entry: { ...keyOf(keyText, raw), ...valueOf(valueText, raw) } }));
        if (session.output === 'text') session.out(`${cube} ${name}: put ${keyText}\n`);
        else session.data({ cube, table: name, put: keyText });
        return;
      }
      case 'delete': {
        await call(client => client.deleteEntry({ table: ref, entry: keyOf(keyText, raw) }));
        if (session.output === 'text') session.out(`${cube} ${name}: deleted ${keyText}\n`);
        else session.data({ cube, table: name, deleted: keyText });
        return;
      }
    }
  },
};

function parseJsonOr(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

const MAC_TEXT = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/**
 * JSON given on the command line; the daemon encodes it, but a typo is caught here.
 * A bare address stands for itself as a JSON string (a typed field's key).
 */
function json(text: string, what: string): string {
  if (isIP(text) !== 0 || MAC_TEXT.test(text)) return JSON.stringify(text);
  try {
    JSON.parse(text);
    return text;
  } catch {
    throw new UsageError(`${what} ${JSON.stringify(text)} is not JSON: numbers as they are, strings in quotes ('"eth0"'), structs as objects ('{"port": 1}'); or --raw for hex`, 'table');
  }
}

function hex(text: string, what: string): Buffer {
  const digits = text.replace(/^0x/i, '').replace(/[:\s-]/g, '');
  if (!/^([0-9a-f]{2})+$/i.test(digits)) {
    throw new UsageError(`${what} ${JSON.stringify(text)} is not hex bytes (--raw): write them as 0a000001 or 0a:00:00:01`, 'table');
  }
  return Buffer.from(digits, 'hex');
}

function keyOf(text: string, raw: boolean): EntryRequest {
  return raw ? { keyRaw: hex(text, 'KEY') } : { keyJson: json(text, 'KEY') };
}

function valueOf(text: string, raw: boolean): EntryRequest {
  return raw ? { valueRaw: hex(text, 'VALUE') } : { valueJson: json(text, 'VALUE') };
}

function decodeEntry(entry: Entry): { key: unknown; value: unknown } {
  const key = entry.key === 'keyRaw' ? entry.keyRaw!.toString('hex') : parseJsonOr(entry.keyJson ?? '');
  const value = entry.value === 'valueRaw' ? entry.valueRaw!.toString('hex') : parseJsonOr(entry.valueJson ?? '');
  return { key, value };
}

function printEntries(session: Session, entries: { key: unknown; value: unknown }[]): void {
  const text = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
  session.print(entries, () =>
    entries.length === 0 ? 'no entries\n' : columns(['KEY', 'VALUE'], entries.map(e => [text(e.key), text(e.value)])) + `(${plural(entries.length, 'entry', 'entries')})\n`,
  );
}
