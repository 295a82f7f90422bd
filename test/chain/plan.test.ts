import test from 'ava';
import { planHost } from '../../node-daemon/src/chain';
import { cube, demo, other } from './fixtures';

test('plan: host1 runs its cubes, both ends of same-host links, its side of a via, its stacks', t => {
  const plan = planHost([demo()], 'host1');
  t.deepEqual(
    plan.cubes.map(c => [c.name, c.chain, c.type, c.mode]),
    [
      ['ddos1', 'demo', 'ddos', 'xdp'],
      ['fwd1', 'demo', 'simpleforwarder', 'xdp'],
      ['fwd2', 'demo', 'simpleforwarder', 'xdp'],
    ],
  );
  t.deepEqual(plan.topology.cubes.map(c => c.name), ['ddos1', 'fwd1', 'fwd2']);
  t.deepEqual(plan.topology.links, [
    { a: { cube: 'fwd1', port: 'out' }, b: { cube: 'fwd2', port: 'in' } },
    { a: { cube: 'fwd1', port: 'in' }, b: { netdev: 'veth0' } },
    { a: { cube: 'fwd2', port: 'out' }, b: { netdev: 'eth-h1h2' } },
  ]);
  t.deepEqual(plan.topology.stacks, [{ target: { netdev: 'veth0' }, layers: [{ cube: 'ddos1', direction: 'ingress' }] }]);
});

test('plan: host2 sees the other side of the via', t => {
  const plan = planHost([demo()], 'host2');
  t.deepEqual(plan.cubes.map(c => c.name), ['fwd3']);
  t.deepEqual(plan.topology.links, [{ a: { cube: 'fwd3', port: 'in' }, b: { netdev: 'eth-h2h1' } }]);
  t.deepEqual(plan.topology.stacks, []);
});

test('plan: cube settings are carried as written', t => {
  const chain = demo();
  chain.spec.cubes[0] = cube('fwd1', 'host1', ['in', 'out'], 'simpleforwarder', { mode: 'tc', logLevel: 'debug', params: { ttl: 3 }, tableSizes: { fwd_ct: 64 } });
  const plan = planHost([chain], 'host1');
  const [fwd1] = plan.cubes.filter(c => c.name === 'fwd1');
  t.deepEqual(fwd1, { name: 'fwd1', chain: 'demo', type: 'simpleforwarder', mode: 'tc', ports: ['in', 'out'], logLevel: 'debug', params: { ttl: 3 }, tableSizes: { fwd_ct: 64 } });
  t.deepEqual(plan.topology.cubes.find(c => c.name === 'fwd1'), { name: 'fwd1', type: 'simpleforwarder', mode: 'tc', ports: ['in', 'out'], logLevel: 'debug', tableSizes: { fwd_ct: 64 } });
  t.deepEqual(plan.topology.cubes.find(c => c.name === 'fwd2'), { name: 'fwd2', type: 'simpleforwarder', mode: 'xdp', ports: ['in', 'out'], logLevel: 'info' }, 'no sizes, no field');
  fwd1.params.ttl = 4;
  fwd1.ports.push('x');
  fwd1.tableSizes!.fwd_ct = 128;
  t.deepEqual(chain.spec.cubes[0].params, { ttl: 3 }, 'the plan shares nothing mutable with the chain');
  t.deepEqual(chain.spec.cubes[0].tableSizes, { fwd_ct: 64 });
  t.deepEqual(plan.topology.cubes.find(c => c.name === 'fwd1')!.tableSizes, { fwd_ct: 64 });
  t.deepEqual(plan.topology.cubes.find(c => c.name === 'fwd1')!.ports, ['in', 'out']);
});

test('plan: a stack lists its layers outermost first, as the chain lists its attachments', t => {
  const chain = demo();
  chain.spec.cubes.push(cube('fw1', 'host1', [], 'firewall', { mode: 'xdp' }), cube('cap1', 'host1', [], 'ddos'));
  chain.spec.attachments = [
    { cube: 'ddos1', to: 'fwd2:in', direction: 'both' },
    { cube: 'fw1', to: 'fwd2:in', direction: 'both' },
    { cube: 'cap1', to: 'fwd2:in', direction: 'egress' },
  ];
  t.deepEqual(planHost([chain], 'host1').topology.stacks, [
    {
      target: { cube: 'fwd2', port: 'in' },
      layers: [
        { cube: 'ddos1', direction: 'both' },
        { cube: 'fw1', direction: 'both' },
        { cube: 'cap1', direction: 'egress' },
      ],
    },
  ]);
});

test('plan: several chains on one host, sorted; a host with nothing gets an empty plan', t => {
  const plan = planHost([other(), demo()], 'host1');
  t.deepEqual(plan.cubes.map(c => `${c.chain}/${c.name}`), ['demo/ddos1', 'other/ddos9', 'demo/fwd1', 'demo/fwd2', 'other/ofwd']);
  t.deepEqual(plan.topology.stacks.map(s => s.target), [{ netdev: 'veth0' }, { netdev: 'veth5' }]);
  t.deepEqual(planHost([demo(), other()], 'host9'), { host: 'host9', cubes: [], topology: { cubes: [], links: [], stacks: [] } });
});

test('plan: links written netdev first plan the same, up to the order of their ends', t => {
  const chain = demo();
  chain.spec.links[1] = { from: 'netdev:veth0', to: 'fwd1:in' };
  const flipped = planHost([chain], 'host1').topology.links[1];
  t.deepEqual(flipped, { a: { netdev: 'veth0' }, b: { cube: 'fwd1', port: 'in' } });
});
