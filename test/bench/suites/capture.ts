// What an idle packetcapture cube (stacked, no capture running) costs a packet:
// ns/packet of the netdev entry by BPF_PROG_TEST_RUN, on a line of one nop cube
// from in0 to out0, without the capture cube and with it stacked on in0's ingress.
// The sides alternate over rounds; the ratio is taken within a round and the
// median reported. The cube is stacked for as long as the chain says, so a packet
// pays its hop whether a capture runs or not; only the copying waits for one.
//   capture.idle.ns           ns/packet with the idle capture cube
//   capture.idle.cost_ratio   ns without / ns with (1: it costs nothing)
import type { Topology } from '../../../node-daemon/src/runtime/topology';
import { lineTopology } from '../../helpers/chains';
import { openTestbed } from '../../helpers/testbed';
import type { Result, Suite } from '../report';
import { openBenchRuntime } from '../runtime';
import { entryNs } from './catalog';

const ROUNDS = Number(process.env.NC_BENCH_CAPTURE_ROUNDS ?? 5);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export const suite: Suite = {
  name: 'capture',
  description: 'what an idle packetcapture cube costs a packet',
  async run(ctx) {
    const bed = await openTestbed({ mode: 'xdp' });
    try {
      const rt = await openBenchRuntime(bed);
      try {
        const line = lineTopology('xdp', [{ name: 'out', type: 'nop' }], bed.in, bed.outs[0]);
        const cap = { name: 'cap', type: 'packetcapture', mode: 'xdp' as const, ports: [], logLevel: 'info' as const };
        const without: Topology = { ...line, cubes: [...line.cubes, cap] };
        const withCapture: Topology = { ...without, stacks: [{ target: { netdev: bed.in }, layers: [{ cube: 'cap', direction: 'ingress' }] }] };
        const ns = { without: [] as number[], with: [] as number[] };
        for (let round = 1; round <= ROUNDS; round++) {
          await rt.apply(without);
          ns.without.push(await entryNs(bed, rt));
          await rt.apply(withCapture);
          ns.with.push(await entryNs(bed, rt));
          ctx.log(`round ${round}/${ROUNDS}: ${ns.without[round - 1].toFixed(1)} ns without, ${ns.with[round - 1].toFixed(1)} ns with the idle capture cube`);
        }
        const ratio = median(ns.without.map((w, i) => w / ns.with[i]));
        const results: Result[] = [
          { name: 'capture.idle.ns', value: median(ns.with), unit: 'ns/packet', baseline: median(ns.without) },
          {
            name: 'capture.idle.cost_ratio',
            value: ratio,
            unit: 'x',
            note: `entry + nop: ${median(ns.without).toFixed(1)} ns; with an idle packetcapture stacked on the ingress: ${median(ns.with).toFixed(1)} ns (a cube hop more: the tail call and the framework's per-cube work, then one lookup and a compare); medians of ${ROUNDS} rounds`,
          },
        ];
        return results;
      } finally {
        await rt.destroy();
      }
    } finally {
      await bed.close();
    }
  },
};
