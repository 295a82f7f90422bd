// What a suite made (namespaces, processes, daemons, loaded programs), undone when
// it ends, also when it fails: each suite pushes a closer as it makes something.

export type Closer = () => unknown;

/** Runs the closers last first; one that fails is logged, and the rest still run. */
export async function closeAll(closers: Closer[], log: (message: string) => void): Promise<void> {
  for (const close of closers.reverse()) {
    try {
      await close();
    } catch (err) {
      log(`cleanup: ${(err as Error).message}`);
    }
  }
}
