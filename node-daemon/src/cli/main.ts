#!/usr/bin/env node
// netcubectl: the command line of a netcube cluster. A thin layer over @netcube/api
// (proto/src): chains are parsed, validated and diffed by its chain/, stored by its
// store/, and hosts are reached with its typed gRPC client (grpc/client.ts).

import { COMMANDS } from './commands';
import { Command, GLOBAL_HELP, helpText, parseCommandArgs, splitCommand, UsageError } from './command';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, explain } from './errors';
import { Session, Streams } from './session';

function overview(): string {
  const width = Math.max(...COMMANDS.map(c => c.name.length));
  const flagWidth = Math.max(...GLOBAL_HELP.map(([f]) => f.length));
  return [
    'Usage: netcubectl COMMAND [options]',
    '',
    'netcubectl manages a netcube cluster: chains of eBPF network functions (cubes)',
    'across hosts. Desired state lives in etcd; each host runs netcubed.',
    '',
    'Commands:',
    ...COMMANDS.map(c => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Global options:',
    ...GLOBAL_HELP.map(([f, text]) => `  ${f.padEnd(flagWidth)}  ${text}`),
    '',
    'Run netcubectl COMMAND --help for a command\'s options and examples.',
    'Exit codes: 0 ok, 1 failure, 2 usage error.',
    '',
  ].join('\n');
}

function find(name: string): Command {
  const command = COMMANDS.find(c => c.name === name);
  if (!command) {
    const close = COMMANDS.filter(c => c.name.startsWith(name.slice(0, 2))).map(c => c.name);
    const hint = close.length > 0 ? ` (did you mean ${close.join(' or ')}?)` : '';
    throw new UsageError(`unknown command ${JSON.stringify(name)}${hint}; commands: ${COMMANDS.map(c => c.name).join(', ')}`);
  }
  return command;
}

/** Runs one command line; resolves to the exit code. */
export async function run(argv: string[], io: Streams, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let session: Session | undefined;
  const onSignal = () => (session ? session.interrupt() : process.exit(130));
  try {
    const { command: name, rest } = splitCommand(argv);
    if (name === undefined || name === 'help') {
      const topic = name === 'help' ? rest.find(a => !a.startsWith('-')) : undefined;
      const asked = name === 'help' || rest.includes('-h') || rest.includes('--help');
      (asked ? io.stdout : io.stderr).write(topic ? helpText(find(topic)) : overview());
      return asked ? EXIT_OK : EXIT_USAGE;
    }
    const command = find(name);
    const args = parseCommandArgs(command, rest);
    if (args.values.help) {
      io.stdout.write(helpText(command));
      return EXIT_OK;
    }
    session = new Session(args, command.name, command.outputs ?? ['text', 'json', 'yaml'], io, env);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    return (await command.run(session, args)) ?? EXIT_OK;
  } catch (err) {
    const { text, exitCode } = explain(err);
    io.stderr.write(`${text}\n`);
    return exitCode;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await session?.close().catch(() => undefined);
  }
}

/**
 * grpc-js gives TLS the IP address of etcd or of a daemon reached at one as its
 * server name, which Node deprecates (DEP0123): a warning nobody running netcubectl
 * can act on. Every other warning is printed as Node prints it.
 */
function quietServerNameWarning(): void {
  const print = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', w => {
    if ((w as { code?: string }).code !== 'DEP0123') for (const p of print) p(w);
  });
}

if (require.main === module) {
  quietServerNameWarning();
  run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin }).then(
    code => exit(code),
    err => {
      process.stderr.write(`netcubectl: ${(err as Error).stack}\n`);
      exit(EXIT_FAILURE);
    },
  );
}

/** Exits once output is flushed, even if a library left a handle open. */
function exit(code: number): void {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 200).unref();
}
