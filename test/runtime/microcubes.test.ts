// Replaced micro-cubes are part of the topology the runtime applies (a chain's
// replacedMicrocubes): put in place by apply() with the rest, recorded in the one
// state file, adopted as they are by a runtime that opens again (a daemon killed
// with -9), and carried over from the microcubes.json an earlier daemon kept
// beside its state. One that cannot be loaded fails its apply and changes nothing.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'ava';
import { InvalidArgumentError } from '../../node-daemon/src/runtime/errors';
import type { Topology } from '../../node-daemon/src/runtime/topology';
import { lineTopology } from '../helpers/chains';
import { microSlots, registerTestTypes, reopenableRuntime, testCubeObjects } from '../helpers/dataplane';
import { createTestbed } from '../helpers/testbed';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

for (const mode of ['xdp', 'tc'] as const) {
  test(`${mode}: replaced micro-cubes are applied with the topology, adopted from its state, and carried over from microcubes.json`, async (t) => {
    const bed = await createTestbed(t, { mode, outs: 1 });
    const runtimes = await reopenableRuntime(t, { netns: bed.host.path });
    const root = runtimes.root;
    let rt = runtimes.rt;
    await registerTestTypes(rt);
    const elf = testCubeObjects('relay')[mode];
    const junk = Buffer.concat([elf.subarray(0, 64), Buffer.alloc(64)]);
    const byDigest = new Map([elf, junk].map((b) => [sha256(b), b]));
    const asked: string[] = [];
    const objects = async (digest: string): Promise<Buffer> => (asked.push(digest), byDigest.get(digest) ?? Promise.reject(new Error(`no object ${digest}`)));
    const line = lineTopology(mode, [{ name: 'r', type: 'relay' }], bed.in, bed.outs[0]);
    const replacing = (replaced: Record<string, string>): Topology => ({ ...line, cubes: line.cubes.map((c) => ({ ...c, replacedMicrocubes: replaced })) });

    // A new cube starts with its replaced micro-cube in place.
    let report = await rt.apply(replacing({ 1: sha256(elf) }), { objects });
    t.deepEqual([report.created, report.microcubes], [['r'], ['r/1']]);
    t.deepEqual(rt.topology().cubes[0].replacedMicrocubes, { 1: sha256(elf) });
    const programs = (): number[] => [0, 1].map((i) => rt.cube('r').program(i).id);
    const running = programs();
    t.deepEqual(microSlots(rt, 'r').slice(0, 2), running);

    // The same topology again changes nothing, and asks for no object.
    asked.length = 0;
    report = await rt.apply(replacing({ 1: sha256(elf) }), { objects });
    t.deepEqual([report.microcubes, report.rewired, asked], [[], false, []]);

    // One that cannot be loaded fails the apply: the cube runs what it ran, and the state says so.
    await t.throwsAsync(rt.apply(replacing({ 0: sha256(junk), 1: sha256(elf) }), { objects }), { instanceOf: InvalidArgumentError, message: /micro-cube 0 of cube r/ });
    t.deepEqual(programs(), running);
    t.deepEqual(rt.topology().cubes[0].replacedMicrocubes, { 1: sha256(elf) });

    // Killed and opened again: adopted as it runs, from the one state file.
    rt = await runtimes.reopen();
    t.deepEqual(rt.adoption.adoptedCubes, ['r']);
    t.deepEqual(rt.topology().cubes[0].replacedMicrocubes, { 1: sha256(elf) });
    t.deepEqual(programs(), running);
    report = await rt.apply(replacing({ 1: sha256(elf) }), { objects });
    t.deepEqual([report.microcubes, report.rewired], [[], false]);
    t.false(fs.existsSync(path.join(root, 'microcubes.json')));

    // A state an earlier daemon wrote: its topology without them, microcubes.json beside it.
    const state = JSON.parse(fs.readFileSync(path.join(root, 'state.json'), 'utf8'));
    delete state.topology.cubes[0].replacedMicrocubes;
    fs.writeFileSync(path.join(root, 'state.json'), JSON.stringify(state));
    fs.writeFileSync(path.join(root, 'microcubes.json'), JSON.stringify({ r: { programs: running, objects: { 1: sha256(elf) } } }));
    rt = await runtimes.reopen();
    t.deepEqual(rt.topology().cubes[0].replacedMicrocubes, { 1: sha256(elf) });
    t.false(fs.existsSync(path.join(root, 'microcubes.json')), 'carried over once');
    asked.length = 0;
    report = await rt.apply(replacing({ 1: sha256(elf) }), { objects });
    t.deepEqual([report.microcubes, asked], [[], []]);
    t.deepEqual(programs(), running);

    // Dropped from the topology: the type's own program runs again.
    report = await rt.apply(line, { objects });
    t.deepEqual(report.microcubes, ['r/1']);
    t.is(rt.topology().cubes[0].replacedMicrocubes, undefined);
    t.not(programs()[1], running[1]);
    t.is(programs()[0], running[0]);
  });
}
