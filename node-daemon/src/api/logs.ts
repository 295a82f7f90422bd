// LogService: the data plane's log lines (nc_log) as they arrive, filtered by cube
// and level, until the client cancels or the daemon stops.

import { Rpc } from '@netcube/api/grpc/call';
import { logLevelFromProto, logLevelToProto } from '@netcube/api/grpc/convert';
import type { LogLine } from '@netcube/api/generated/netcube/v1/LogLine';
import type { LogServiceHandlers } from '@netcube/api/generated/netcube/v1/LogService';
import { LOG_LEVELS } from '../runtime/abi';
import { LogLine as RuntimeLogLine } from '../runtime/logs';
import { ApiContext } from './context';
import { checkName } from './cubes';

/** Lines held for a client that reads slowly; past this, lines are dropped and counted. */
const MAX_QUEUED = 1024;

export function logService(ctx: ApiContext, rpc: Rpc): LogServiceHandlers {
  return {
    StreamLogs: rpc.serverStream('StreamLogs', async (req, call, send) => {
      const cubes = new Set((req.cubes ?? []).map((c, i) => checkName(`cubes[${i}]`, c)));
      const level = logLevelFromProto(req.level, 'level');
      const worst = level ? LOG_LEVELS.indexOf(level) : LOG_LEVELS.length;

      const queue: LogLine[] = [];
      let dropped = 0;
      let wake: (() => void) | undefined;
      const unsubscribe = ctx.logs.subscribe((line: RuntimeLogLine) => {
        if (cubes.size > 0 && !cubes.has(line.cube ?? '')) return;
        if (LOG_LEVELS.indexOf(line.level) > worst) return;
        if (queue.length >= MAX_QUEUED) {
          dropped++;
          return;
        }
        queue.push({ cube: line.cube ?? '', cubeId: line.cubeId, level: logLevelToProto(line.level), message: line.message, timestampNs: line.tsNs.toString() });
        wake?.();
      });
      try {
        while (!call.signal.aborted) {
          const line = queue.shift();
          if (line) {
            await send(line);
            continue;
          }
          if (dropped > 0) {
            await send({ cube: '', level: 'LOG_LEVEL_WARN', message: `netcubed: ${dropped} log lines dropped: this client read too slowly`, timestampNs: '0' });
            dropped = 0;
            continue;
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
            call.signal.addEventListener('abort', () => resolve(), { once: true });
          });
          wake = undefined;
        }
      } finally {
        unsubscribe();
      }
      call.signal.throwIfAborted();
    }),
  };
}
