// The libbpf binding's cost over libbpf itself: the same hash-map update
// loops, once from C (test/bench/c/map_update.c) and once through BpfMap, in
// the same run. Single updates pay the JS -> native crossing per element; a
// batch pays it once.
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { BpfMap } from '../../../node-daemon/src/bpf';
import type { Result, Suite, SuiteContext } from '../report';

const entries = 100_000;
const rounds = 5;
// The C and JS loops alternate this many times; the best of each counts, so
// a noisy moment on the machine hurts neither side more than the other.
const pairs = 3;

function buildBaseline(ctx: SuiteContext): string {
  const source = path.join(ctx.root, 'test/bench/c/map_update.c');
  const binary = path.join(ctx.buildDir, 'map_update');
  let stale = true;
  try {
    stale = statSync(binary).mtimeMs < statSync(source).mtimeMs;
  } catch {
    // Not built yet.
  }
  if (stale) {
    mkdirSync(ctx.buildDir, { recursive: true });
    execFileSync('cc', ['-O2', '-Wall', '-Werror', '-o', binary, source, '-lbpf'], { stdio: 'inherit' });
  }
  return binary;
}

function runC(binary: string): { update: number; batch: number } {
  return JSON.parse(execFileSync(binary, [String(entries), String(rounds)], { encoding: 'utf8' }));
}

function runBinding(): { update: number; batch: number } {
  const map = BpfMap.create({ type: 'hash', keySize: 4, valueSize: 8, maxEntries: entries, name: 'bench_js' });
  try {
    const keys = Buffer.alloc(4 * entries);
    const values = Buffer.alloc(8 * entries);
    for (let i = 0; i < entries; i++) {
      keys.writeUInt32LE(i, 4 * i);
      values.writeUInt32LE(i, 8 * i);
    }
    const key = Buffer.alloc(4);
    const value = Buffer.alloc(8);
    let update = 0;
    let batch = 0;
    for (let r = 0; r < rounds; r++) {
      let start = process.hrtime.bigint();
      for (let i = 0; i < entries; i++) {
        key.writeUInt32LE(i, 0);
        value.writeUInt32LE(i, 0);
        map.update(key, value);
      }
      update = Math.max(update, entries / (Number(process.hrtime.bigint() - start) / 1e9));
      start = process.hrtime.bigint();
      map.updateBatch(keys, values, entries);
      batch = Math.max(batch, entries / (Number(process.hrtime.bigint() - start) / 1e9));
    }
    return { update, batch };
  } finally {
    map.close();
  }
}

export const suite: Suite = {
  name: 'binding',
  description: `hash map updates, ${entries} entries: BpfMap vs libbpf from C`,
  async run(ctx) {
    const binary = buildBaseline(ctx);
    const c = { update: 0, batch: 0 };
    const js = { update: 0, batch: 0 };
    for (let i = 0; i < pairs; i++) {
      const cRun = runC(binary);
      const jsRun = runBinding();
      for (const k of ['update', 'batch'] as const) {
        c[k] = Math.max(c[k], cRun[k]);
        js[k] = Math.max(js[k], jsRun[k]);
      }
      ctx.log(`pair ${i + 1}/${pairs}: C ${Math.round(cRun.update)}/${Math.round(cRun.batch)}, ` +
              `binding ${Math.round(jsRun.update)}/${Math.round(jsRun.batch)} updates/s (single/batch)`);
    }
    const results: Result[] = [];
    for (const [what, target] of [['update', 0.5], ['batch', 0.8]] as const) {
      const ratio = js[what] / c[what];
      results.push(
        { name: `binding.${what}.c`, value: Math.round(c[what]), unit: 'updates/s' },
        { name: `binding.${what}.binding`, value: Math.round(js[what]), unit: 'updates/s', baseline: Math.round(c[what]), ratio },
        { name: `binding.${what}.ratio`, value: ratio, unit: 'x', target },
      );
    }
    return results;
  },
};
