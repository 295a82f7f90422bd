// Transient layers (a capture session's packetcapture cube on a port or a netdev):
// kept on top of every topology applied while their target stays, one per target,
// removed when asked, when an apply drops their target (the session told why), and
// by a runtime that opens where an earlier one left them (a daemon killed during a
// capture), without etcd or anything else to say so.
import test from 'ava';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../node-daemon/src/runtime/errors';
import { Endpoint, emptyTopology } from '../../node-daemon/src/runtime/topology';
import { lineTopology } from '../helpers/chains';
import { pins, reopenableRuntime } from '../helpers/dataplane';
import { createTestbed } from '../helpers/testbed';

for (const mode of ['xdp', 'tc'] as const) {
  test(`${mode}: transient layers ride on every apply, one per target, and a reopened runtime removes those left`, async (t) => {
    const bed = await createTestbed(t, { mode, outs: 1 });
    const runtimes = await reopenableRuntime(t, { netns: bed.host.path });
    let rt = runtimes.rt;
    const topo = lineTopology(mode, [{ name: 'f', type: 'nop' }], bed.in, bed.outs[0]);
    await rt.apply(topo);
    const ended: string[] = [];
    const stack = (target: Endpoint) => rt.stackTransient({ type: 'packetcapture', prefix: 'capture', target, direction: 'both', ended: (why) => ended.push(why) });
    const layers = () => rt.topology().stacks.map((s) => `${'netdev' in s.target ? s.target.netdev : `${s.target.cube}:${s.target.port}`}=${s.layers.map((l) => l.cube).join(',')}`).sort();
    const cubePins = () => [...new Set(pins(rt!).filter((p) => p.startsWith('cubes/')).map((p) => p.split('/')[1].replace(/^\d+-/, '')))].sort();

    t.is(await stack({ cube: 'f', port: 'p0' }), 'capture-1');
    t.is(await stack({ netdev: bed.in }), 'capture-2');
    t.deepEqual(layers(), ['f:p0=capture-1', `${bed.in}=capture-2`]);
    t.deepEqual(rt.topology().cubes.find((c) => c.name === 'capture-1')?.mode, mode, 'in the mode of the cubes there');
    await t.throwsAsync(stack({ cube: 'f', port: 'p0' }), { instanceOf: FailedPreconditionError, message: /f:p0 has capture-1 of another session stacked already/ });
    const refused = await Promise.all([
      t.throwsAsync(stack({ cube: 'g', port: 'p0' }), { instanceOf: NotFoundError, message: /no cube named g on this host \(its cubes: f\)/ }),
      t.throwsAsync(stack({ cube: 'f', port: 'p9' }), { instanceOf: InvalidArgumentError, message: /cube f has no port "p9" \(its ports: p0, p1\)/ }),
      t.throwsAsync(stack({ netdev: 'eth9' }), { instanceOf: InvalidArgumentError, message: new RegExp(`no netdev named eth9 \\(they use: ${bed.in}, ${bed.outs[0]}\\)`) }),
    ]);
    t.deepEqual(refused.map((e) => (e as InvalidArgumentError).field), [undefined, 'port', 'netdev']);

    // An apply of the same chains (a reconciler's pass) keeps them and changes nothing.
    const again = await rt.apply(topo);
    t.deepEqual([again.created, again.deleted, again.rewired], [[], [], false]);
    t.deepEqual(layers(), ['f:p0=capture-1', `${bed.in}=capture-2`]);
    await rt.unstackTransient('capture-2');
    t.deepEqual(layers(), ['f:p0=capture-1']);
    t.deepEqual(cubePins(), ['capture-1', 'f']);

    // The runtime dies with capture-1 stacked; the next one removes it as it opens.
    rt = await runtimes.reopen();
    t.deepEqual(rt.adoption.transientRemoved, ['capture-1']);
    t.deepEqual(rt.cubeNames(), ['f']);
    t.deepEqual(rt.topology(), topo);
    t.deepEqual(cubePins(), ['f']);

    // A target an apply drops takes its layer with it, the session told why first.
    t.is(await stack({ cube: 'f', port: 'p1' }), 'capture-1');
    await rt.apply(emptyTopology());
    t.deepEqual(ended, ["capture-1 on f:p1 was removed: f:p1 is gone from this host's chains"]);
    t.deepEqual(rt.cubeNames(), []);
    t.deepEqual(cubePins(), []);
  });
}
