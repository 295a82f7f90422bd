// CubeService against a real netcubed: every call, its bad inputs (status, the
// field named, and nothing changed: neither the chain in etcd nor the topology).

import anyTest, { TestFn } from 'ava';
import { createVethPair } from '../helpers/netns';
import { ApiEnv, failsWith, openEnv, storedChain } from './setup';

const test = anyTest as TestFn<ApiEnv>;

test.before(async (t) => {
  t.context = await openEnv();
  // Two netdevs of the host, for links and stacks.
  await createVethPair(t.context.netns, t.context.netns, ['v0', 'v1'], null);
});
test.after.always(async (t) => {
  await t.context?.close();
});

/** What must not change when a call fails. */
async function state(env: ApiEnv): Promise<unknown> {
  const chain = await storedChain(env.store, env.hostChain);
  const topology = await env.client.getTopology();
  return { chain: chain && { version: chain.version, spec: chain.chain.spec }, topology: JSON.stringify(topology.cubes.map((c) => ({ ...c, ports: c.ports.map((p) => ({ ...p, stats: null })) }))) + JSON.stringify([topology.links, topology.stacks]) };
}

/** Asserts a call fails as expected and leaves everything as it was. */
async function refused(t: import('ava').ExecutionContext<ApiEnv>, call: () => Promise<unknown>, code: Parameters<typeof failsWith>[2], opts: Parameters<typeof failsWith>[3] = {}): Promise<void> {
  const before = await state(t.context);
  await failsWith(t, call(), code, opts);
  t.deepEqual(await state(t.context), before, 'nothing changed');
}

test.serial('CreateCube: the cube runs, in the host chain, and is listed', async (t) => {
  const { client, store, hostChain } = t.context;
  const cube = await client.createCube({ name: 'fwd1', type: 'simpleforwarder', ports: ['in', 'out'], logLevel: 'LOG_LEVEL_DEBUG', params: { fields: { ttl: { numberValue: 3 } } } });
  t.is(cube.name, 'fwd1');
  t.is(cube.type, 'simpleforwarder');
  t.is(cube.mode, 'MODE_XDP');
  t.is(cube.logLevel, 'LOG_LEVEL_DEBUG');
  t.is(cube.chain, hostChain);
  t.deepEqual(cube.ports.map((p) => [p.name, p.index, p.peer]), [['in', 0, null], ['out', 1, null]]);
  t.is(cube.params?.fields.ttl.numberValue, 3);
  t.true(cube.id > 0);
  const chain = await storedChain(store, hostChain);
  t.deepEqual(chain?.chain.spec.cubes.map((c) => [c.name, c.host, c.logLevel, c.params]), [['fwd1', t.context.daemon.name, 'debug', { ttl: 3 }]]);
  t.deepEqual((await client.listCubes()).cubes.map((c) => c.name), ['fwd1']);
  t.deepEqual(await client.getCube({ name: 'fwd1' }), cube);
});

test.serial('CreateCube: bad requests name the field and change nothing', async (t) => {
  const { client } = t.context;
  const ok = { name: 'fwd2', type: 'simpleforwarder', ports: ['a', 'b'] };
  await refused(t, () => client.createCube({ ...ok, name: '' }), 'INVALID_ARGUMENT', { field: 'name' });
  await refused(t, () => client.createCube({ ...ok, name: 'Fwd_2' }), 'INVALID_ARGUMENT', { field: 'name', says: ['lowercase'] });
  await refused(t, () => client.createCube({ ...ok, name: 'netdev' }), 'INVALID_ARGUMENT', { field: 'name', says: ['reserved'] });
  await refused(t, () => client.createCube({ ...ok, type: 'nosuchtype' }), 'INVALID_ARGUMENT', { field: 'type', says: ['unknown cube type nosuchtype', 'simpleforwarder'] });
  await refused(t, () => client.createCube({ ...ok, ports: ['a', 'B c'] }), 'INVALID_ARGUMENT', { field: 'ports[1]' });
  await refused(t, () => client.createCube({ ...ok, ports: ['a', 'a'] }), 'INVALID_ARGUMENT', { field: 'ports[1]', says: ['twice'] });
  await refused(t, () => client.createCube({ ...ok, ports: Array.from({ length: 33 }, (_, i) => `p${i}`) }), 'INVALID_ARGUMENT', { field: 'ports', says: ['at most 32'] });
  await refused(t, () => client.createCube({ name: 'dd9', type: 'ddosmitigator', ports: ['x'] }), 'INVALID_ARGUMENT', { field: 'ports', says: ['transparent'] });
  await refused(t, () => client.createCube({ ...ok, chain: 'Not A Chain' }), 'INVALID_ARGUMENT', { field: 'chain' });
  await refused(t, () => client.createCube({ ...ok, name: 'fwd1' }), 'ALREADY_EXISTS', { says: ['fwd1 already exists', t.context.hostChain] });
});

test.serial('GetCube and UpdateCube of an unknown cube: NOT_FOUND', async (t) => {
  await failsWith(t, t.context.client.getCube({ name: 'nope' }), 'NOT_FOUND', { says: ['nope'] });
  await refused(t, () => t.context.client.updateCube({ name: 'nope', logLevel: 'LOG_LEVEL_WARN' }), 'NOT_FOUND', { says: ['nope'] });
  await failsWith(t, t.context.client.getCube({ name: 'BAD' }), 'INVALID_ARGUMENT', { field: 'name' });
});

test.serial('UpdateCube: ports and log level change; unset fields keep their value', async (t) => {
  const { client } = t.context;
  let cube = await client.updateCube({ name: 'fwd1', ports: { names: ['in', 'out', 'mgmt'] } });
  t.deepEqual(cube.ports.map((p) => [p.name, p.index]), [['in', 0], ['out', 1], ['mgmt', 2]]);
  t.is(cube.logLevel, 'LOG_LEVEL_DEBUG');
  cube = await client.updateCube({ name: 'fwd1', logLevel: 'LOG_LEVEL_WARN' });
  t.is(cube.logLevel, 'LOG_LEVEL_WARN');
  t.deepEqual(cube.ports.map((p) => p.name), ['in', 'out', 'mgmt']);
  t.is(cube.params?.fields.ttl.numberValue, 3);
  cube = await client.updateCube({ name: 'fwd1', ports: { names: ['in', 'out'] }, params: { fields: {} } });
  t.deepEqual(cube.ports.map((p) => p.name), ['in', 'out']);
  t.deepEqual(cube.params?.fields, {});
  await refused(t, () => client.updateCube({ name: 'fwd1', ports: { names: ['in', 'IN!'] } }), 'INVALID_ARGUMENT', { field: 'ports.names[1]' });
});

test.serial('SetPeer: cube to cube, cube to netdev, unlink; bad peers name the field', async (t) => {
  const { client, store, hostChain } = t.context;
  await client.createCube({ name: 'fwd2', type: 'simpleforwarder', ports: ['in', 'out'] });
  let cube = await client.setPeer({ cube: 'fwd1', port: 'out', peer: { port: { cube: 'fwd2', port: 'in' } } });
  t.deepEqual(cube.ports.find((p) => p.name === 'out')?.peer?.port, { cube: 'fwd2', port: 'in' });
  t.deepEqual((await client.getCube({ name: 'fwd2' })).ports.find((p) => p.name === 'in')?.peer?.port, { cube: 'fwd1', port: 'out' });
  cube = await client.setPeer({ cube: 'fwd1', port: 'in', peer: { netdev: 'v0' } });
  t.is(cube.ports.find((p) => p.name === 'in')?.peer?.netdev, 'v0');
  t.deepEqual((await storedChain(store, hostChain))?.chain.spec.links, [{ from: 'fwd1:out', to: 'fwd2:in' }, { from: 'fwd1:in', to: 'netdev:v0' }]);
  // The same link again changes nothing.
  const version = (await storedChain(store, hostChain))?.version;
  await client.setPeer({ cube: 'fwd1', port: 'in', peer: { netdev: 'v0' } });
  t.is((await storedChain(store, hostChain))?.version, version);

  await refused(t, () => client.setPeer({ cube: 'fwd2', port: 'nope', peer: { netdev: 'v1' } }), 'INVALID_ARGUMENT', { field: 'port', says: ['no port nope'] });
  await refused(t, () => client.setPeer({ cube: 'fwd2', port: 'out', peer: { netdev: 'nosuchdev' } }), 'INVALID_ARGUMENT', { field: 'peer.netdev', says: ['does not exist'] });
  await refused(t, () => client.setPeer({ cube: 'fwd2', port: 'out', peer: { netdev: 'bad/name' } }), 'INVALID_ARGUMENT', { field: 'peer.netdev' });
  await refused(t, () => client.setPeer({ cube: 'fwd2', port: 'out', peer: { port: { cube: 'ghost', port: 'in' } } }), 'INVALID_ARGUMENT', { field: 'peer.port.cube', says: ['no cube named ghost'] });
  await refused(t, () => client.setPeer({ cube: 'fwd2', port: 'out', peer: { port: { cube: 'fwd1', port: 'zz' } } }), 'INVALID_ARGUMENT', { field: 'peer.port.port', says: ['no port zz'] });
  await refused(t, () => client.setPeer({ cube: 'fwd2', port: 'out', peer: { port: { cube: 'fwd2', port: 'out' } } }), 'INVALID_ARGUMENT', { field: 'peer' });
  await refused(t, () => client.setPeer({ cube: 'fwd2', port: 'in', peer: { netdev: 'v1' } }), 'FAILED_PRECONDITION', { says: ['fwd2:in is already linked to fwd1:out', 'unlink it first'] });
  await refused(t, () => client.setPeer({ cube: 'fwd2', port: 'out', peer: { netdev: 'v0' } }), 'FAILED_PRECONDITION', { says: ['netdev:v0 is already linked'] });
  await refused(t, () => client.setPeer({ cube: 'fwd2', port: 'out', peer: { port: { cube: 'fwd1', port: 'in' } } }), 'FAILED_PRECONDITION', { says: ['already linked'] });
  await refused(t, () => client.setPeer({ cube: 'ghost', port: 'in', peer: { netdev: 'v1' } }), 'NOT_FOUND');

  // A loop between the two cubes: refused before anything is written.
  await client.updateCube({ name: 'fwd1', ports: { names: ['in', 'out', 'back'] } });
  await client.updateCube({ name: 'fwd2', ports: { names: ['in', 'out', 'back'] } });
  await refused(t, () => client.setPeer({ cube: 'fwd2', port: 'back', peer: { port: { cube: 'fwd1', port: 'back' } } }), 'FAILED_PRECONDITION', { says: ['loop'] });

  cube = await client.setPeer({ cube: 'fwd1', port: 'out' });
  t.is(cube.ports.find((p) => p.name === 'out')?.peer, null);
  t.deepEqual((await client.getTopology()).links.map((l) => [l.a?.port?.cube ?? l.a?.netdev, l.b?.port?.cube ?? l.b?.netdev]), [['fwd1', 'v0']]);
});

test.serial('Attach and Detach: a transparent cube on a netdev, then on a port, then off', async (t) => {
  const { client, store, hostChain } = t.context;
  const created = await client.createCube({ name: 'dd1', type: 'ddosmitigator' });
  t.true(created.transparent);
  t.is(created.attachment, null);
  let cube = await client.attach({ cube: 'dd1', target: { netdev: 'v0' }, direction: 'DIRECTION_INGRESS' });
  t.deepEqual(cube.attachment, { target: { netdev: 'v0', kind: 'netdev' }, direction: 'DIRECTION_INGRESS', position: 0 });
  t.deepEqual((await client.getTopology()).stacks.map((s) => [s.target?.netdev, s.layers.map((l) => l.cube)]), [['v0', ['dd1']]]);
  await client.createCube({ name: 'dd2', type: 'ddosmitigator' });
  cube = await client.attach({ cube: 'dd2', target: { netdev: 'v0' }, direction: 'DIRECTION_INGRESS', position: 0 });
  t.is(cube.attachment?.position, 0);
  t.deepEqual((await client.getTopology()).stacks[0].layers.map((l) => l.cube), ['dd2', 'dd1']);

  await refused(t, () => client.attach({ cube: 'fwd2', target: { netdev: 'v1' }, direction: 'DIRECTION_INGRESS' }), 'INVALID_ARGUMENT', { field: 'cube', says: ['not transparent'] });
  await refused(t, () => client.attach({ cube: 'dd1', target: { netdev: 'nosuchdev' }, direction: 'DIRECTION_INGRESS' }), 'INVALID_ARGUMENT', { field: 'target.netdev' });
  await refused(t, () => client.attach({ cube: 'dd1', target: {}, direction: 'DIRECTION_INGRESS' }), 'INVALID_ARGUMENT', { field: 'target' });
  await refused(t, () => client.attach({ cube: 'dd1', target: { port: { cube: 'fwd2', port: 'nope' } } }), 'INVALID_ARGUMENT', { field: 'target.port.port' });

  // Moving it onto a port.
  cube = await client.attach({ cube: 'dd1', target: { port: { cube: 'fwd2', port: 'in' } }, direction: 'DIRECTION_BOTH' });
  t.deepEqual(cube.attachment?.target?.port, { cube: 'fwd2', port: 'in' });
  t.is(cube.attachment?.direction, 'DIRECTION_BOTH');
  await refused(t, () => client.deleteCube({ name: 'fwd2' }), 'FAILED_PRECONDITION', { says: ['dd1', 'detach them first'] });
  await refused(t, () => client.updateCube({ name: 'fwd2', ports: { names: ['out'] } }), 'FAILED_PRECONDITION', { says: ['dd1'] });

  cube = await client.detach({ cube: 'dd1' });
  t.is(cube.attachment, null);
  t.deepEqual((await storedChain(store, hostChain))?.chain.spec.attachments.map((a) => a.cube), ['dd2']);
  t.truthy(await client.detach({ cube: 'dd1' }), 'detaching a detached cube is fine');
  await client.detach({ cube: 'dd2' });
  t.deepEqual((await client.getTopology()).stacks, []);
});

test.serial('DeleteCube: its links go; the chain goes with its last cube', async (t) => {
  const { client, store, hostChain } = t.context;
  await client.setPeer({ cube: 'fwd2', port: 'out', peer: { netdev: 'v1' } });
  await client.deleteCube({ name: 'fwd2' });
  await failsWith(t, client.getCube({ name: 'fwd2' }), 'NOT_FOUND');
  t.false((await storedChain(store, hostChain))?.chain.spec.links.some((l) => l.from.startsWith('fwd2:') || l.to.startsWith('fwd2:')));
  await refused(t, () => client.deleteCube({ name: 'fwd2' }), 'NOT_FOUND');
  for (const name of ['fwd1', 'dd1', 'dd2']) await client.deleteCube({ name });
  t.is(await storedChain(store, hostChain), undefined);
  t.deepEqual((await client.getTopology()).cubes, []);
});

test.serial('CreateCube into a named chain; a host apply failure puts the chain back', async (t) => {
  const { client, store } = t.context;
  const cube = await client.createCube({ name: 'lone', type: 'nop', ports: ['a'], chain: 'mychain' });
  t.is(cube.chain, 'mychain');
  const before = await storedChain(store, 'mychain');
  // lo has no native XDP: the host cannot apply this link, though the chain is valid.
  await failsWith(t, client.setPeer({ cube: 'lone', port: 'a', peer: { netdev: 'lo' } }), 'FAILED_PRECONDITION', { says: ["interface 'lo'"] });
  const after = await storedChain(store, 'mychain');
  t.deepEqual(after?.chain.spec, before?.chain.spec, 'the chain is back at its previous spec');
  t.deepEqual((await client.getCube({ name: 'lone' })).ports[0].peer, null);
  await client.deleteCube({ name: 'lone' });
});

test.serial('CreateCube with table sizes: the kernel has them, Cube and ListTables report them; sizes the host refuses name the field and change nothing', async (t) => {
  const { client, store, hostChain } = t.context;
  const ok = { name: 'nat1', type: 'nat' };
  await refused(t, () => client.createCube({ ...ok, tableSizes: { nat_counters: 4 } }), 'INVALID_ARGUMENT', { field: 'table_sizes.nat_counters', says: ['is a map of kind percpu_array', 'only hash, lru_hash'] });
  await refused(t, () => client.createCube({ ...ok, tableSizes: { nat_ct: 0 } }), 'INVALID_ARGUMENT', { field: 'table_sizes.nat_ct', says: ['from 1 to 16777216; got 0'] });
  await refused(t, () => client.createCube({ ...ok, tableSizes: { nat_nope: 64 } }), 'INVALID_ARGUMENT', { field: 'table_sizes.nat_nope', says: ['cube type nat has no table nat_nope', 'nat_ct'] });
  await refused(t, () => client.createCube({ ...ok, tableSizes: { nat_ct: 16777216 } }), 'INVALID_ARGUMENT', {
    field: 'table_sizes.nat_ct',
    says: ['cube nat1, tableSizes.nat_ct: 16777216 entries', "over this host's limit of 64 MiB per map (--max-map-memory)", 'give it at most'],
  });

  const cube = await client.createCube({ ...ok, tableSizes: { nat_ct: 64, nat_sessions: 128 } });
  t.deepEqual(cube.tableSizes, { nat_ct: 64, nat_sessions: 128 });
  t.deepEqual((await storedChain(store, hostChain))?.chain.spec.cubes.find((c) => c.name === 'nat1')?.tableSizes, { nat_ct: 64, nat_sessions: 128 });
  const tables = new Map((await client.listTables({ cube: 'nat1' })).tables.map((x) => [x.name, x.maxEntries]));
  t.is(tables.get('nat_ct'), 64);
  t.is(tables.get('nat_sessions'), 128);
  t.is(tables.get('nat_dnat_rules'), 4096, 'the others keep their size');
  await client.deleteCube({ name: 'nat1' });
});
