// A host's runtime as the API's messages: cubes, topology, tables. The conversions
// both ends use (enums, endpoints, JSON) are @netcube/api's grpc/convert.ts.

import type { StoredChain } from '@netcube/api';
import type { Cube } from '@netcube/api/generated/netcube/v1/Cube';
import type { Endpoint } from '@netcube/api/generated/netcube/v1/Endpoint';
import type { TableInfo } from '@netcube/api/generated/netcube/v1/TableInfo';
import type { Topology } from '@netcube/api/generated/netcube/v1/Topology';
import { directionToProto, jsonToStruct, logLevelToProto, modeToProto } from '@netcube/api/grpc/convert';
import type { BtfType } from '@netcube/api/btf';
import { Runtime } from '../runtime/runtime';
import { Endpoint as RuntimeEndpoint, endpointName } from '../runtime/topology';
import { TableInfo as RuntimeTableInfo } from '../runtime/types';

export function runtimeEndpointToProto(e: RuntimeEndpoint): Endpoint {
  return 'netdev' in e ? { netdev: e.netdev } : { port: { cube: e.cube, port: e.port } };
}

// ---------------------------------------------------------------- cubes, topology

/** Which chain a cube belongs to, as far as this host knows (nothing before etcd was reached). */
export function chainOf(chains: StoredChain[], cube: string): { chain: StoredChain; index: number } | undefined {
  for (const chain of chains) {
    const index = chain.chain.spec.cubes.findIndex((c) => c.name === cube);
    if (index >= 0) return { chain, index };
  }
  return undefined;
}

/** A cube as this host runs it; throws the runtime's NotFoundError when it does not. */
export function cubeMessage(runtime: Runtime, applied: StoredChain[], name: string): Cube {
  const cube = runtime.cube(name);
  const topology = runtime.topology();
  const spec = topology.cubes.find((c) => c.name === name);
  const peerOf = (port: string): Endpoint | null => {
    const self = endpointName({ cube: name, port });
    for (const l of topology.links) {
      if (endpointName(l.a) === self) return runtimeEndpointToProto(l.b);
      if (endpointName(l.b) === self) return runtimeEndpointToProto(l.a);
    }
    return null;
  };
  let attachment: Cube['attachment'] = null;
  for (const s of topology.stacks) {
    const position = s.layers.findIndex((l) => l.cube === name);
    if (position >= 0) attachment = { target: runtimeEndpointToProto(s.target), direction: directionToProto(s.layers[position].direction), position };
  }
  const owner = chainOf(applied, name);
  const chainSpec = owner?.chain.chain.spec.cubes[owner.index];
  return {
    name,
    type: cube.type.name,
    mode: modeToProto(cube.mode),
    logLevel: logLevelToProto(spec?.logLevel ?? 'info'),
    ports: [...cube.ports]
      .sort((a, b) => a[1] - b[1])
      .map(([port, index]) => {
        const s = runtime.portStats(name, port);
        return {
          name: port,
          index,
          peer: peerOf(port),
          stats: {
            rxPackets: s.rxPackets.toString(),
            rxBytes: s.rxBytes.toString(),
            txPackets: s.txPackets.toString(),
            txBytes: s.txBytes.toString(),
            drops: s.drops.toString(),
            toController: s.toController.toString(),
          },
        };
      }),
    transparent: cube.transparent,
    chain: owner?.chain.name ?? '',
    attachment,
    params: jsonToStruct(chainSpec?.params ?? {}),
    id: cube.id,
    microcubes: [...cube.type.programs],
    replacedMicrocubes: Object.fromEntries(Object.entries(chainSpec?.replacedMicrocubes ?? {}).map(([i, sha]) => [Number(i), sha])),
    tableSizes: { ...cube.tableSizes },
  };
}

export function topologyMessage(runtime: Runtime, applied: StoredChain[]): Topology {
  const t = runtime.topology();
  return {
    cubes: runtime.cubeNames().map((name) => cubeMessage(runtime, applied, name)),
    links: t.links.map((l) => ({ a: runtimeEndpointToProto(l.a), b: runtimeEndpointToProto(l.b) })),
    stacks: t.stacks.map((s) => ({ target: runtimeEndpointToProto(s.target), layers: s.layers.map((l) => ({ cube: l.cube, direction: directionToProto(l.direction) })) })),
  };
}

// ---------------------------------------------------------------- tables

/** BTF as JSON: bigints (enum64 values) as decimal strings. */
export function btfJson(type: BtfType | undefined): string {
  return type ? JSON.stringify(type, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) : '';
}

export function tableInfoMessage(t: RuntimeTableInfo, btf: { keyType?: BtfType; valueType?: BtfType }): TableInfo {
  return {
    name: t.name,
    scope: t.scope,
    mapType: t.mapType,
    keySize: t.keySize,
    valueSize: t.valueSize,
    maxEntries: t.maxEntries,
    keyTypeJson: btfJson(btf.keyType),
    valueTypeJson: btfJson(btf.valueType),
  };
}
