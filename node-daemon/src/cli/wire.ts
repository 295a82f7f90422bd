// The API's messages as netcubectl shows them: enums and endpoints in the words of
// chains (tc, ingress, netdev:eth0), params as JSON. The conversions are the API's own.

import { directionFromProto, endpointFromProto, logLevelFromProto, modeFromProto, structToJson } from '@netcube/api/grpc/convert';
import type { Cube, Topology } from '@netcube/api/grpc/client';
import type { Endpoint__Output } from '@netcube/api/generated/netcube/v1/Endpoint';

/** `cube:port` or `netdev:ifname`; `-` for none. */
export function endpointText(e: Endpoint__Output | null | undefined): string {
  return e?.kind ? endpointFromProto(e, 'endpoint') : '-';
}

/** A cube as JSON and YAML show it: the message with readable enums and plain params. */
export function cubeView(cube: Cube) {
  return {
    name: cube.name,
    type: cube.type,
    mode: modeFromProto(cube.mode, 'mode'),
    logLevel: logLevelFromProto(cube.logLevel, 'logLevel') ?? 'info',
    transparent: cube.transparent,
    chain: cube.chain,
    id: cube.id,
    microcubes: cube.microcubes,
    replacedMicrocubes: cube.replacedMicrocubes,
    tableSizes: cube.tableSizes,
    params: structToJson(cube.params),
    ports: cube.ports.map(p => ({ name: p.name, index: p.index, peer: endpointText(p.peer), stats: p.stats ?? undefined })),
    attachment: cube.attachment
      ? { target: endpointText(cube.attachment.target), direction: directionFromProto(cube.attachment.direction, 'direction'), position: cube.attachment.position }
      : undefined,
  };
}

export type CubeView = ReturnType<typeof cubeView>;

export function topologyView(topology: Topology) {
  return {
    cubes: topology.cubes.map(cubeView),
    links: topology.links.map(l => ({ a: endpointText(l.a), b: endpointText(l.b) })),
    stacks: topology.stacks.map(s => ({
      target: endpointText(s.target),
      layers: s.layers.map(l => ({ cube: l.cube, direction: directionFromProto(l.direction, 'direction') })),
    })),
  };
}

export type TopologyView = ReturnType<typeof topologyView>;
