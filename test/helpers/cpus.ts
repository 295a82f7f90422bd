// The CPUs this process may run on: all of them on a plain machine, fewer in a
// container or under taskset.
import * as fs from 'node:fs';

/** The ids in /proc/self/status's Cpus_allowed_list ("0-3,8" and the like). */
export function allowedCpus(): number[] {
  const list = /^Cpus_allowed_list:\s*(\S+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1];
  return list.split(',').flatMap((range) => {
    const [first, last = first] = range.split('-').map(Number);
    return Array.from({ length: last - first + 1 }, (_, i) => first + i);
  });
}
