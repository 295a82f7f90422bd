// CaptureService: copies of the packets a packetcapture cube sees, streamed to
// the client in batches (capture/session.ts holds the session) until it cancels,
// `count` packets were sent, or the cube's ring cannot be read any more.
//
// The cube is a chain's, or, for a capture on a port of another cube or on a
// netdev, one the runtime stacks there for this session alone (a transient layer,
// runtime.ts) and removes when the session ends, however it ends.

import { Rpc } from '@netcube/api/grpc/call';
import { modeToProto } from '@netcube/api/grpc/convert';
import type { CaptureMessage } from '@netcube/api/generated/netcube/v1/CaptureMessage';
import type { CaptureServiceHandlers } from '@netcube/api/generated/netcube/v1/CaptureService';
import { CAPTURE_TYPE, captureSpec } from '../capture/config';
import { FailedPreconditionError } from '../runtime/errors';
import { CaptureSession, CaptureCounters } from '../capture/session';
import type { Cube } from '../runtime/cube';
import { ApiContext } from './context';

/** Packets per message at most: 64 full-size ones are about 100 KB. */
const BATCH = 64;
/** How often the counters are sent while no packet comes. */
const STATS_EVERY_MS = 1000;

const statsMessage = (s: CaptureCounters) => ({ captured: s.captured.toString(), overRate: s.overRate.toString(), ringFull: s.ringFull.toString() });

export function captureService(ctx: ApiContext, rpc: Rpc): CaptureServiceHandlers {
  return {
    Capture: rpc.serverStream('Capture', async (req, call, send: (msg: CaptureMessage) => Promise<void>) => {
      const spec = captureSpec(req);
      const { target } = spec;
      // A chain's packetcapture cube, or where to stack one for this session.
      const chainCube = 'netdev' in target || target.port !== undefined ? undefined : target.cube;
      const where = 'netdev' in target ? target.netdev : `${target.cube}:${target.port}`;
      // Aborted with why, when an apply removes this session's transient cube (its target went).
      const removed = new AbortController();
      const transient =
        chainCube !== undefined
          ? undefined
          : await ctx.runtime.stackTransient({
              type: CAPTURE_TYPE,
              prefix: 'capture',
              target: 'netdev' in target ? { netdev: target.netdev } : { cube: target.cube, port: target.port! },
              direction: 'both',
              ended: (why) => removed.abort(new FailedPreconditionError(`capture on ${where} stopped: ${why}`)),
            });
      try {
        await stream(ctx.runtime.cube(chainCube ?? transient!), chainCube ?? where, AbortSignal.any([call.signal, removed.signal]));
      } finally {
        if (transient) await ctx.runtime.unstackTransient(transient);
      }
      if (removed.signal.aborted) throw removed.signal.reason;
      if (spec.count === 0n) call.signal.throwIfAborted();

      /** The session on `cube` until `signal` aborts or `count` packets were sent. */
      async function stream(cube: Cube, what: string, signal: AbortSignal): Promise<void> {
        const session = new CaptureSession(cube, spec);
        try {
          await send({
            started: { host: ctx.host, interface: `${ctx.host} ${what}`, cube: cube.name, mode: modeToProto(cube.mode), snapLength: spec.snapLength },
          });
          let sent = 0n;
          let lastStats = '';
          while (!signal.aborted && (spec.count === 0n || sent < spec.count)) {
            let batch = await session.next(BATCH, STATS_EVERY_MS, signal);
            // A transient cube removed under the session has no tables left to read.
            if (removed.signal.aborted) break;
            if (spec.count !== 0n && BigInt(batch.length) > spec.count - sent) batch = batch.slice(0, Number(spec.count - sent));
            const stats = statsMessage(session.stats());
            const statsText = JSON.stringify(stats);
            if (batch.length === 0 && statsText === lastStats) continue;
            lastStats = statsText;
            sent += BigInt(batch.length);
            await send({
              packets: {
                packets: batch.map((p) => ({
                  data: p.data,
                  wireLength: p.wireLength,
                  timestampUnixNs: p.timestampUnixNs.toString(),
                  direction: p.direction === 'ingress' ? 'DIRECTION_INGRESS' : 'DIRECTION_EGRESS',
                })),
                stats,
              },
            });
          }
        } finally {
          session.close(removed.signal.aborted);
        }
      }
    }),
  };
}
