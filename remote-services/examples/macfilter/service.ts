// The control plane of macfilter cubes (the tutorial's; see remote-services/README.md).
import type { MacFilterConfig__Output as Config } from '@netcube/api/generated/netcube/macfilter/v1/MacFilterConfig';
import { ConfigError, defineService } from '@netcube/sdk';
import { macBytes, macText } from '@netcube/sdk/codec';
import { parseFrame, parseMac } from '@netcube/sdk/packet';

const macKey = (mac: string) => ({ mac: macBytes(mac), pad: 0 });

export default defineService<Config>({
  type: 'macfilter',
  config: { proto: 'netcube/macfilter/v1/macfilter.proto', message: 'netcube.macfilter.v1.MacFilterConfig' },
  objects: { xdp: 'build/macfilter/macfilter.xdp.o', tc: 'build/macfilter/macfilter.tc.o' },

  validate(config, cube) {
    if (cube.portNames.length !== 2) throw new ConfigError('', `a macfilter has two ports, ${cube.name} has ${cube.portNames.length}`);
    config.blocked.forEach((mac, i) => {
      try {
        parseMac(mac);
      } catch (err) {
        throw new ConfigError(`blocked[${i}]`, (err as Error).message);
      }
    });
  },

  staticTables: (cube) => {
    const [a, b] = cube.ports;
    return {
      wiring: [{ key: a.index, value: b.index }, { key: b.index, value: a.index }],
      blocked: cube.config.blocked.map((mac) => ({ key: macKey(mac), value: 1 })),
    };
  },

  // A source seen for the first time: note it, and send its frame on through the fast path.
  async packetIn(cube, pkt) {
    const src = parseFrame(pkt.frame).eth?.src;
    if (!src) return;
    await cube.table('seen').put(macKey(src), cube.clock.now().toString());
    cube.packetOut(pkt.port.name, 'ingress', pkt.frame);
  },

  async describe(cube) {
    const seen = await cube.table<{ mac: number[] }, number>('seen').list();
    return { seen: seen.map((e) => macText(e.key.mac)).sort() };
  },
});
