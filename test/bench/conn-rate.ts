// test/bench/c/conn_rate.c, the two ends of a new-connections-per-second measurement
// (a C epoll loop: `serve PORT` accepts, `connect HOST PORT SECONDS PARALLEL` keeps
// PARALLEL connects in flight and resets each one as soon as it is established),
// built into build/bench when missing or older than its source. The catalog's
// lb.conn and the k8s suite's svc.conn share it.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SuiteContext } from './report';

export function connRateTool(ctx: SuiteContext): string {
  const source = path.join(ctx.root, 'test/bench/c/conn_rate.c');
  const binary = path.join(ctx.buildDir, 'conn_rate');
  if (!fs.existsSync(binary) || fs.statSync(binary).mtimeMs < fs.statSync(source).mtimeMs) {
    fs.mkdirSync(ctx.buildDir, { recursive: true });
    execFileSync('cc', ['-O2', '-Wall', '-Werror', '-o', binary, source], { stdio: 'inherit' });
  }
  return binary;
}

/** What `conn_rate connect` prints. */
export interface ConnRun {
  connections: number;
  failed: number;
  seconds: number;
}
