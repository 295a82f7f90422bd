// The slow-path stream of one host, as the SDK uses it: netcubed's
// SlowPathService.Connect through the daemon's client (NetcubeClient.openSlowPath).

import type { CallOptions, NetcubeClient } from '../../node-daemon/src/api/client';
import type { DaemonMessage__Output } from '../../node-daemon/src/api/generated/netcube/v1/DaemonMessage';

export type DaemonMessage = DaemonMessage__Output;

export interface PacketOutMessage {
  cube: string;
  port: string;
  direction: 'DIRECTION_INGRESS' | 'DIRECTION_EGRESS';
  packet: Buffer;
  user?: number[];
  id?: string;
}

export interface SlowPathStream extends AsyncIterable<DaemonMessage> {
  packetOut(p: PacketOutMessage): void;
  close(): void;
}

export interface Hello {
  controller: string;
  types?: string[];
  cubes?: string[];
}

type WithSlowPath = { openSlowPath(hello: Hello, opts?: CallOptions): SlowPathStream };

/** Opens the slow-path stream of the daemon behind `client`. */
export function openSlowPath(client: NetcubeClient, hello: Hello, opts?: CallOptions): SlowPathStream {
  const c = client as unknown as Partial<WithSlowPath>;
  if (typeof c.openSlowPath !== 'function') throw new Error('this NetcubeClient has no openSlowPath(): the slow-path client is missing from node-daemon/src/api/client.ts');
  return c.openSlowPath(hello, opts);
}
