// What hosts report about the cubes they run, and waiting until a chain version is
// applied everywhere it is placed (`netcubectl apply --wait`).

import { cite } from '../cite';
import { Chains } from './chains';
import { deleteOp, Etcd, prefixOp, putOp, toKeyValue } from './etcd';
import { ApplyFailedError, CubeFailure, ValidationError, WaitTimeoutError } from './errors';
import { HOSTS_PREFIX, statusKey, STATUS_PREFIX } from './keys';
import { CubeStatus, CubeStatusEntry, Decoded, decodeEach, decodeHost, decodeStatus, statusProblems } from './records';
import { PrefixWatch } from './watch';
import { hostNameProblem, nameProblem } from '../names';

export interface WaitProgress {
  /** Cubes applied at the awaited revision or later. */
  done: number;
  total: number;
  /** `host/cube` not yet applied (no report, an older one, or state pending). */
  pending: string[];
  failures: CubeFailure[];
}

export interface WaitOptions {
  timeoutMs: number;
  /** Called once the current reports are read, then whenever the counts change. */
  onProgress?: (progress: WaitProgress) => void;
}

export interface WaitResult {
  version: number;
  revision: number;
  cubes: number;
}

/** etcd's default limit on the operations of one transaction (--max-txn-ops). */
const MAX_TXN_OPS = 128;

/** A status as a host reports it; `updatedAt` defaults to now. */
export type StatusUpdate = Omit<CubeStatus, 'updatedAt'> & { updatedAt?: string };

function checkedName(host: string, cube: string): void {
  const problems = [hostNameProblem(String(host)), nameProblem(String(cube), 'cube name')].filter(Boolean);
  if (problems.length > 0) throw new ValidationError(`status of ${cite(`${host}/${cube}`)} is invalid: ${problems.join('; ')}`);
}

function checkedStatus(host: string, cube: string, status: StatusUpdate): CubeStatus {
  const problems = statusProblems(host, cube, status);
  if (problems.length > 0) throw new ValidationError(`status of ${cite(`${host}/${cube}`)} is invalid: ${problems.join('; ')}`);
  return { ...status, updatedAt: status.updatedAt ?? new Date().toISOString() };
}

export class Status {
  constructor(
    private readonly etcd: Etcd,
    private readonly chains: Chains,
  ) {}

  /** Records what `host` observed applying `cube`; `updatedAt` defaults to now. */
  async putStatus(host: string, cube: string, status: StatusUpdate): Promise<void> {
    const value = checkedStatus(host, cube, status);
    await this.etcd.call(`put status of ${host}/${cube}`, client => client.kv.put(putOp(statusKey(host, cube), value).request_put!));
  }

  /** Removes what `host` reported about `cube`, once the cube no longer runs there. */
  async deleteStatus(host: string, cube: string): Promise<void> {
    await this.etcd.call(`delete status of ${host}/${cube}`, client => client.kv.deleteRange({ key: Buffer.from(statusKey(host, cube)) }));
  }

  /**
   * Removes what `host` reported about the cubes in `remove`, then records `put`, in
   * as few transactions as etcd takes (MAX_TXN_OPS operations each): one write for a
   * change of a small chain, a handful for a host of a thousand cubes. Each
   * transaction is atomic; removals come first.
   */
  async putStatuses(host: string, put: ReadonlyMap<string, StatusUpdate>, remove: readonly string[] = []): Promise<void> {
    for (const cube of remove) checkedName(host, cube);
    const ops = [
      ...remove.map(cube => deleteOp(statusKey(host, cube))),
      ...[...put].map(([cube, status]) => putOp(statusKey(host, cube), checkedStatus(host, cube, status))),
    ];
    for (let i = 0; i < ops.length; i += MAX_TXN_OPS) {
      await this.etcd.write(`report status of host ${host}`, [], ops.slice(i, i + MAX_TXN_OPS));
    }
  }

  /** Every status report, or those about one chain. */
  async listStatus(chain?: string): Promise<CubeStatusEntry[]> {
    const all = (await this.listStatusWithBroken()).values;
    return chain === undefined ? all : all.filter(entry => entry.chain === chain);
  }

  /** Every status report, and apart the reports that cannot be read, with why. */
  async listStatusWithBroken(): Promise<Decoded<CubeStatusEntry>> {
    const { ranges } = await this.etcd.read('list status', [prefixOp(STATUS_PREFIX)]);
    return decodeEach(ranges[0], STATUS_PREFIX, decodeStatus);
  }

  /**
   * Resolves when every cube of `chain` at `version` is reported applied by its host at
   * that version's revision or later. Rejects with ApplyFailedError once every cube has
   * reported and some failed, or WaitTimeoutError naming the hosts still pending.
   */
  async waitApplied(chain: string, version: number, options: WaitOptions): Promise<WaitResult> {
    const entry = await this.chains.getVersion(chain, version);
    if (entry.action === 'delete') {
      throw new ValidationError(`version ${version} of chain ${chain} records its deletion: there is nothing to wait for`);
    }
    const expected = entry.chain.spec.cubes.map(cube => `${cube.host}/${cube.name}`);
    const reports = new Map<string, CubeStatus>();
    const watch = new PrefixWatch(this.etcd, STATUS_PREFIX, decodeStatus, 'status');
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise<WaitResult>((resolve, reject) => {
        let synced = false;
        let shown = '';
        const tally = (): WaitProgress => {
          const progress: WaitProgress = { done: 0, total: expected.length, pending: [], failures: [] };
          for (const id of expected) {
            const report = reports.get(id);
            const current = report && report.chain === chain && report.revision >= entry.revision;
            if (current && report.state === 'applied') {
              progress.done++;
            } else if (current && report.state === 'error') {
              const [host, cube] = id.split('/');
              progress.failures.push({ host, cube, error: report.error ?? 'no detail reported' });
            } else {
              progress.pending.push(id);
            }
          }
          return progress;
        };
        const evaluate = () => {
          if (!synced) return;
          const progress = tally();
          const key = JSON.stringify(progress);
          if (key !== shown) {
            shown = key;
            options.onProgress?.(progress);
          }
          if (progress.pending.length > 0) return;
          if (progress.failures.length === 0) {
            resolve({ version, revision: entry.revision, cubes: expected.length });
          } else {
            const list = progress.failures.map(f => `${f.host}/${f.cube}: ${f.error}`).join('; ');
            reject(new ApplyFailedError(`chain ${chain} version ${version} failed on ${progress.failures.length} of ${expected.length} cubes: ${list}`, progress.failures));
          }
        };
        watch.on('put', ({ name, value }) => {
          reports.set(name, value);
          evaluate();
        });
        watch.on('delete', ({ name }) => {
          reports.delete(name);
          evaluate();
        });
        watch.on('synced', () => {
          synced = true;
          evaluate();
        });
        watch.on('error', reject);
        timer = setTimeout(() => {
          this.timeoutError(chain, version, options.timeoutMs, tally()).then(reject, reject);
        }, options.timeoutMs);
      });
    } finally {
      clearTimeout(timer);
      watch.close();
    }
  }

  private async timeoutError(chain: string, version: number, timeoutMs: number, progress: WaitProgress): Promise<WaitTimeoutError> {
    const byHost = new Map<string, string[]>();
    for (const id of progress.pending) {
      const [host, cube] = id.split('/');
      byHost.set(host, [...(byHost.get(host) ?? []), cube]);
    }
    // A host that is not registered will never report: say so, it is the likely cause.
    // One attempt only: the caller is already out of time.
    let registered: Set<string> | undefined;
    try {
      const res = await this.etcd.once('list hosts', client => client.kv.range(prefixOp(HOSTS_PREFIX).request_range!));
      registered = new Set(decodeEach(res.kvs.map(toKeyValue), HOSTS_PREFIX, decodeHost).values.map(h => h.name));
    } catch {
      registered = undefined;
    }
    const hosts = [...byHost].map(([host, cubes]) => {
      const down = registered && !registered.has(host) ? ', not registered: is netcubed running there?' : '';
      return `${host} (${cubes.join(', ')}${down})`;
    });
    const failed = progress.failures.length
      ? `; failed: ${progress.failures.map(f => `${f.host}/${f.cube}: ${f.error}`).join('; ')}`
      : '';
    return new WaitTimeoutError(
      `chain ${chain} version ${version} is not applied after ${(timeoutMs / 1000).toFixed(1)} s: ${progress.done} of ${progress.total} cubes done; still pending on ${hosts.join(', ')}${failed}`,
      progress.pending,
      progress.failures,
    );
  }
}
