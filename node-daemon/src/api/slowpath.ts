// SlowPathService: a controller's session with this host (see slowpath.proto and
// node-daemon/src/slowpath/dispatcher.ts). The first message says what it
// controls, which its identity must allow (authz.ts: the admin anything, a service
// its own type); then packet-ins flow to it and packet-outs come back on one stream.
//
// Both ways go in batches, which is what makes the slow path fast: a gRPC message
// costs far more than a packet in it. Packet-ins wait in a bounded queue; one pump
// writes them in order, each message carrying everything that waited (at most
// MAX_BATCH), so an idle stream sends a packet at once and a busy one sends few
// large messages. Packet-outs of a batch go to the data plane one after the other,
// synchronously.

import { Long } from '@grpc/proto-loader';
import { Rpc } from '@netcube/api/grpc/call';
import type { ControllerMessage__Output } from '@netcube/api/generated/netcube/v1/ControllerMessage';
import type { DaemonMessage } from '@netcube/api/generated/netcube/v1/DaemonMessage';
import type { PacketIn as PacketInMessage } from '@netcube/api/generated/netcube/v1/PacketIn';
import type { PacketOut__Output } from '@netcube/api/generated/netcube/v1/PacketOut';
import type { PacketOutError } from '@netcube/api/generated/netcube/v1/PacketOutError';
import type { SlowPathServiceHandlers } from '@netcube/api/generated/netcube/v1/SlowPathService';
import { InvalidArgumentError } from '../runtime/errors';
import { ControllerSession, PacketIn } from '../slowpath/dispatcher';
import { Authorizer } from './authz';
import { ApiContext } from './context';
import { checkName } from './cubes';

/** Packet-ins held for a controller that reads slowly; past this they are dropped and counted. */
export const MAX_QUEUED = 4096;
/** Packet-ins in one message at most: about 400 kB of full-size packets. */
export const MAX_BATCH = 256;
/** Errors of refused packet-outs held for a controller that reads slowly; past this they are dropped (the refusals are counted anyway). */
export const MAX_QUEUED_ERRORS = 256;

export function slowPathService(ctx: ApiContext, rpc: Rpc, authz: Authorizer): SlowPathServiceHandlers {
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
      authz.authorizeSlowPath(call.identity, types, cubes);

      let queue: PacketInMessage[] = [];
      /** Packet-ins dropped since the last message (the queue was full): told in the next. */
      let dropped = 0;
      const errors: PacketOutError[] = [];
      let pumping = false;
      let welcomed = false;
      // Started in a microtask, so that every packet of one read of the ring goes
      // in the first message; it then runs until the queues are empty.
      const pump = async (): Promise<void> => {
        try {
          while (errors.length > 0 || queue.length > 0) {
            if (errors.length > 0) {
              await send({ packetOutError: errors.shift() });
              continue;
            }
            let packets = queue;
            if (packets.length > MAX_BATCH) {
              packets = queue.slice(0, MAX_BATCH);
              queue = queue.slice(MAX_BATCH);
            } else {
              queue = [];
            }
            ctx.slowPath.release(packets.length);
            const lost = dropped;
            dropped = 0;
            await send({ packetIns: { packets, dropped: lost } });
          }
        } finally {
          pumping = false;
        }
      };
      const kick = (): void => {
        if (pumping || !welcomed) return;
        pumping = true;
        queueMicrotask(() => void pump().catch(() => undefined));
      };
      const session: ControllerSession = {
        name: `${hello.controller || 'controller'} (${call.identity.name})`,
        types,
        cubes,
        mayControl: (type) => authz.mayControl(call.identity, type),
        deliver: (p: PacketIn) => {
          // Its own queue, and the host's bound on what all sessions hold together.
          if (queue.length >= MAX_QUEUED || !ctx.slowPath.hold()) {
            dropped++;
            return false;
          }
          queue.push({
            cube: p.cube,
            port: p.port,
            reason: p.reason,
            user: p.user,
            packet: p.packet,
            wireLength: p.wireLength,
            // As a Long from its halves: much cheaper for the encoder than a decimal string.
            timestampNs: Long.fromBits(Number(p.timestampNs & 0xffffffffn), Number(p.timestampNs >> 32n), true),
          });
          kick();
          return true;
        },
        hasRoom: () => queue.length <= MAX_QUEUED / 2,
      };
      const refuse = (out: PacketOut__Output, err: unknown): void => {
        if (errors.length >= MAX_QUEUED_ERRORS) return;
        errors.push({ id: out.id, message: (err as Error).message });
        kick();
      };
      const detach = ctx.slowPath.attach(session);
      ctx.log.info('controller connected', { controller: session.name, types: [...types], cubes: [...cubes] });
      try {
        await send({ welcome: { host: ctx.host, cubes: ctx.slowPath.cubesOf(session) } });
        welcomed = true;
        kick();
        for (let m = await messages.next(); !m.done; m = await messages.next()) {
          const batch = m.value.packetOuts?.packets;
          if (m.value.kind !== 'packetOuts' || !batch) continue;
          // Only until the inject veth the daemon sets up at start is there.
          const ready = ctx.slowPath.whenPacketOutReady();
          if (ready) await ready;
          for (const out of batch) {
            try {
              if (out.direction !== 'DIRECTION_INGRESS' && out.direction !== 'DIRECTION_EGRESS')
                throw new InvalidArgumentError('packet_out.direction', 'a packet-out goes INGRESS (into the cube) or EGRESS (out of the port)');
              ctx.slowPath.packetOut(session, {
                cube: out.cube,
                port: out.port,
                direction: out.direction === 'DIRECTION_EGRESS' ? 'egress' : 'ingress',
                packet: out.packet,
                user: out.user,
              });
            } catch (err) {
              refuse(out, err);
            }
          }
        }
      } finally {
        detach();
        ctx.slowPath.release(queue.length);
        queue = [];
        ctx.log.info('controller disconnected', { controller: session.name });
      }
    }),
  };
}
