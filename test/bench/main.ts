// `npm run bench [-- suite ...]`: runs every suite in test/bench/suites/ (or
// the ones named) and prints a table and JSON lines. A result that misses its
// target is marked MISSED, with its note, for the operator to read; it does not
// fail the run (exit 0). A suite that cannot measure at all does (exit 2).
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { meetsTarget, printJsonLines, printTable, type Result, type Suite } from './report';

// build/js/test/bench -> the repository root
const root = path.resolve(__dirname, '../../../..');
const suitesDir = path.join(__dirname, 'suites');

function loadSuites(names: string[]): Suite[] {
  const available = readdirSync(suitesDir).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3)).sort();
  const unknown = names.filter((n) => !available.includes(n));
  if (unknown.length > 0) {
    throw new Error(`unknown suite ${unknown.join(', ')}; the suites are ${available.join(', ')}`);
  }
  return (names.length > 0 ? names : available).map((name) => {
    const suite = (require(path.join(suitesDir, name)) as { suite?: Suite }).suite;
    if (suite === undefined || suite.name !== name) {
      throw new Error(`test/bench/suites/${name}.ts must export \`suite\` with name '${name}'`);
    }
    return suite;
  });
}

async function main(): Promise<number> {
  const suites = loadSuites(process.argv.slice(2));
  const results: Result[] = [];
  for (const suite of suites) {
    process.stderr.write(`# ${suite.name}: ${suite.description}\n`);
    const ctx = {
      root,
      buildDir: path.join(root, 'build/bench'),
      log: (message: string) => process.stderr.write(`  ${suite.name}: ${message}\n`),
    };
    results.push(...await suite.run(ctx));
  }
  printTable(results, process.stdout);
  printJsonLines(results, process.stdout);
  const missed = results.filter((r) => !meetsTarget(r));
  for (const r of missed) {
    process.stderr.write(`missed target: ${r.name} is ${r.ratio ?? r.value}, needs ${r.better === 'lower' ? '<=' : '>='} ${r.target}\n`);
  }
  return 0;
}

main().then((code) => { process.exitCode = code; }, (error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 2;
});
