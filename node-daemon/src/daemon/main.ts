#!/usr/bin/env node
// netcubed: see `netcubed --help` and daemon.ts.

import { Logger } from '@netcube/api/log';
import { ConfigError, HELP, parseConfig } from './config';
import { Daemon } from './daemon';

async function main(): Promise<void> {
  let config;
  try {
    config = parseConfig(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`netcubed: ${(err as Error).message}\n`);
    process.exit(2);
  }
  if (config === 'help') {
    process.stdout.write(HELP);
    return;
  }
  // Blocking work runs in libuv's thread pool: verifier loads, attachments, netns
  // look-ups, RCU waits, all of them parts of a runtime change, and changes run one
  // at a time. Each pool thread gets a malloc arena of its own, which keeps the
  // memory libbpf used for a load (it parses the kernel's BTF, megabytes, every
  // time): one thread rather than libuv's four keeps some 45 MB less after a host's
  // cubes were created. The environment may say otherwise; the pool starts on
  // first use, after this.
  process.env.UV_THREADPOOL_SIZE ??= '1';
  // Everything netcubed writes (state, uploads, pins, its directories) is root's alone.
  process.umask(0o077);
  const log = new Logger(config.logLevel, { host: config.name });
  let daemon: Daemon;
  try {
    daemon = await Daemon.start(config, log);
  } catch (err) {
    log.error('netcubed could not start', { error: (err as Error).message });
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('stopping; the data plane stays', { signal });
    daemon.stop().then(
      () => process.exit(0),
      (err) => {
        log.error('stop failed', { error: (err as Error).message });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`netcubed: ${err instanceof ConfigError ? err.message : (err as Error).stack}\n`);
  process.exit(1);
});
