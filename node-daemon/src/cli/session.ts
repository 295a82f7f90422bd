// One run of netcubectl: the global options, the etcd store (connected on first use),
// gRPC clients of the hosts it talks to, and where output goes. Everything opened
// is closed by close().

import { RegisteredHost, Store } from '@netcube/api/store';
import { Args, OutputFormat, OUTPUT_FORMATS, stringOption, UsageError } from './command';
import { toJson, toYaml } from './output';
import { ProgressStream } from './progress';
import { DaemonConnections, TlsFiles } from './daemons';
import { hostCheck } from '../chain';

export interface Streams {
  /** Text, and the bytes of `capture -w -`. */
  stdout: ProgressStream & { write(chunk: string | Uint8Array): unknown };
  stderr: ProgressStream;
  stdin: NodeJS.ReadableStream;
}

/** How long netcubectl waits for an unreachable etcd before it says so. */
const ETCD_TIMEOUT_MS = 5_000;

export class Session {
  readonly output: OutputFormat;
  readonly etcd: string[];
  readonly tls?: TlsFiles;
  readonly etcdAuth?: { username: string; password: string };
  private storePromise?: Promise<Store>;
  private daemonConnections?: DaemonConnections;
  private interruptHandler?: () => void;

  constructor(
    args: Args,
    readonly command: string,
    allowed: readonly OutputFormat[],
    readonly io: Streams,
    env: NodeJS.ProcessEnv,
  ) {
    const output = stringOption(args, 'output') ?? 'text';
    if (!(OUTPUT_FORMATS as readonly string[]).includes(output) || !allowed.includes(output as OutputFormat)) {
      throw new UsageError(`-o ${output}: ${command} prints ${allowed.join(', ')}`, command);
    }
    this.output = output as OutputFormat;
    const etcd = stringOption(args, 'etcd') ?? env.NETCUBE_ETCD ?? '127.0.0.1:2379';
    this.etcd = etcd.split(',').map(e => e.trim()).filter(Boolean);
    if (this.etcd.length === 0) throw new UsageError('--etcd: give at least one endpoint, e.g. 127.0.0.1:2379', command);
    const fromEnv = { 'tls-ca': env.NETCUBE_TLS_CA, 'tls-cert': env.NETCUBE_TLS_CERT, 'tls-key': env.NETCUBE_TLS_KEY } as Record<string, string | undefined>;
    const [ca, cert, key] = ['tls-ca', 'tls-cert', 'tls-key'].map(name => stringOption(args, name) ?? (fromEnv[name] || undefined));
    if ((cert === undefined) !== (key === undefined)) {
      throw new UsageError('--tls-cert and --tls-key go together: give both for mutual TLS, or neither', command);
    }
    if (ca !== undefined || cert !== undefined) this.tls = { ca, cert, key };
    const user = stringOption(args, 'etcd-user');
    if (user !== undefined) {
      if (!env.NETCUBE_ETCD_PASSWORD) throw new UsageError('--etcd-user: give the password in $NETCUBE_ETCD_PASSWORD', command);
      this.etcdAuth = { username: user, password: env.NETCUBE_ETCD_PASSWORD };
    }
  }

  /**
   * What SIGINT and SIGTERM do: a command that streams until interrupted (logs -f)
   * ends cleanly through `handler`; any other command exits at once with 130.
   */
  onInterrupt(handler: () => void): void {
    this.interruptHandler = handler;
  }

  /** @internal main.ts, on SIGINT or SIGTERM. */
  interrupt(): void {
    if (this.interruptHandler) return this.interruptHandler();
    // End a progress line in place, so the shell's prompt starts on a line of its own.
    if (this.io.stderr.isTTY) this.io.stderr.write('\n');
    process.exit(130);
  }

  /** The etcd store, connected on first use. */
  store(): Promise<Store> {
    this.storePromise ??= Store.connect({
      endpoints: this.etcd,
      tls: this.tls,
      auth: this.etcdAuth,
      hostCheck,
      callTimeoutMs: ETCD_TIMEOUT_MS,
      retry: { timeoutMs: ETCD_TIMEOUT_MS },
    });
    return this.storePromise;
  }

  /** gRPC clients of registered hosts. */
  async daemons(): Promise<DaemonConnections> {
    this.daemonConnections ??= new DaemonConnections(await this.store(), this.tls);
    return this.daemonConnections;
  }

  async hosts(): Promise<RegisteredHost[]> {
    return (await this.store()).hosts.listHosts();
  }

  /** Prints `data` as JSON or YAML, or `text()` for people. */
  print(data: unknown, text: () => string): void {
    if (this.output === 'json') this.io.stdout.write(toJson(data));
    else if (this.output === 'yaml') this.io.stdout.write(toYaml(data));
    else this.io.stdout.write(text());
  }

  /** For commands that report in text as they go: the result as JSON or YAML, when asked for. */
  data(data: unknown): void {
    if (this.output === 'json') this.io.stdout.write(toJson(data));
    else if (this.output === 'yaml') this.io.stdout.write(toYaml(data));
  }

  out(text: string): void {
    this.io.stdout.write(text);
  }

  /** Progress, notes and warnings: stderr, so stdout stays parseable. */
  note(text: string): void {
    this.io.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  async close(): Promise<void> {
    this.daemonConnections?.close();
    const store = await this.storePromise?.catch(() => undefined);
    await store?.close();
  }
}
