// SlowPathService: a controller's session with this host (see slowpath.proto and
// node-daemon/src/slowpath/dispatcher.ts). The first message says what it
// controls; then packet-ins flow to it and packet-outs come back on one stream.

import { InvalidArgumentError } from '../runtime/errors';
import { ControllerSession, PacketIn } from '../slowpath/dispatcher';
import { Rpc } from './call';
import { ApiContext } from './context';
import type { ControllerMessage__Output } from './generated/netcube/v1/ControllerMessage';
import type { DaemonMessage } from './generated/netcube/v1/DaemonMessage';
import type { SlowPathServiceHandlers } from './generated/netcube/v1/SlowPathService';
import { checkName } from './cubes';

/** Packet-ins held for a controller that reads slowly; past this they are dropped and counted. */
export const MAX_QUEUED = 4096;

export function slowPathService(ctx: ApiContext, rpc: Rpc): SlowPathServiceHandlers {
  return {
    Connect: rpc.bidiStream<ControllerMessage__Output, DaemonMessage>('Connect', async (incoming, call, send) => {
      const messages = incoming[Symbol.asyncIterator]();
      const first = await messages.next();
      if (first.done || first.value.kind !== 'hello' || !first.value.hello)
        throw new InvalidArgumentError('hello', 'the first message of a slow-path session must be hello, saying which cube types or cubes it controls');
      const hello = first.value.hello;
      const types = new Set(hello.types.map((t, i) => checkName(`hello.types[${i}]`, t)));
      const cubes = new Set(hello.cubes.map((c, i) => checkName(`hello.cubes[${i}]`, c)));
      if (types.size === 0 && cubes.size === 0) throw new InvalidArgumentError('hello.types', 'name at least one cube type or cube to control');

      // Packet-ins wait here while the stream is slow; one pump writes them in order.
      const queue: DaemonMessage[] = [];
      let seq = 0;
      let pumping = false;
      const pump = async (): Promise<void> => {
        if (pumping) return;
        pumping = true;
        try {
          for (let m = queue.shift(); m; m = queue.shift()) await send(m);
        } finally {
          pumping = false;
        }
      };
      const session: ControllerSession = {
        name: hello.controller || 'controller',
        types,
        cubes,
        deliver: (p: PacketIn) => {
          if (queue.length >= MAX_QUEUED) return false;
          queue.push({ packetIn: { cube: p.cube, port: p.port, reason: p.reason, user: p.user, packet: p.packet, wireLength: p.wireLength, seq: String(++seq) } });
          pump().catch(() => undefined);
          return true;
        },
      };
      const detach = ctx.slowPath.attach(session);
      ctx.log.info('controller connected', { controller: session.name, types: [...types], cubes: [...cubes] });
      try {
        await send({ welcome: { host: ctx.host, cubes: ctx.slowPath.cubesOf(session) } });
        for (let m = await messages.next(); !m.done; m = await messages.next()) {
          const out = m.value.packetOut;
          if (m.value.kind !== 'packetOut' || !out) continue;
          try {
            if (out.direction !== 'DIRECTION_INGRESS' && out.direction !== 'DIRECTION_EGRESS')
              throw new InvalidArgumentError('packet_out.direction', 'a packet-out goes INGRESS (into the cube) or EGRESS (out of the port)');
            await ctx.slowPath.packetOut(session, {
              cube: out.cube,
              port: out.port,
              direction: out.direction === 'DIRECTION_EGRESS' ? 'egress' : 'ingress',
              packet: out.packet,
              user: out.user,
            });
          } catch (err) {
            queue.push({ packetOutError: { id: out.id, message: (err as Error).message } });
            pump().catch(() => undefined);
          }
        }
      } finally {
        detach();
        ctx.log.info('controller disconnected', { controller: session.name });
      }
    }),
  };
}
