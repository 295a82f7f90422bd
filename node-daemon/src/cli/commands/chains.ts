// The chain commands: apply, delete, diff, history, rollback. Parsing, validation
// and diffs are the chain module's; versions and history are the store's.

import { Chain, ChainChange, diffChains, parseChain } from '@netcube/api/chain';
import { ChainHistoryEntry, CorruptValueError, NotFoundError } from '@netcube/api/store';
import {
  Command,
  CommandFailed,
  flag,
  parseVersion,
  positionals,
  requireOption,
  stringOption,
  UsageError,
} from '../command';
import { readInput } from '../input';
import { plural, table, when } from '../output';
import { Session } from '../session';
import { reportWait, WAIT_HELP, WAIT_OPTIONS, waitApplied, WaitOutcome, waitRemoved, waitTimeout } from '../wait';

/** Reads and parses -f FILE (`-` is stdin); problems come back located in the file. */
async function readChainFile(session: Session, file: string, command: string): Promise<Chain> {
  const { text, source } = await readInput(session, file, command, 'the chain');
  return parseChain(text, source);
}

/** --wait after apply or rollback: progress, then the outcome in words. */
async function waitEverywhere(session: Session, name: string, version: number, timeoutMs: number): Promise<WaitOutcome> {
  const outcome = await waitApplied(session, name, version, timeoutMs);
  if (outcome.converged && session.output === 'text') {
    session.out(`chain ${name} version ${version} is applied on every host (${plural(outcome.total, 'cube')})\n`);
  }
  return outcome;
}

function waitSummary(outcome: WaitOutcome | undefined): unknown {
  if (!outcome) return undefined;
  const { converged, done, total, pending, failures } = outcome;
  return { converged, done, total, pending, failures };
}

export const apply: Command = {
  name: 'apply',
  summary: 'create or update a chain from a YAML or JSON file',
  usage: ['apply -f FILE [--wait [--timeout DURATION]]'],
  description: `
Validates the chain in FILE against the cluster (its cube types, the other chains)
and stores it in etcd as a new version; each host then applies its own part. A file
identical in meaning to the current version changes nothing. Problems are listed as
file:line:column path: message. With --wait, netcubectl waits until every host has
applied the new version, and exits 1 if one reports an error or time runs out.`,
  options: { file: { type: 'string', short: 'f' }, ...WAIT_OPTIONS },
  optionHelp: [['-f, --file FILE', 'the chain, YAML or JSON; - reads it from stdin'], ...WAIT_HELP],
  examples: [
    'netcubectl apply -f deploy/examples/demo-chain.yaml --wait',
    'netcubectl get chain demo -o yaml | sed s/info/debug/ | netcubectl apply -f -',
  ],
  async run(session, args) {
    positionals(args, 'apply', []);
    const file = requireOption(args, 'file', 'apply', 'the chain to apply, e.g. -f chain.yaml (- for stdin)');
    const timeoutMs = waitTimeout(args, 'apply');
    const chain = await readChainFile(session, file, 'apply');
    const store = await session.store();
    const name = chain.metadata.name;
    const result = await store.chains.apply(chain);
    if (session.output === 'text') {
      session.out(result.unchanged ? `chain ${name} unchanged (version ${result.version})\n` : `chain ${name} applied as version ${result.version}\n`);
    }
    const outcome = flag(args, 'wait') ? await waitEverywhere(session, name, result.version, timeoutMs) : undefined;
    session.data({ chain: name, ...result, wait: waitSummary(outcome) });
    if (outcome) reportWait(outcome, `chain ${name} version ${result.version}`);
  },
};

export const del: Command = {
  name: 'delete',
  summary: 'delete a chain',
  usage: ['delete chain NAME [--wait [--timeout DURATION]]'],
  description: `
Deletes the chain from etcd; each host removes its cubes. The deletion is a version
in the chain's history: \`netcubectl rollback NAME --to V\` brings it back. With
--wait, netcubectl waits until every host has removed the chain's cubes.`,
  options: { ...WAIT_OPTIONS },
  optionHelp: [...WAIT_HELP],
  examples: ['netcubectl delete chain demo --wait'],
  async run(session, args) {
    const [kind, name] = positionals(args, 'delete', ['what (chain)', 'the chain name']);
    if (kind !== 'chain') throw new UsageError(`delete ${kind}: only chains are deleted here (delete chain NAME); cube types: netcubectl types unregister`, 'delete');
    const timeoutMs = waitTimeout(args, 'delete');
    const store = await session.store();
    const current = await store.chains.get(name);
    const result = await store.chains.delete(name, { expectedVersion: current.version });
    if (session.output === 'text') session.out(`chain ${name} deleted (version ${result.version}; roll back to ${current.version} to restore it)\n`);
    const outcome = flag(args, 'wait') ? await waitRemoved(session, current.chain, timeoutMs) : undefined;
    if (outcome?.converged && session.output === 'text') session.out(`chain ${name} is removed from every host\n`);
    session.data({ chain: name, ...result, wait: waitSummary(outcome) });
    if (outcome) reportWait(outcome, `deletion of chain ${name}`);
  },
};

function printChanges(session: Session, changes: ChainChange[], what: string): void {
  session.print(changes, () => (changes.length === 0 ? `no changes: ${what}\n` : changes.map(c => `${c.text}\n`).join('')));
}

/** The chain a history entry holds; undefined for a deletion. */
const chainOf = (entry: ChainHistoryEntry): Chain | undefined => (entry.action === 'apply' ? entry.chain : undefined);

export const diff: Command = {
  name: 'diff',
  summary: 'show what applying a file would change, or what changed between versions',
  usage: ['diff -f FILE', 'diff NAME --from VERSION [--to VERSION]'],
  description: `
With -f, compares the chain in FILE with the version applied now (or with nothing,
for a new chain). With NAME, compares two versions from the chain's history; --to
defaults to the current version. Compares meaning, not text: the order of cubes and
links does not matter, the order of a transparent stack does. Lines start with
+ (added), - (removed) or ~ (changed).`,
  options: { file: { type: 'string', short: 'f' }, from: { type: 'string' }, to: { type: 'string' } },
  optionHelp: [
    ['-f, --file FILE', 'the chain to compare with what is applied; - reads stdin'],
    ['--from VERSION', 'the older version of chain NAME'],
    ['--to VERSION', 'the newer version (default: the current one)'],
  ],
  examples: ['netcubectl diff -f demo-chain.yaml', 'netcubectl diff demo --from 1', 'netcubectl diff demo --from 2 --to 3 -o json'],
  async run(session, args) {
    const file = stringOption(args, 'file');
    if (file !== undefined) {
      positionals(args, 'diff', []);
      if (args.values.from !== undefined || args.values.to !== undefined) {
        throw new UsageError('-f compares a file with what is applied; --from and --to compare versions of a chain: use one or the other', 'diff');
      }
      const chain = await readChainFile(session, file, 'diff');
      const store = await session.store();
      const current = await store.chains.get(chain.metadata.name).catch(err => {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      });
      printChanges(session, diffChains(current?.chain, chain), `${file} is what is applied (version ${current?.version})`);
      return;
    }
    const [name] = positionals(args, 'diff', ['a chain name, or -f FILE']);
    const from = parseVersion(stringOption(args, 'from'), 'from', 'diff');
    const store = await session.store();
    const older = await store.chains.getVersion(name, from);
    let newer: Chain | undefined;
    let to: number;
    if (args.values.to !== undefined) {
      to = parseVersion(stringOption(args, 'to'), 'to', 'diff');
      newer = chainOf(await store.chains.getVersion(name, to));
    } else {
      const current = await store.chains.get(name).catch(err => {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      });
      if (!current) throw new CommandFailed(`chain ${name} does not exist now: give --to VERSION (see netcubectl history ${name})`);
      to = current.version;
      newer = current.chain;
    }
    printChanges(session, diffChains(chainOf(older), newer), `versions ${from} and ${to} of chain ${name} mean the same`);
  },
};

export const history: Command = {
  name: 'history',
  summary: 'list the versions of a chain',
  usage: ['history NAME'],
  description: `
Every version of the chain: each apply, rollback and deletion, oldest first, with
what it changed from the version before it. The current version is marked *.`,
  options: {},
  optionHelp: [],
  examples: ['netcubectl history demo', 'netcubectl history demo -o yaml'],
  async run(session, args) {
    const [name] = positionals(args, 'history', ['the chain name']);
    const store = await session.store();
    const { values: entries, broken } = await store.chains.historyWithBroken(name);
    const current = await store.chains.get(name).catch(err => {
      if (err instanceof NotFoundError || err instanceof CorruptValueError) return undefined;
      throw err;
    });
    let before: Chain | undefined;
    const rows = entries.map(entry => {
      const after = chainOf(entry);
      const changes = diffChains(before, after);
      before = after;
      return { entry, changes };
    });
    // An entry that cannot be read is shown where it stands, with what is wrong.
    const byVersion = (a: { version?: number }, b: { version?: number }) => (a.version ?? 0) - (b.version ?? 0);
    session.print(
      [
        ...rows.map(({ entry, changes }) => ({ ...entry, current: entry.version === current?.version, changes: changes.map(c => c.text) })),
        ...broken.map(b => ({ version: b.version, broken: b.error, revision: b.revision })),
      ].sort(byVersion),
      () =>
        table(
          ['VERSION', 'ACTION', 'AT', 'CHANGES'],
          [
            ...rows.map(({ entry, changes }) => ({
              version: entry.version,
              row: [
                `${entry.version}${entry.version === current?.version ? ' *' : ''}`,
                entry.action === 'delete' ? 'delete' : entry.rollbackOf ? `rollback to ${entry.rollbackOf}` : 'apply',
                when(entry.at),
                summarize(changes),
              ],
            })),
            ...broken.map(b => ({ version: b.version, row: [String(b.version ?? '?'), 'BROKEN', '-', b.error] })),
          ]
            .sort(byVersion)
            .map(r => r.row),
        ),
    );
  },
};

/** `+2 cubes, ~1 link` */
function summarize(changes: ChainChange[]): string {
  const chain = changes.find(c => c.kind === 'chain');
  if (chain?.op === 'removed') return 'chain deleted';
  const sign = { added: '+', removed: '-', changed: '~' } as const;
  const counts = new Map<string, { sign: string; kind: string; n: number }>();
  for (const c of changes) {
    if (c.kind === 'chain') continue;
    const key = `${c.op} ${c.kind}`;
    const count = counts.get(key) ?? { sign: sign[c.op], kind: c.kind, n: 0 };
    count.n++;
    counts.set(key, count);
  }
  const text = [...counts.values()].map(c => `${c.sign}${plural(c.n, c.kind)}`).join(', ') || 'no change';
  return chain?.op === 'added' ? `created: ${text}` : text;
}

export const rollback: Command = {
  name: 'rollback',
  summary: 'apply an earlier version of a chain again',
  usage: ['rollback NAME --to VERSION [--wait [--timeout DURATION]]'],
  description: `
Applies the spec of an earlier version as a new version (history is never
rewritten), also to bring back a deleted chain. It is validated against the
cluster as it is now.`,
  options: { to: { type: 'string' }, ...WAIT_OPTIONS },
  optionHelp: [['--to VERSION', 'the version to go back to (see netcubectl history NAME)'], ...WAIT_HELP],
  examples: ['netcubectl history demo', 'netcubectl rollback demo --to 2 --wait'],
  async run(session, args) {
    const [name] = positionals(args, 'rollback', ['the chain name']);
    const to = parseVersion(requireOption(args, 'to', 'rollback', 'the version to roll back to (see netcubectl history)'), 'to', 'rollback');
    const timeoutMs = waitTimeout(args, 'rollback');
    const store = await session.store();
    const result = await store.chains.rollback(name, to);
    if (session.output === 'text') {
      session.out(
        result.unchanged
          ? `chain ${name} is already as version ${to} (version ${result.version}); nothing changed\n`
          : `chain ${name} rolled back to version ${to} as version ${result.version}\n`,
      );
    }
    const outcome = flag(args, 'wait') ? await waitEverywhere(session, name, result.version, timeoutMs) : undefined;
    session.data({ chain: name, rolledBackTo: to, ...result, wait: waitSummary(outcome) });
    if (outcome) reportWait(outcome, `chain ${name} version ${result.version}`);
  },
};
