// Status per cube, from this host to etcd: what the reconciler says of each of its
// cubes, written where it changed, removed where a cube left. A write (an etcd
// commit) never holds up the reconciler: requests while one is written coalesce
// into the newest, and a failed write is tried again with a growing delay until a
// newer one replaces it. One report etcd would refuse (a name it cannot take) is
// left out and logged, so it never keeps every other cube's status from etcd.

import { setTimeout as sleep } from 'node:timers/promises';
import { StatusUpdate, Store, STATUS_PREFIX } from '@netcube/api/store';
import { Logger } from '@netcube/api/log';
import { cite } from '@netcube/api/cite';
import { statusProblems } from '@netcube/api/store/records';
import { nameProblem } from '@netcube/api/names';

/** A report etcd holds that cannot be read: rewritten, or removed, whatever the cube's status is now. */
const UNREADABLE = 'unreadable';
/** The most characters of a reported error: a transaction of statuses stays far below etcd's request limit. */
const MAX_ERROR_CHARS = 2048;

export class StatusReporter {
  /** What each cube's status in etcd says (statusText), so only changes are written. */
  private readonly reported = new Map<string, string>();
  private store?: Store;
  private readingReports?: Promise<void>;
  /** Statuses waiting to be written, and the write in progress. */
  private toReport?: Map<string, StatusUpdate>;
  private reporting?: Promise<void>;
  /** Cubes whose report etcd would refuse, logged once each. */
  private readonly refused = new Set<string>();
  private readonly closing = new AbortController();

  constructor(
    private readonly host: string,
    private readonly log: Logger,
  ) {}

  /** Writes to `store` from now on; reads what this host reported before it restarted, as the baseline. */
  follow(store: Store): void {
    this.store = store;
    this.previousReports(store).catch(() => undefined);
  }

  /** Makes etcd say `now` of this host's cubes, soon: every cube not in it loses its status. */
  report(now: Map<string, StatusUpdate>): void {
    for (const [cube, status] of now) if (status.error && status.error.length > MAX_ERROR_CHARS) now.set(cube, { ...status, error: cite(status.error, MAX_ERROR_CHARS) });
    this.toReport = now;
    this.reporting ??= (async () => {
      let delay = 250;
      while (this.toReport && !this.closing.signal.aborted) {
        const next = this.toReport;
        this.toReport = undefined;
        try {
          await this.write(next);
          delay = 250;
        } catch (err) {
          this.log.warn('could not write status to etcd; will retry', { error: (err as Error).message, retryInMs: delay });
          this.toReport ??= next;
          await sleep(delay, undefined, { signal: this.closing.signal }).catch(() => undefined);
          delay = Math.min(delay * 2, 10_000);
        }
      }
      this.reporting = undefined;
    })();
  }

  /** Stops writing; resolves once the write in progress ended. */
  async close(): Promise<void> {
    this.closing.abort();
    await this.reporting;
  }

  /**
   * What this host reported before it restarted: kept where still true, rewritten or
   * removed where not. Read once (again after a failure).
   */
  private previousReports(store: Store): Promise<void> {
    this.readingReports ??= store.status.listStatusWithBroken().then(
      ({ values, broken }) => {
        for (const s of values) if (s.host === this.host && !this.reported.has(s.cube)) this.reported.set(s.cube, statusText(s));
        const mine = `${this.host}/`;
        for (const b of broken) {
          const cube = b.name.slice(mine.length);
          if (b.name.startsWith(mine) && !nameProblem(cube, 'cube name') && !this.reported.has(cube)) this.reported.set(cube, UNREADABLE);
        }
      },
      (err) => {
        this.readingReports = undefined;
        throw err;
      },
    );
    return this.readingReports;
  }

  /** Writes each cube's status where it changed, and removes those of cubes gone from here. */
  private async write(now: Map<string, StatusUpdate>): Promise<void> {
    const store = this.store;
    if (!store) return;
    await this.previousReports(store);
    // Cubes gone from here first (putStatuses removes before it writes): whoever
    // sees a version reported applied must not still see the cubes it removed.
    const gone = [...this.reported.keys()].filter((cube) => !now.has(cube));
    const changed = new Map([...now].filter(([cube, status]) => this.reported.get(cube) !== statusText(status) && this.acceptable(cube, status)));
    if (gone.length === 0 && changed.size === 0) return;
    await store.status.putStatuses(this.host, changed, gone);
    for (const cube of gone) this.reported.delete(cube);
    for (const [cube, status] of changed) this.reported.set(cube, statusText(status));
  }

  /** Whether etcd would take this report; one it would refuse is logged (once) and left out. */
  private acceptable(cube: string, status: StatusUpdate): boolean {
    const problems = statusProblems(this.host, cube, status);
    if (problems.length === 0) {
      this.refused.delete(cube);
      return true;
    }
    if (!this.refused.has(cube)) {
      this.refused.add(cube);
      this.log.error('a cube status cannot be reported; the other cubes\' are', { cube, key: `${STATUS_PREFIX}${this.host}/${cube}`, problems });
    }
    return false;
  }
}

/** What a status says, to tell whether etcd already has it (its time aside). */
function statusText(s: { chain: string; version: number; revision: number; state: string; error?: string }): string {
  return JSON.stringify([s.chain, s.version, s.revision, s.state, s.error ?? null]);
}
