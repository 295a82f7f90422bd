// Passes that never overlap: netcubed's reconciler's, the Kubernetes controller's
// and its node agent's. Each derives everything from what it follows, so a change
// during a pass makes one more pass after it, never a second one beside it, and
// changes that come together make one.

export class SerialPasses {
  private running?: Promise<void>;
  private again = false;

  /** @param pass one pass; its error goes to `onError`, and the next change or resync tries again. */
  constructor(
    private readonly pass: () => Promise<void>,
    private readonly onError: (err: Error) => void,
  ) {}

  /** Runs a pass soon while `go()` holds: now, or once the one under way ends. */
  schedule(go: () => boolean): void {
    if (!go()) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass().catch((err) => this.onError(err as Error));
      } while (this.again && go());
      this.running = undefined;
    })();
  }

  /** Makes the pass under way run once more (what it read changed meanwhile). */
  repeat(): void {
    this.again = true;
  }

  /** Resolves once no pass is under way. */
  async idle(): Promise<void> {
    await this.running;
  }
}
