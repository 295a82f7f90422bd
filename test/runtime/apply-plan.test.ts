// The plan of an apply (runtime/apply-plan.ts), without a kernel: which cubes stay,
// are made or go, their ids and port numbers, the micro-cubes and settings that
// change, and the peer words of the next generation.
import * as path from 'node:path';
import test from 'ava';
import { decodePeer, MAX_CUBES } from '../../node-daemon/src/runtime/abi';
import { planApply, RunningCube } from '../../node-daemon/src/runtime/apply-plan';
import { FailedPreconditionError, InvalidArgumentError } from '../../node-daemon/src/runtime/errors';
import { DEFAULT_OBJECTS_DIR } from '../../node-daemon/src/runtime/runtime';
import { emptyTopology, Topology, wire } from '../../node-daemon/src/runtime/topology';
import { TypeRegistry } from '../../node-daemon/src/runtime/types';
import { lineTopology } from '../helpers/chains';

const types = new TypeRegistry('/nonexistent');
test.before(async () => {
  await types.load(path.join(DEFAULT_OBJECTS_DIR, 'cubes'));
  await types.load(path.join(DEFAULT_OBJECTS_DIR, 'testdata', 'cubes'));
});

/** `running` by name, or `<name>@<id>` for one an interrupted apply left. */
const plan = (next: Topology, running: Record<string, RunningCube> = {}, topology: Topology = emptyTopology()) =>
  planApply(
    next,
    { cubes: new Map(Object.entries(running)), topology },
    { type: (t) => types.get(t), policy: types.policy, wiring: wire(next, (t) => types.get(t)), ifindexes: new Map([['in0', 11], ['out0', 12]]), intoPeer: new Set(), cpus: 2 },
  );
const running = (name: string, type: string, id: number, ports: Record<string, number>): RunningCube => ({ name, id, type: types.get(type)!, mode: 'xdp', ports: new Map(Object.entries(ports)), tableSizes: {} });

test('an empty host: every cube made, ids from 1, ports numbered in order, words from the netdev through the line', (t) => {
  const p = plan(lineTopology('xdp', [{ name: 'a', type: 'nop' }, { name: 'b', type: 'nop' }], 'in0', 'out0'));
  t.deepEqual([p.keep, p.create.map((c) => [c.spec.name, c.id]), p.drop], [[], [['a', 1], ['b', 2]], []]);
  t.deepEqual(Object.fromEntries(p.ports.get('b')!), { p0: 0, p1: 1 });
  t.deepEqual(p.entryWords.get('in0.xdp')?.first, { cube: 'a', port: 0 });
  t.deepEqual(decodePeer(p.entryWords.get('in0.xdp')!.word), { kind: 'cube', slot: 8, port: 0 });
  t.deepEqual(p.cubeWords.get('a')![1].first, { cube: 'b', port: 0 });
  t.deepEqual(decodePeer(p.cubeWords.get('b')![1].word), { kind: 'netdev', ifindex: 12 });
  t.deepEqual(p.cubeWords.get('b')![2], { word: 0n });
});

test('kept cubes keep their ids and port numbers; a new port takes the lowest free; a left-over cube goes; a new one skips ids in use', (t) => {
  const next = lineTopology('xdp', [{ name: 'a', type: 'nop' }, { name: 'c', type: 'nop' }], 'in0', 'out0');
  next.cubes[0].ports = ['p1', 'p2', 'p0'];
  const p = plan(next, { a: running('a', 'nop', 1, { p0: 1, p1: 0 }), 'b@7': running('b', 'nop', 7, { p0: 0 }), d: running('d', 'nop', 2, { p0: 0 }) });
  t.deepEqual([p.keep, p.create.map((c) => [c.spec.name, c.id]), p.drop.sort()], [['a'], [['c', 3]], ['b@7', 'd']]);
  t.deepEqual(Object.fromEntries(p.ports.get('a')!), { p0: 1, p1: 0, p2: 2 });
});

test('a change of type makes a new cube; a kept one whose log level changes is reconfigured', (t) => {
  const next = lineTopology('xdp', [{ name: 'a', type: 'nop' }, { name: 'b', type: 'simpleforwarder' }], 'in0', 'out0');
  next.cubes[0].logLevel = 'debug';
  const was = lineTopology('xdp', [{ name: 'a', type: 'nop' }, { name: 'b', type: 'nop' }], 'in0', 'out0');
  const p = plan(next, { a: running('a', 'nop', 1, { p0: 0, p1: 1 }), b: running('b', 'nop', 2, { p0: 0, p1: 1 }) }, was);
  t.deepEqual([p.keep, p.create.map((c) => [c.spec.name, c.id]), p.drop, p.reconfigure], [['a'], [['b', 3]], ['b'], ['a']]);
});

test('micro-cubes: a new cube gets its replaced ones; a kept one those that differ from what it runs, or its type\'s back', (t) => {
  const line = (replaced: Record<string, string> | undefined) => {
    const topo = lineTopology('xdp', [{ name: 'r', type: 'relay' }], 'in0', 'out0');
    topo.cubes[0].replacedMicrocubes = replaced;
    return topo;
  };
  const r = running('r', 'relay', 1, { p0: 0, p1: 1 });
  t.deepEqual([...plan(line({ 1: 'x' })).microcubes], [['r', [{ index: 1, digest: 'x' }]]]);
  t.deepEqual([...plan(line({ 1: 'x' }), { r }, line({ 1: 'x' })).microcubes], []);
  t.deepEqual([...plan(line({ 0: 'y', 1: 'x' }), { r }, line({ 1: 'z' })).microcubes], [['r', [{ index: 0, digest: 'y' }, { index: 1, digest: 'x' }]]]);
  t.deepEqual([...plan(line(undefined), { r }, line({ 1: 'x' })).microcubes], [['r', [{ index: 1, digest: undefined }]]]);
  t.throws(() => plan(line({ 5: 'x' })), { instanceOf: InvalidArgumentError, message: /cube r \(type relay\) has micro-cubes 0, 1; 5 is not one of them/ });
});

test('past the host\'s cubes, the plan says so', (t) => {
  const many = Object.fromEntries(Array.from({ length: MAX_CUBES - 1 }, (_, i) => [`c${i}`, running(`c${i}`, 'nop', i + 1, {})]));
  const err = t.throws(() => plan(lineTopology('xdp', [{ name: 'new', type: 'nop' }], 'in0', 'out0'), many), { instanceOf: FailedPreconditionError });
  t.is(err!.message, `this host already runs ${MAX_CUBES - 1} cubes, the most it can`);
});
