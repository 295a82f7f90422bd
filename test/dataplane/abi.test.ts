// The data-plane ABI seen from both sides: every number and layout of
// node-daemon/src/runtime/abi.ts against the BTF of the compiled objects
// (bpf/include/netcube/abi.h), so that the two cannot drift apart unnoticed. The
// records themselves (log, slow path, packet-out, metadata) are decoded from
// what the data plane really writes in helpers.test.ts and framework.test.ts.
import * as path from 'node:path';
import test from 'ava';
import { MAX_PORTS as CHAIN_MAX_PORTS } from '@netcube/api/chain';
import { CollectionSpec, type BtfType } from '../../node-daemon/src/bpf';
import {
  CUBE_CFG_SIZE,
  ERR_MAX,
  GENERATIONS,
  MAX_MICROCUBES,
  MAX_PORTS,
  PEER_F_FUSED,
  PEER_F_REDIRECT_PEER,
  CUBE_STATS_SIZE,
  PORT_STATS_SIZE,
  PROG_SLOTS,
  decodePeer,
  encodePeer,
  type Peer,
} from '../../node-daemon/src/runtime/abi';
import { DEFAULT_OBJECTS_DIR } from '../../node-daemon/src/runtime/runtime';
import { CUBE_MAPS, HOST_MAPS, NETDEV_MAPS } from '../../node-daemon/src/runtime/types';

const members = (t: BtfType | undefined): [string, number][] =>
  t?.kind === 'struct' ? t.members.map((m) => [m.name, m.offset]) : [];

for (const mode of ['xdp', 'tc'] as const) {
  test(`${mode}: the framework maps of a cube object are what the runtime creates and reads`, (t) => {
    const spec = CollectionSpec.fromFile(path.join(DEFAULT_OBJECTS_DIR, 'cubes', `nop.${mode}.o`));
    t.teardown(() => spec.close());
    const map = (name: string) => spec.maps.get(name)!;
    for (const name of [...HOST_MAPS, ...CUBE_MAPS, ...NETDEV_MAPS]) t.truthy(spec.maps.get(name), name);

    t.like(map('.data.nc_gen'), { type: 'array', keySize: 4, valueSize: 8, maxEntries: 1, internal: true });
    t.like(map('nc_errors'), { type: 'percpu_array', keySize: 4, valueSize: 8, maxEntries: ERR_MAX });
    t.like(map('.data.nc_ports'), { type: 'array', keySize: 4, valueSize: 8 * GENERATIONS * MAX_PORTS, maxEntries: 1, internal: true });
    t.is(CHAIN_MAX_PORTS, MAX_PORTS, 'a chain holds a cube to the ports the data plane has');
    t.like(map('nc_stats'), { type: 'percpu_array', valueSize: CUBE_STATS_SIZE, maxEntries: 1 });
    t.like(map('nc_cfg'), { type: 'array', valueSize: CUBE_CFG_SIZE, maxEntries: 1 });
    t.like(map('nc_peer_progs'), { type: 'prog_array', keySize: 4, valueSize: 4, maxEntries: GENERATIONS * MAX_PORTS });
    t.like(map('nc_micro'), { type: 'prog_array', keySize: 4, valueSize: 4, maxEntries: MAX_MICROCUBES });
    // What the runtime creates for each netdev entry (netdev.ts).
    t.like(map('.data.nc_netdev'), { type: 'array', keySize: 4, valueSize: 8 * GENERATIONS, maxEntries: 1, internal: true });
    t.like(map('nc_netdev_progs'), { type: 'prog_array', keySize: 4, valueSize: 4, maxEntries: GENERATIONS });

    // The order sumPortStats and encodeCubeConfig assume.
    const all = map('nc_stats').valueType;
    const port = all?.kind === 'struct' && all.members[0].type.kind === 'array' ? all.members[0].type : undefined;
    t.like(port, { kind: 'array', length: MAX_PORTS, size: CUBE_STATS_SIZE });
    t.is(port?.elem.size, PORT_STATS_SIZE);
    t.deepEqual(members(port?.elem), [
      ['rx_packets', 0], ['rx_bytes', 8], ['tx_packets', 16], ['tx_bytes', 24], ['drops', 32], ['to_controller', 40],
    ]);
    t.deepEqual(members(map('nc_cfg').valueType), [['log_level', 0], ['pkt_rate', 4], ['pkt_burst', 8], ['pkt_held', 12]]);
    t.is(spec.variables.get('nc_cube_id')?.size, 4);
  });

  test(`${mode}: packet-out's prog array holds an entry per cube id`, (t) => {
    const spec = CollectionSpec.fromFile(path.join(DEFAULT_OBJECTS_DIR, 'framework', `inject.${mode}.o`));
    t.teardown(() => spec.close());
    t.like(spec.maps.get('nc_progs'), { type: 'prog_array', keySize: 4, valueSize: 4, maxEntries: PROG_SLOTS });
  });
}

test('peer words: kind in bits 63..56, a cube\'s in-port in 55..48, flags in 47..40, target in 31..0', (t) => {
  const cases: [Peer, bigint][] = [
    [{ kind: 'none' }, 0n],
    [{ kind: 'stack' }, 3n << 56n],
    [{ kind: 'netdev', ifindex: 7 }, (1n << 56n) | 7n],
    [{ kind: 'netdev', ifindex: 7, redirectPeer: true }, (1n << 56n) | (BigInt(PEER_F_REDIRECT_PEER) << 40n) | 7n],
    [{ kind: 'cube', slot: 8 * 4095, port: 31 }, (2n << 56n) | (31n << 48n) | BigInt(8 * 4095)],
    [{ kind: 'cube', slot: 8, port: 1, fused: true }, (2n << 56n) | (1n << 48n) | (BigInt(PEER_F_FUSED) << 40n) | 8n],
  ];
  for (const [peer, word] of cases) {
    t.is(encodePeer(peer), word, JSON.stringify(peer));
    t.deepEqual(decodePeer(word), peer);
  }
  // The flag leaves what the data plane reads of the word otherwise alone (nc_peer_kind, nc_peer_target).
  const flagged = encodePeer({ kind: 'netdev', ifindex: 0xffffffff, redirectPeer: true });
  t.is(Number(flagged >> 56n), 1);
  t.is(Number(flagged & 0xffffffffn), 0xffffffff);
});
