// CaptureService: copies of the packets a packetcapture cube sees, streamed to
// the client in batches (capture/session.ts holds the session) until it cancels,
// `count` packets were sent, or the cube's ring cannot be read any more.

import { Rpc } from '@netcube/api/grpc/call';
import { modeToProto } from '@netcube/api/grpc/convert';
import type { CaptureMessage } from '@netcube/api/generated/netcube/v1/CaptureMessage';
import type { CaptureServiceHandlers } from '@netcube/api/generated/netcube/v1/CaptureService';
import { captureSpec } from '../capture/config';
import { CaptureSession, CaptureCounters } from '../capture/session';
import { ApiContext } from './context';
import { checkName } from './cubes';

/** Packets per message at most: 64 full-size ones are about 100 KB. */
const BATCH = 64;
/** How often the counters are sent while no packet comes. */
const STATS_EVERY_MS = 1000;

const statsMessage = (s: CaptureCounters) => ({ captured: s.captured.toString(), overRate: s.overRate.toString(), ringFull: s.ringFull.toString() });

export function captureService(ctx: ApiContext, rpc: Rpc): CaptureServiceHandlers {
  return {
    Capture: rpc.serverStream('Capture', async (req, call, send: (msg: CaptureMessage) => Promise<void>) => {
      checkName('cube', req.cube);
      const spec = captureSpec(req);
      const session = new CaptureSession(ctx.runtime.cube(spec.cube), spec);
      try {
        await send({
          started: { host: ctx.host, interface: `${ctx.host} ${spec.cube}`, cube: spec.cube, mode: modeToProto(session.cube.mode), snapLength: spec.snapLength },
        });
        let sent = 0n;
        let lastStats = '';
        while (!call.signal.aborted && (spec.count === 0n || sent < spec.count)) {
          let batch = await session.next(BATCH, STATS_EVERY_MS, call.signal);
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
        session.close();
      }
      if (spec.count === 0n) call.signal.throwIfAborted();
    }),
  };
}
