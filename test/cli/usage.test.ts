// netcubectl's help, usage errors, exit codes, and the progress line of --wait.

import test from 'ava';
import { COMMANDS } from '../../node-daemon/src/cli/commands';
import { ProgressLine } from '../../node-daemon/src/cli/progress';
import { freePorts } from '../helpers/etcd';
import { netcubectl } from './run';

test('every command has help with examples, on stdout, exit 0', async t => {
  for (const command of COMMANDS) {
    for (const flag of ['--help', '-h']) {
      const res = await netcubectl([command.name, flag]);
      t.is(res.code, 0, `${command.name} ${flag}: ${res.stderr}`);
      t.regex(res.stdout, new RegExp(`^Usage:\\n  netcubectl ${command.name}`), command.name);
      t.regex(res.stdout, /\nExamples:\n {2}\$ netcubectl /, command.name);
      t.regex(res.stdout, /--etcd URLS/, command.name);
    }
  }
  const viaHelp = await netcubectl(['help', 'apply']);
  t.is(viaHelp.code, 0);
  t.regex(viaHelp.stdout, /netcubectl apply -f FILE/);
});

test('the overview lists every command; without a command it is a usage error', async t => {
  const help = await netcubectl(['--help']);
  t.is(help.code, 0);
  for (const command of COMMANDS) t.regex(help.stdout, new RegExp(`\\n  ${command.name} +${command.summary.slice(0, 10)}`));
  const bare = await netcubectl([]);
  t.is(bare.code, 2);
  t.regex(bare.stderr, /^Usage: netcubectl COMMAND/);
});

test('unknown commands and flags are usage errors (exit 2) that point at the help', async t => {
  const unknown = await netcubectl(['aply', '-f', 'x']);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /unknown command "aply" \(did you mean apply\?\)/);
  const flag = await netcubectl(['get', 'chains', '--colour']);
  t.is(flag.code, 2);
  t.regex(flag.stderr, /--colour/);
  t.regex(flag.stderr, /see netcubectl get --help/);
  const tls = await netcubectl(['get', 'chains', '--tls-cert', 'c.pem']);
  t.is(tls.code, 2);
  t.regex(tls.stderr, /--tls-cert and --tls-key go together/);
  // Global options work before the command too.
  const before = await netcubectl(['-o', 'yaml', 'get', '--help']);
  t.is(before.code, 0);
});

test('an unreachable etcd is a failure (exit 1) that says how to point netcubectl elsewhere', async t => {
  const [port] = await freePorts(1);
  const res = await netcubectl(['get', 'chains', '--etcd', `127.0.0.1:${port}`], { timeoutMs: 30_000 });
  t.is(res.code, 1);
  t.regex(res.stderr, new RegExp(`etcd is unavailable at 127\\.0\\.0\\.1:${port}`));
  t.regex(res.stderr, /--etcd or \$NETCUBE_ETCD/);
});

test('progress: rewritten in place on a terminal, one line per change otherwise', t => {
  const written: string[] = [];
  const tty = new ProgressLine({ isTTY: true, write: (s: string) => written.push(s) }, 'applied');
  tty.update({ done: 0, total: 3, pending: ['h1/fwd1', 'h2/fwd2', 'h3/fwd3'], failures: [] });
  tty.update({ done: 2, total: 3, pending: ['h2/fwd2'], failures: [] });
  tty.update({ done: 2, total: 3, pending: ['h2/fwd2'], failures: [] });
  tty.update({ done: 2, total: 3, pending: [], failures: [{ host: 'h2', cube: 'fwd2', error: 'boom' }] });
  tty.finish();
  t.deepEqual(written, [
    '\r\x1b[K0/3 cubes applied; waiting for h1/fwd1, h2/fwd2, h3/fwd3',
    '\r\x1b[K2/3 cubes applied; waiting for h2/fwd2',
    '\r\x1b[K2/3 cubes applied; 1 failed (h2/fwd2)',
    '\n',
  ]);

  const lines: string[] = [];
  const plain = new ProgressLine({ write: (s: string) => lines.push(s) }, 'removed');
  plain.update({ done: 1, total: 5, pending: ['a/1', 'b/2', 'c/3', 'd/4'], failures: [] });
  plain.finish();
  t.deepEqual(lines, ['1/5 cubes removed; waiting for a/1, b/2, c/3 and 1 more\n']);
});
