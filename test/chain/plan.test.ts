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
  t.deepEqual(plan.ports, [
    { cube: 'fwd1', port: 'in', peer: { kind: 'netdev', ifname: 'veth0' } },
    { cube: 'fwd1', port: 'out', peer: { kind: 'cube', cube: 'fwd2', port: 'in' } },
    { cube: 'fwd2', port: 'in', peer: { kind: 'cube', cube: 'fwd1', port: 'out' } },
    { cube: 'fwd2', port: 'out', peer: { kind: 'netdev', ifname: 'eth-h1h2' } },
  ]);
  t.deepEqual(plan.netdevs, [
    { ifname: 'eth-h1h2', cube: 'fwd2', port: 'out' },
    { ifname: 'veth0', cube: 'fwd1', port: 'in' },
  ]);
  t.deepEqual(plan.stacks, [{ target: { kind: 'netdev', ifname: 'veth0' }, direction: 'ingress', cubes: ['ddos1'] }]);
});

test('plan: host2 sees the other side of the via', t => {
  const plan = planHost([demo()], 'host2');
  t.deepEqual(plan.cubes.map(c => c.name), ['fwd3']);
  t.deepEqual(plan.ports, [{ cube: 'fwd3', port: 'in', peer: { kind: 'netdev', ifname: 'eth-h2h1' } }]);
  t.deepEqual(plan.netdevs, [{ ifname: 'eth-h2h1', cube: 'fwd3', port: 'in' }]);
  t.deepEqual(plan.stacks, []);
});

test('plan: cube settings are carried as written', t => {
  const chain = demo();
  chain.spec.cubes[0] = cube('fwd1', 'host1', ['in', 'out'], 'simpleforwarder', { mode: 'tc', logLevel: 'debug', params: { ttl: 3 } });
  const [fwd1] = planHost([chain], 'host1').cubes.filter(c => c.name === 'fwd1');
  t.deepEqual(fwd1, { name: 'fwd1', chain: 'demo', type: 'simpleforwarder', mode: 'tc', ports: ['in', 'out'], logLevel: 'debug', params: { ttl: 3 } });
  fwd1.params.ttl = 4;
  t.deepEqual(chain.spec.cubes[0].params, { ttl: 3 }, 'the plan shares nothing mutable with the chain');
});

test('plan: stacks list cubes in the order a packet passes them', t => {
  const chain = demo();
  chain.spec.cubes.push(cube('fw1', 'host1', [], 'firewall', { mode: 'xdp' }), cube('cap1', 'host1', [], 'ddos'));
  chain.spec.attachments = [
    { cube: 'ddos1', to: 'fwd2:in', direction: 'both' },
    { cube: 'fw1', to: 'fwd2:in', direction: 'both' },
    { cube: 'cap1', to: 'fwd2:in', direction: 'egress' },
  ];
  const target = { kind: 'port', cube: 'fwd2', port: 'in' };
  t.deepEqual(planHost([chain], 'host1').stacks, [
    // Listed outermost first: arriving packets meet ddos1 first, leaving packets last.
    { target, direction: 'egress', cubes: ['cap1', 'fw1', 'ddos1'] },
    { target, direction: 'ingress', cubes: ['ddos1', 'fw1'] },
  ]);
});

test('plan: several chains on one host, sorted; a host with nothing gets an empty plan', t => {
  const plan = planHost([other(), demo()], 'host1');
  t.deepEqual(plan.cubes.map(c => `${c.chain}/${c.name}`), ['demo/ddos1', 'other/ddos9', 'demo/fwd1', 'demo/fwd2', 'other/ofwd']);
  t.deepEqual(plan.netdevs.map(n => n.ifname), ['eth-h1h2', 'veth0', 'veth5']);
  t.deepEqual(plan.stacks.map(s => s.cubes), [['ddos1'], ['ddos9']]);
  t.deepEqual(planHost([demo(), other()], 'host9'), { host: 'host9', cubes: [], ports: [], netdevs: [], stacks: [] });
});

test('plan: links written netdev first plan the same', t => {
  const chain = demo();
  chain.spec.links[1] = { from: 'netdev:veth0', to: 'fwd1:in' };
  t.deepEqual(planHost([chain], 'host1'), planHost([demo()], 'host1'));
});
