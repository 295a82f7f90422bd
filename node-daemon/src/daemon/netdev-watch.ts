// Which netdevs come and go on this host, from the kernel's rtnetlink link events,
// through iproute2's `ip -o monitor link` in the host's network namespace: a chain
// that failed because its netdev did not exist yet is tried again when one appears.
//
// A child process rather than a netlink socket of our own: iproute2 is already what
// the daemon's host needs, it parses rtnetlink for us, and whatever it does cannot
// take the daemon down. It dies with the daemon (a parent-death signal, set by
// setpriv), even when the daemon is killed outright. Bounded: one line per event, lines past MAX_LINE_BYTES are
// cut, and bursts of events coalesce into one `changed` per quiet period. A monitor
// that exits is started again after a growing delay; since events may have been
// missed meanwhile, a restart counts as a change.

import { ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { Logger } from '@netcube/api/log';

/** What one event line may take; the rest of a longer one is dropped. */
const MAX_LINE_BYTES = 4096;
/** Events closer together than this are one change. */
const COALESCE_MS = 100;

export interface NetdevWatchEvents {
  /** Netdevs appeared or went (coalesced); `added` names those that appeared, as far as told. */
  changed: [{ added: string[] }];
}

export class NetdevWatch extends EventEmitter<NetdevWatchEvents> {
  private child?: ChildProcess;
  private closed = false;
  private restartDelay = 250;
  private restartTimer?: NodeJS.Timeout;
  private flushTimer?: NodeJS.Timeout;
  private added = new Set<string>();

  /** Watches the netdevs of `netns` (a path), or of the daemon's own namespace. */
  constructor(
    private readonly netns: string | undefined,
    private readonly log: Logger,
  ) {
    super();
    this.start();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.restartTimer);
    clearTimeout(this.flushTimer);
    this.child?.kill('SIGTERM');
    this.child = undefined;
  }

  private start(): void {
    const monitor = ['ip', '-o', 'monitor', 'link'];
    const args = ['--pdeathsig=KILL', '--', ...(this.netns ? ['nsenter', `--net=${this.netns}`, '--', ...monitor] : monitor)];
    const child = spawn('setpriv', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let partial = '';
    let started = false;
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      if (!started) {
        started = true;
        this.restartDelay = 250;
      }
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!.slice(0, MAX_LINE_BYTES);
      for (const line of lines) this.event(line.slice(0, MAX_LINE_BYTES));
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-512)));
    child.once('error', (err) => this.log.warn('cannot watch netdevs (ip monitor link)', { error: err.message }));
    child.once('close', (code, signal) => {
      if (this.closed || this.child !== child) return;
      this.child = undefined;
      this.log.warn('the netdev watch (ip monitor link) stopped; starting it again', { code, signal, stderr: stderr.trim(), retryInMs: this.restartDelay });
      this.restartTimer = setTimeout(() => {
        this.start();
        // What happened meanwhile is unknown: as good as a change.
        this.changed();
      }, this.restartDelay);
      this.restartDelay = Math.min(this.restartDelay * 2, 30_000);
    });
  }

  /** One line of `ip -o monitor link`: `3: eth1@if2: <...> ...` for a new or changed link, `Deleted 3: ...` for a gone one. */
  private event(line: string): void {
    const m = /^(Deleted\s+)?\d+:\s+([^:@\s]+)/.exec(line);
    if (!m) return;
    if (!m[1] && this.added.size < 64) this.added.add(m[2]);
    this.changed();
  }

  private changed(): void {
    if (this.flushTimer || this.closed) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      const added = [...this.added];
      this.added.clear();
      this.emit('changed', { added });
    }, COALESCE_MS);
  }
}
