// GetHost asked of a netcubed one call after the other, each with a deadline, from
// a process of its own, as a real client asks: for a test that holds the daemon to
// that deadline while its own process is busy (driving a flood, being a stalled
// controller), whose event loop would otherwise decide when a reply is read.
//
//   node get-host-prober-main.js --target TARGET --deadline-ms N --interval-ms N
//
// Prints one JSON line per call, {"ms": LATENCY} or {"atMs": SINCE_START, "error":
// MESSAGE}, and {"loopDelayMaxMs": N} (its own event loop's longest delay) when it
// ends, at SIGTERM.

import { parseArgs } from 'node:util';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { NetcubeClient } from '@netcube/api/grpc/client';

const { values } = parseArgs({ options: { target: { type: 'string' }, 'deadline-ms': { type: 'string' }, 'interval-ms': { type: 'string' } } });
if (!values.target || !values['deadline-ms'] || !values['interval-ms']) throw new Error('usage: get-host-prober-main.js --target TARGET --deadline-ms N --interval-ms N');
const client = NetcubeClient.connect({ target: values.target, timeoutMs: Number(values['deadline-ms']) });
const interval = Number(values['interval-ms']);
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
const started = performance.now();
let stopping = false;
process.once('SIGTERM', () => {
  stopping = true;
});

async function main(): Promise<void> {
  while (!stopping) {
    const asked = performance.now();
    try {
      await client.getHost();
      process.stdout.write(`${JSON.stringify({ ms: performance.now() - asked })}\n`);
    } catch (err) {
      process.stdout.write(`${JSON.stringify({ atMs: asked - started, error: (err as Error).message })}\n`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
  loop.disable();
  process.stdout.write(`${JSON.stringify({ loopDelayMaxMs: loop.max / 1e6 })}\n`);
  client.close();
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
