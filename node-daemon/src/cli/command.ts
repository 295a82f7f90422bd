// What every netcubectl command is: its options (parsed by node's util.parseArgs),
// its help with examples, and a run function over a Session. Global options are
// accepted before or after the command.

import { parseArgs, ParseArgsConfig } from 'node:util';
import type { Session } from './session';

export type OptionSpec = { type: 'string' | 'boolean'; short?: string; multiple?: boolean };
export type OptionValues = Record<string, string | boolean | string[] | undefined>;

export interface Args {
  values: OptionValues;
  positionals: string[];
}

export const OUTPUT_FORMATS = ['text', 'json', 'yaml', 'dot'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export interface Command {
  name: string;
  /** One line, for the command list. */
  summary: string;
  /** Synopsis lines without the leading `netcubectl `. */
  usage: string[];
  description: string;
  options: Record<string, OptionSpec>;
  /** [flags as shown, explanation] */
  optionHelp: [string, string][];
  examples: string[];
  /** The -o formats the command prints; default text, json, yaml. */
  outputs?: readonly OutputFormat[];
  /** Resolves to the exit code (default 0). */
  run(session: Session, args: Args): Promise<number | void>;
}

/** Bad command line: exit code 2, with a pointer to the help. */
export class UsageError extends Error {
  override name = 'UsageError';

  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

/** A failure already explained to the user (details printed); exit code 1. */
export class CommandFailed extends Error {
  override name = 'CommandFailed';
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  etcd: { type: 'string' },
  'etcd-user': { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
};

export const GLOBAL_HELP: [string, string][] = [
  ['--etcd URLS', 'etcd endpoints, comma-separated (default: $NETCUBE_ETCD or 127.0.0.1:2379); https://HOST:PORT over TLS'],
  ['--etcd-user NAME', 'etcd user, password in $NETCUBE_ETCD_PASSWORD (default: the CN of --tls-cert)'],
  ['--tls-ca FILE', 'the cluster\'s CA, of etcd and of daemons reached over TCP (default: $NETCUBE_TLS_CA)'],
  ['--tls-cert FILE', 'your certificate (spiffe://netcube/admin or viewer), for etcd and daemons (default: $NETCUBE_TLS_CERT)'],
  ['--tls-key FILE', 'its private key (default: $NETCUBE_TLS_KEY)'],
  ['-o, --output FORMAT', 'text (default), json or yaml'],
  ['-h, --help', 'show help'],
];

/** Global options that take a value, so the command word can be found after them. */
const VALUE_FLAGS = new Set(
  Object.entries(GLOBAL_OPTIONS).flatMap(([name, spec]) =>
    spec.type === 'string' ? [`--${name}`, ...(spec.short ? [`-${spec.short}`] : [])] : [],
  ),
);

/** Splits argv into the command word and the rest (global options may come first). */
export function splitCommand(argv: readonly string[]): { command?: string; rest: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (token === '--') break;
    if (!token.startsWith('-') || token === '-') {
      return { command: token, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] };
    }
    if (VALUE_FLAGS.has(token)) i++;
  }
  return { rest: [...argv] };
}

/** The command's options and the global ones, strictly: an unknown flag is a usage error. */
export function parseCommandArgs(command: Command, argv: string[]): Args {
  const options = { ...GLOBAL_OPTIONS, ...command.options } as ParseArgsConfig['options'];
  try {
    const { values, positionals } = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
    return { values: values as OptionValues, positionals };
  } catch (err) {
    // Node's messages name the flag; drop its own advice, ours follows.
    const message = (err as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(message, command.name);
  }
}

export function helpText(command: Command): string {
  const lines: string[] = [];
  lines.push(`Usage:`);
  for (const u of command.usage) lines.push(`  netcubectl ${u}`);
  lines.push('', command.description.trim(), '');
  if (command.optionHelp.length > 0) {
    lines.push('Options:', ...columns(command.optionHelp), '');
  }
  lines.push('Global options:', ...columns(globalHelp(command)), '');
  if (command.examples.length > 0) {
    lines.push('Examples:', ...command.examples.map(e => (e.startsWith('#') || e === '' ? `  ${e}` : `  $ ${e}`)), '');
  }
  return lines.join('\n');
}

function globalHelp(command: Command): [string, string][] {
  const formats = command.outputs ?? ['text', 'json', 'yaml'];
  return GLOBAL_HELP.map(([flag, text]) =>
    flag.startsWith('-o') ? [flag, `${formats.join(', ')} (default: text)`] : [flag, text],
  );
}

function columns(rows: [string, string][]): string[] {
  const width = Math.max(...rows.map(([flag]) => flag.length));
  return rows.map(([flag, text]) => `  ${flag.padEnd(width)}  ${text}`);
}

// ----------------------------------------------------------------- argument helpers

export function stringOption(args: Args, name: string): string | undefined {
  const value = args.values[name];
  return typeof value === 'string' ? value : undefined;
}

export function requireOption(args: Args, name: string, command: string, hint: string): string {
  const value = stringOption(args, name);
  if (value === undefined || value === '') throw new UsageError(`--${name} is required: ${hint}`, command);
  return value;
}

export function flag(args: Args, name: string): boolean {
  return args.values[name] === true;
}

/** Exactly `names.length` positionals, named in the error when they are not. */
export function positionals(args: Args, command: string, names: string[], optional: string[] = []): string[] {
  const given = args.positionals;
  if (given.length < names.length) {
    throw new UsageError(`missing ${names.slice(given.length).join(' and ')}`, command);
  }
  if (given.length > names.length + optional.length) {
    const extra = given.slice(names.length + optional.length);
    throw new UsageError(`unexpected argument${extra.length > 1 ? 's' : ''} ${extra.map(a => JSON.stringify(a)).join(' ')}`, command);
  }
  return given;
}

/** `90`, `90s`, `500ms`, `2m`, `1h` to milliseconds; bare numbers are seconds. */
export function parseDuration(text: string, option: string, command: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new UsageError(`--${option}: expected a duration such as 30s, 500ms or 2m, got ${JSON.stringify(text)}`, command);
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's']!;
  const ms = Math.round(Number(m[1]) * scale);
  if (ms <= 0) throw new UsageError(`--${option}: must be more than 0, got ${JSON.stringify(text)}`, command);
  return ms;
}

/** A chain version: an integer >= 1. */
export function parseVersion(text: string | undefined, option: string, command: string): number {
  const version = Number(text);
  if (text === undefined || !/^\d+$/.test(text) || !Number.isSafeInteger(version) || version < 1) {
    throw new UsageError(`--${option}: expected a version number (1, 2, ...; see netcubectl history), got ${JSON.stringify(text)}`, command);
  }
  return version;
}
