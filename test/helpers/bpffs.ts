// A private bpffs mount per test, under /run (tmpfs, outside /sys so `ip netns
// exec` keeps seeing it), unmounted and removed in the test's teardown.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, rmdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';

const execFileAsync = promisify(execFile);
const mounted = new Set<string>();

process.on('exit', () => {
  for (const dir of mounted) {
    try {
      execFileSync('umount', [dir], { stdio: 'ignore' });
      execFileSync('rmdir', [dir], { stdio: 'ignore' });
    } catch {
      // Already gone.
    }
  }
});

/** Mounts a fresh bpffs and returns its directory. */
export async function mountBpffs(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp('/run/nct-bpffs-');
  try {
    await execFileAsync('mount', ['-t', 'bpf', 'bpf', dir]);
  } catch (error) {
    await rmdir(dir);
    throw error;
  }
  mounted.add(dir);
  t.teardown(async () => {
    mounted.delete(dir);
    await execFileAsync('umount', [dir]);
    await rmdir(dir);
  });
  return dir;
}
