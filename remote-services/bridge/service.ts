// The control plane of bridge cubes (bpf/cubes/bridge.bpf.c). The fast path learns
// and forwards by itself; this service
//   - writes the tables config decides: aging time (bridge_config), each port's
//     VLAN mode (bridge_ports) and the VLANs a trunk with a list carries
//     (bridge_trunk_vlans);
//   - floods the frames the fast path cannot (FLOOD: under XDP, which cannot copy
//     a frame, or when several ports lead to other cubes), with one packet-out per
//     port of the frame's VLAN, tagged or not as the port wants;
//   - ages the FDB: entries not seen for the aging time are deleted (the fast path
//     already ignores them; this frees their room);
//   - shows the FDB, MACs formatted, through the config API's GetState.

import type { BridgeConfig__Output as BridgeConfig } from '@netcube/api/generated/netcube/bridge/v1/BridgeConfig';
import type { BridgePort__Output } from '@netcube/api/generated/netcube/bridge/v1/BridgePort';
import { ConfigError, defineService, type Cube } from '@netcube/sdk';
import { ethernet, EtherType } from '@netcube/sdk/packet';

/** bridge_reason in bridge.bpf.c */
const REASON_FLOOD = 1;
const MODES = { plain: 'BRIDGE_PORT_PLAIN', access: 'BRIDGE_PORT_ACCESS', trunk: 'BRIDGE_PORT_TRUNK' } as const;
/** enum bridge_port_flags */
const PORT_F_ALLOWED = 1;

interface FdbKey {
  mac: string;
  vlan: number;
}
interface FdbEntry {
  port: number;
  seen_ns: number | string;
}

type Bridge = Cube<BridgeConfig>;

const portConfig = (cube: Bridge, port: string): BridgePort__Output => cube.config.ports[port] ?? { mode: 'plain', vlan: 0, allowedVlans: [] };

/** A trunk's allowed VLANs as struct bridge_vlan_set: VLAN v is bit v % 64 of word v / 64. */
function vlanSet(vlans: number[]): { word: string[] } {
  const word = new Array<bigint>(64).fill(0n);
  for (const v of vlans) word[v >> 6] |= 1n << BigInt(v & 63);
  return { word: word.map(String) };
}

/** How a frame of `vlan` leaves through a port: 'untagged', 'tagged', or undefined (not at all); as egress_tagging(). */
function egressTagging(p: BridgePort__Output, vlan: number): 'untagged' | 'tagged' | undefined {
  switch (p.mode) {
    case 'access':
      return p.vlan === vlan ? 'untagged' : undefined;
    case 'trunk':
      if (vlan === p.vlan) return 'untagged';
      return p.allowedVlans.length === 0 || p.allowedVlans.includes(vlan) ? 'tagged' : undefined;
    default:
      return vlan === 0 ? 'untagged' : 'tagged';
  }
}

/** The frame without its 802.1Q tag, if it has one (XDP hands frames over tagged, TC without). */
function untagged(frame: Buffer): Buffer {
  if (frame.length < 18 || frame.readUInt16BE(12) !== EtherType.VLAN) return frame;
  return Buffer.concat([frame.subarray(0, 12), frame.subarray(16)]);
}

function tagged(frame: Buffer, vlan: number): Buffer {
  return ethernet({ dst: frame.subarray(0, 6), src: frame.subarray(6, 12), vlan: { id: vlan }, ethertype: frame.readUInt16BE(12), payload: frame.subarray(14), minLength: 0 });
}

export default defineService<BridgeConfig>({
  type: 'bridge',
  config: { proto: 'netcube/bridge/v1/bridge.proto', message: 'netcube.bridge.v1.BridgeConfig' },

  validate(config, cube) {
    if (config.agingSeconds < 1) throw new ConfigError('agingSeconds', 'must be at least 1 second');
    for (const [name, p] of Object.entries(config.ports)) {
      if (!cube.portNames.includes(name)) throw new ConfigError(`ports.${name}`, `cube ${cube.name} has no port ${name} (its ports: ${cube.portNames.join(', ')})`);
      if (p.mode === 'access' && (p.vlan < 1 || p.vlan > 4094)) throw new ConfigError(`ports.${name}.vlan`, `an access port needs its VLAN, 1 to 4094, got ${p.vlan}`);
      if (p.mode === 'trunk' && p.vlan > 4094) throw new ConfigError(`ports.${name}.vlan`, `a trunk's native VLAN is 1 to 4094 (0: none), got ${p.vlan}`);
      if (p.mode === 'plain' && p.vlan !== 0) throw new ConfigError(`ports.${name}.vlan`, 'a plain port is VLAN-unaware: give no vlan, or make it access or trunk');
      if (p.mode !== 'trunk' && p.allowedVlans.length > 0) throw new ConfigError(`ports.${name}.allowedVlans`, `only a trunk has allowed VLANs; this port is ${p.mode}`);
      p.allowedVlans.forEach((v, i) => {
        if (v < 1 || v > 4094) throw new ConfigError(`ports.${name}.allowedVlans[${i}]`, `a VLAN is 1 to 4094, got ${v}`);
        if (p.allowedVlans.indexOf(v) !== i) throw new ConfigError(`ports.${name}.allowedVlans[${i}]`, `VLAN ${v} is listed twice`);
      });
    }
  },

  // Written in this order: a trunk's VLAN set is there before its port says to use it.
  staticTables: (cube) => ({
    bridge_config: [{ key: 0, value: { aging_ns: String(BigInt(cube.config.agingSeconds) * 1_000_000_000n) } }],
    bridge_trunk_vlans: Object.entries(cube.config.ports)
      .filter(([, p]) => p.allowedVlans.length > 0)
      .map(([name, p]) => ({ key: cube.port(name).index, value: vlanSet(p.allowedVlans) })),
    bridge_ports: Object.entries(cube.config.ports)
      .filter(([, p]) => p.mode !== 'plain')
      .map(([name, p]) => ({ key: cube.port(name).index, value: { mode: MODES[p.mode], vlan: p.vlan, flags: p.allowedVlans.length > 0 ? PORT_F_ALLOWED : 0 } })),
  }),

  packetIn(cube, pkt) {
    if (pkt.reason !== REASON_FLOOD || pkt.frame.length < pkt.wireLength) return;
    const vlan = pkt.user[0];
    const frame = untagged(pkt.frame);
    for (const out of cube.ports) {
      if (out.name === pkt.port.name || !out.peer) continue;
      const how = egressTagging(portConfig(cube, out.name), vlan);
      if (how) cube.packetOut(out.name, 'egress', how === 'tagged' ? tagged(frame, vlan) : frame);
    }
  },

  tickSeconds: 1,
  async tick(cube) {
    const fdb = cube.table<FdbKey, FdbEntry>('fdb');
    const ports = new Set(cube.ports.map((p) => p.index));
    for (const { key, value } of await fdb.list()) {
      if (cube.clock.ageSeconds(value.seen_ns) > cube.config.agingSeconds || !ports.has(value.port)) await fdb.delete(key);
    }
  },

  async describe(cube) {
    const entries = await cube.table<FdbKey, FdbEntry>('fdb').list();
    return {
      agingSeconds: cube.config.agingSeconds,
      clock: cube.clock.source,
      fdb: entries
        .map(({ key, value }) => ({ mac: key.mac, vlan: key.vlan, port: cube.portAt(value.port)?.name ?? `#${value.port}`, ageSeconds: Math.round(cube.clock.ageSeconds(value.seen_ns) * 10) / 10 }))
        .sort((a, b) => (a.mac < b.mac ? -1 : a.mac > b.mac ? 1 : a.vlan - b.vlan)),
    };
  },
});
