// The kernel's tail-call limit: a chain that fits it to the last call carries
// traffic; one cube more is refused with an error naming the path, and the host
// is left exactly as it was, still forwarding.
import test from 'ava';
import { MAX_TAIL_CALLS } from '../../node-daemon/src/runtime/abi';
import { FailedPreconditionError } from '../../node-daemon/src/runtime/errors';
import type { Runtime } from '../../node-daemon/src/runtime/runtime';
import { lineTopology } from '../helpers/chains';
import { attachments, filledSlots, openRuntime, pins, runProgram, unfusedEntry } from '../helpers/dataplane';
import { createTestbed, type Testbed } from '../helpers/testbed';
import { streamFrame } from '../helpers/traffic';

const nops = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `c${i + 1}`, type: 'nop' }));

async function snapshot(rt: Runtime, bed: Testbed) {
  return {
    topology: rt.topology(),
    cubes: rt.cubeNames(),
    gen: rt.host.currentGen,
    pins: pins(rt),
    slots: filledSlots(rt),
    in0: await attachments(bed.host.name, bed.in),
    out0: await attachments(bed.host.name, bed.outs[0]),
  };
}

for (const mode of ['xdp', 'tc'] as const) {
  test(`${mode}: a chain of ${MAX_TAIL_CALLS} cubes forwards; one more is refused and nothing changes`, async (t) => {
    const bed = await createTestbed(t, { mode });
    const rt = await openRuntime(t, { netns: bed.host.path });

    // The netdev's entry runs c1 itself (fused), then one tail call per further
    // cube: 32 of them.
    await rt.apply(lineTopology(mode, nops(MAX_TAIL_CALLS), bed.in, bed.outs[0]));
    await bed.generator.send(1000);
    t.is(await bed.sinks[0].settle(1000), 1000);
    // While a netdev's first cube changes, its packets take the entry's general
    // way, a tail call into c1: one per cube, exactly the kernel's limit.
    const unfused = await unfusedEntry(rt, bed.in, mode);
    t.teardown(() => unfused.close());
    t.is((await runProgram(unfused.program('nc_netdev'), mode, streamFrame())).verdict, 'redirect');
    t.deepEqual(rt.host.errorCounts(), new Array(8).fill(0n));
    const before = await snapshot(rt, bed);

    const error = await t.throwsAsync(rt.apply(lineTopology(mode, nops(MAX_TAIL_CALLS + 1), bed.in, bed.outs[0])), {
      instanceOf: FailedPreconditionError,
    });
    // The path as far as it goes: up to the cube that would need the 34th call.
    const path = ['netdev:in0', ...nops(MAX_TAIL_CALLS + 1).map((c) => c.name)].join(' -> ');
    t.is(error?.message, `path ${path} needs ${MAX_TAIL_CALLS + 1} tail calls, the kernel allows ${MAX_TAIL_CALLS}; split the chain across hosts or shorten it`);

    t.deepEqual(await snapshot(rt, bed), before);
    await bed.generator.send(1000);
    const received = await bed.sinks[0].settle(2000);
    t.deepEqual(await bed.drops(), {});
    t.is(received, 2000);
  });
}
