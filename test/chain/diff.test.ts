import test from 'ava';
import { diffChains } from '@netcube/api/chain';
import { cube, demo } from './fixtures';

const texts = (changes: { text: string }[]) => changes.map(c => c.text);

test('diff: identical chains have no changes, whatever the order of lists and keys', t => {
  const a = demo();
  a.spec.cubes[0].params = { a: 1, b: { c: [1, 2] } };
  const b = demo();
  b.spec.cubes.reverse();
  b.spec.cubes.find(c => c.name === 'fwd1')!.params = { b: { c: [1, 2] }, a: 1 };
  b.spec.links.reverse();
  b.spec.links[0] = { from: 'fwd3:in', to: 'fwd2:out', via: { from: 'eth-h2h1', to: 'eth-h1h2' } };
  t.deepEqual(diffChains(a, b), []);
});

test('diff: a new chain lists everything as added', t => {
  t.deepEqual(texts(diffChains(undefined, demo())), [
    '+ chain demo',
    '+ cube ddos1: ddos on host1, xdp, no ports, logLevel info',
    '+ cube fwd1: simpleforwarder on host1, xdp, ports in, out, logLevel info',
    '+ cube fwd2: simpleforwarder on host1, xdp, ports in, out, logLevel info',
    '+ cube fwd3: simpleforwarder on host2, xdp, ports in, out, logLevel info',
    '+ link fwd1:in <-> netdev:veth0',
    '+ link fwd1:out <-> fwd2:in',
    '+ link fwd2:out <-> fwd3:in: via eth-h1h2 <-> eth-h2h1',
    '+ attachment ddos1: netdev:veth0 ingress #1',
  ]);
  t.is(diffChains(demo(), undefined)[0].text, '- chain demo');
  t.true(diffChains(demo(), undefined).every(c => c.op === 'removed'));
});

test('diff: cubes added, removed and changed field by field', t => {
  const before = demo();
  const after = demo();
  after.spec.cubes = after.spec.cubes.filter(c => c.name !== 'fwd3');
  after.spec.links = after.spec.links.filter(l => !l.to.startsWith('fwd3'));
  after.spec.cubes.push(cube('fwd4', 'host1', ['in']));
  const fwd1 = after.spec.cubes[0];
  fwd1.logLevel = 'debug';
  fwd1.ports = ['in', 'out', 'mgmt'];
  before.spec.cubes[0].params = { ttl: 3, gone: true, deep: { x: 1 } };
  fwd1.params = { ttl: 4, deep: { x: 2, y: 'new' } };
  const changes = diffChains(before, after);
  t.deepEqual(texts(changes.filter(c => c.kind === 'cube')), [
    '~ cube fwd1: logLevel info -> debug; ports in, out -> in, out, mgmt; params.deep.x 1 -> 2; params.deep.y added: "new"; params.gone removed (was true); params.ttl 3 -> 4',
    '- cube fwd3: simpleforwarder on host2, xdp, ports in, out, logLevel info',
    '+ cube fwd4: simpleforwarder on host1, xdp, ports in, logLevel info',
  ]);
  t.deepEqual(
    changes.filter(c => c.kind === 'link').map(c => [c.op, c.id]),
    [['removed', 'fwd2:out <-> fwd3:in']],
  );
});

test('diff: links change when their via changes', t => {
  const after = demo();
  after.spec.links[2].via = { from: 'eth0', to: 'eth1' };
  t.deepEqual(texts(diffChains(demo(), after)), ['~ link fwd2:out <-> fwd3:in: via eth-h1h2 <-> eth-h2h1 -> via eth0 <-> eth1']);
});

test('diff: attachments moved or reordered in their stack', t => {
  const before = demo();
  before.spec.cubes.push(cube('fw1', 'host1', [], 'firewall'));
  before.spec.attachments.push({ cube: 'fw1', to: 'netdev:veth0', direction: 'both' });
  const reordered = structuredClone(before);
  reordered.spec.attachments.reverse();
  t.deepEqual(texts(diffChains(before, reordered)), [
    '~ attachment ddos1: netdev:veth0 ingress #1 -> netdev:veth0 ingress #2',
    '~ attachment fw1: netdev:veth0 ingress #2, egress #1 -> netdev:veth0 ingress #1, egress #1',
  ]);
  const moved = structuredClone(before);
  moved.spec.attachments[0] = { cube: 'ddos1', to: 'fwd1:out', direction: 'egress' };
  t.deepEqual(texts(diffChains(before, moved)), [
    '~ attachment ddos1: netdev:veth0 ingress #1 -> fwd1:out egress #1',
    '~ attachment fw1: netdev:veth0 ingress #2, egress #1 -> netdev:veth0 ingress #1, egress #1',
  ]);
});

test('diff: table sizes set, changed and dropped', t => {
  const before = demo();
  const after = demo();
  after.spec.cubes[0].tableSizes = { fw_ct: 64, nat_ct: 128 };
  t.deepEqual(texts(diffChains(before, after)), ['~ cube fwd1: tableSizes.fw_ct added: 64; tableSizes.nat_ct added: 128; the cube is loaded anew: its tables start empty']);
  const changed = structuredClone(after);
  changed.spec.cubes[0].tableSizes = { fw_ct: 1024 };
  t.deepEqual(texts(diffChains(after, changed)), ['~ cube fwd1: tableSizes.fw_ct 64 -> 1024; tableSizes.nat_ct removed (was 128); the cube is loaded anew: its tables start empty']);
  t.deepEqual(diffChains(changed, structuredClone(changed)), [], 'the same sizes: no change');
});
