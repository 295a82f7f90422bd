// The control plane of nat cubes (bpf/cubes/nat.bpf.c). The fast path translates
// and picks ports by itself; this service
//   - compiles the SNAT and DNAT rules (tables.ts) into their tables; masquerade
//     takes the address of the port the nat sits on, from the config of that
//     port's router in the chain (and again when it changes);
//   - shows the NAT table as translations, with the cube's counters, through GetState;
//   - deletes expired flows: their conntrack entries and their two sessions (control.ts).

import type { CubeSpec } from '@netcube/api/chain';
import type { NatConfig__Output as NatConfig } from '@netcube/api/generated/netcube/nat/v1/NatConfig';
import { checked, collectNatFlows, conntrackConfig, counterTotals, listedOnce, type GcResult } from '@netcube/catalog/control';
import { parseAddress } from '@netcube/catalog/fields';
import { ConfigError, defineService, type Cube, type CubeInfo } from '@netcube/sdk';
import { compileNat, translations } from './tables';

export interface NatState {
  gc?: GcResult & { at: string };
}

type Nat = Cube<NatConfig, NatState>;

/** nat.bpf.c's enum nat_counter. */
const COUNTERS = ['newSnat', 'newDnat', 'noPort', 'invalid', 'icmpErrors'] as const;
/** Translations GetState lists at most; the table itself: netcubectl table dump CUBE nat_sessions. */
const MAX_LISTED = 16_384;

/**
 * GetState of a cube whose flows are nat.h's sessions (the nat cube's, the
 * k8sdispatcher's): its counters (`counters`, indexes named by `names`), its
 * translations (the first MAX_LISTED) and what the last collection did.
 */
export async function natSessionsState(cube: Cube<unknown, NatState>, counters: string, names: readonly string[]) {
  const all = translations(await listedOnce(cube, 'nat_sessions'));
  return {
    counters: await counterTotals(cube, counters, names),
    flows: all.length,
    translations: all.slice(0, MAX_LISTED),
    ...(cube.state.gc && { conntrack: cube.state.gc }),
  };
}

/** The router port a nat cube sits on: the one it is stacked on, or the one linked to the netdev it is stacked on. */
function egressPort(info: CubeInfo): { cube: CubeSpec; port: string } | string {
  const spec = info.chainSpec;
  const at = spec.attachments.find((a) => a.cube === info.name);
  if (!at) return `nat ${info.name} is not stacked anywhere in chain ${info.chain}`;
  const hostOf = (endpoint: string): string | undefined => spec.cubes.find((c) => c.name === endpoint.split(':')[0])?.host;
  let port = at.to;
  if (port.startsWith('netdev:')) {
    const ifname = port.slice('netdev:'.length);
    const link = spec.links.find(
      (l) => (l.to === port && !l.via && hostOf(l.from) === info.host) || (l.from === port && !l.via && hostOf(l.to) === info.host) || (l.via?.from === ifname && hostOf(l.from) === info.host) || (l.via?.to === ifname && hostOf(l.to) === info.host),
    );
    if (!link) return `netdev ${ifname}, which nat ${info.name} is stacked on, is linked to no cube port in chain ${info.chain}`;
    port = link.to === port || link.via?.to === ifname ? link.from : link.to;
  }
  const [cubeName, portName] = port.split(':');
  const cube = spec.cubes.find((c) => c.name === cubeName);
  if (!cube) return `cube ${cubeName} is not in chain ${info.chain}`;
  return { cube, port: portName };
}

/** The address masquerade takes, per family, or why there is none. */
function masqueradeAddress(info: CubeInfo): { ipv4?: string; ipv6?: string } | string {
  const at = egressPort(info);
  if (typeof at === 'string') return at;
  const ports = at.cube.params.ports;
  const port = ports && typeof ports === 'object' && !Array.isArray(ports) ? ports[at.port] : undefined;
  const address = port && typeof port === 'object' && !Array.isArray(port) ? port.address : undefined;
  if (typeof address !== 'string') return `port ${at.port} of ${at.cube.type} ${at.cube.name}, where nat ${info.name} sits, has no address in its config`;
  const text = address.split('/')[0];
  try {
    const a = parseAddress(text, 'address');
    return a.family === 4 ? { ipv4: text } : { ipv6: text };
  } catch {
    return `port ${at.port} of ${at.cube.name} has the address ${JSON.stringify(address)}, which is not one`;
  }
}

/** The config's rules compiled, masquerade resolved; throws ConfigError. */
function compile(config: NatConfig, info: CubeInfo) {
  let masquerade: ReturnType<typeof masqueradeAddress> | undefined;
  config.snat.forEach((r, i) => {
    if (!r.masquerade) return;
    masquerade ??= masqueradeAddress(info);
    if (typeof masquerade === 'string') throw new ConfigError(`snat[${i}].masquerade`, `${masquerade}: give the rule an address (to) instead`);
  });
  return checked(() => compileNat({ snat: config.snat, dnat: config.dnat }, { masqueradeAddress: typeof masquerade === 'object' ? masquerade : undefined }));
}

export default defineService<NatConfig, NatState>({
  type: 'nat',
  config: { proto: 'netcube/nat/v1/nat.proto', message: 'netcube.nat.v1.NatConfig' },
  state: (): NatState => ({}),

  validate(config, cube) {
    compile(config, cube);
  },

  staticTables: (cube) => ({ ...compile(cube.config, cube), nat_ct_config: conntrackConfig(cube.config.conntrack) }),

  tickSeconds: 5,
  async tick(cube) {
    cube.state.gc = await collectNatFlows(cube);
  },

  async describe(cube: Nat) {
    const masquerade = cube.config.snat.some((r) => r.masquerade) ? masqueradeAddress(cube) : undefined;
    return { ...(masquerade !== undefined && { masquerade }), ...(await natSessionsState(cube, 'nat_counters', COUNTERS)) };
  },
});
