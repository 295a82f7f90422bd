// Running the real netcubectl (the built main.js, as a user would) against a test's
// etcd, and the fixtures the CLI tests share.

import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ExecutionContext } from 'ava';
import { Store } from '@netcube/api/store';
import { hostCheck } from '../../node-daemon/src/chain';
import { withoutAddon } from '../helpers/native';

export const NETCUBECTL = resolve(__dirname, '../../node-daemon/src/cli/main.js');
export const REPO = resolve(__dirname, '../../../..');

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** etcd endpoints, passed as $NETCUBE_ETCD. */
  etcd?: string[];
  input?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Called with the child once it runs, e.g. to signal it. */
  spawned?: (child: ChildProcess) => void;
  /** As on a machine without the native addon (test/helpers/native.ts). */
  withoutAddon?: boolean;
}

export function netcubectl(args: string[], options: RunOptions = {}): Promise<Result> {
  return new Promise((resolvePromise, reject) => {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, ...options.env };
    if (options.etcd) env.NETCUBE_ETCD = options.etcd.join(',');
    const command = [process.execPath, NETCUBECTL, ...args];
    const [file, ...argv] = options.withoutAddon ? withoutAddon(command) : command;
    const child = spawn(file, argv, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', chunk => (stdout += chunk));
    child.stderr.on('data', chunk => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', code => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
    options.spawned?.(child);
  });
}

/** A scratch directory for chain files, removed in teardown. */
export function scratch(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'nct-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function writeFile(dir: string, name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

export async function connectStore(t: ExecutionContext, endpoints: string[]): Promise<Store> {
  const store = await Store.connect({ endpoints, hostCheck });
  t.teardown(() => store.close());
  return store;
}

/** Enough of an ELF object for the registry: its magic and a tag. */
function elf(tag: string): Buffer {
  return Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.from(tag)]);
}

/** The two built-in types the example chains use, as a netcubed would publish them. */
export async function registerTypes(store: Store): Promise<void> {
  for (const [name, transparent] of [['nop', false], ['ddosmitigator', true]] as const) {
    await store.types.putType({ name, transparent, microcubes: 1, modes: ['xdp', 'tc'], objects: { xdp: elf(`${name}.xdp`), tc: elf(`${name}.tc`) } });
  }
}

/** A chain of two nops on two hosts, in YAML as a user writes it. */
export function twoHostChain(options: { name?: string; hosts?: [string, string]; logLevel?: string; prefix?: string } = {}): string {
  const [a, b] = options.hosts ?? ['host1', 'host2'];
  const p = options.prefix ?? 'fwd';
  return `apiVersion: netcube/v1
kind: Chain
metadata:
  name: ${options.name ?? 'demo'}
spec:
  cubes:
    - name: ${p}1
      host: ${a}
      type: nop
      mode: tc
      ports: [left, right]
      logLevel: ${options.logLevel ?? 'info'}
    - name: ${p}2
      host: ${b}
      type: nop
      mode: tc
      ports: [left, right]
  links:
    - from: netdev:left
      to: ${p}1:left
    - from: ${p}1:right
      to: ${p}2:left
      via: {from: right, to: left}
    - from: ${p}2:right
      to: netdev:right
`;
}
