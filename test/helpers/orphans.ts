// Test resources are named after the pid of the worker that made them (namespaces
// `nct-<pid>-<n>`, etcd directories `nct-etcd-<pid>-...`). A worker killed outright
// (SIGKILL, an ava timeout under load) runs no teardown and no exit handler, so each
// helper sweeps, when it loads, what belonged to workers no longer alive.

/** Whether a process with `pid` exists (ours or not). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The names among `names` whose owner pid (the first group of `pattern`) is dead. */
export function orphans(names: Iterable<string>, pattern: RegExp): string[] {
  const dead: string[] = [];
  for (const name of names) {
    const owner = Number(pattern.exec(name)?.[1]);
    if (owner && owner !== process.pid && !processAlive(owner)) dead.push(name);
  }
  return dead;
}
