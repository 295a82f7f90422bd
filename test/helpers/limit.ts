// A bound on how many tests of a file hold a fixture at once. ava starts every
// test of a file together; a file of many rows, each with a namespace, a runtime
// and cubes to verify, would otherwise build all its fixtures at once, and on a
// busy machine none would finish for minutes. A test takes a place before it
// builds its fixture and gives it back when it is torn down (its teardowns run
// last registered first, so after the fixture's own).
import type { ExecutionContext } from 'ava';

export function fixtureLimit(places: number): (t: ExecutionContext) => Promise<void> {
  let free = places;
  const waiting: (() => void)[] = [];
  const release = (): void => {
    const next = waiting.shift();
    if (next) next();
    else free++;
  };
  return async (t) => {
    if (free > 0) free--;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    t.teardown(release);
  };
}
