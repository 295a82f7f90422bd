// The load balancer's translator (remote-services/lbrp/tables.ts), without a
// kernel: Maglev's shares and how little a change moves, stable ids, and config
// errors that name the field.
import test from 'ava';
import { FieldError } from '@netcube/catalog/fields';
import { compileLb, MAGLEV_SIZE, maglev, NO_PORT, type LbConfig } from '@netcube/lbrp/tables';

const shares = (table: number[], n: number): number[] => {
  const out = new Array<number>(n).fill(0);
  for (const i of table) out[i]++;
  return out;
};
const names = (n: number, prefix = '10.1.0.'): { name: string; weight: number }[] =>
  Array.from({ length: n }, (_, i) => ({ name: `::ffff:${prefix}${i + 1} 8080`, weight: 1 }));

test('Maglev: every slot has a backend, in equal shares', (t) => {
  for (const n of [1, 2, 3, 7, 50]) {
    const table = maglev(names(n));
    t.is(table.length, MAGLEV_SIZE);
    const s = shares(table, n);
    t.true(Math.max(...s) - Math.min(...s) <= 1, `${n} backends: shares ${Math.min(...s)}..${Math.max(...s)}`);
  }
});

test('Maglev: shares follow the weights; weight 0 takes none', (t) => {
  const backends = [
    { name: 'a', weight: 1 },
    { name: 'b', weight: 2 },
    { name: 'c', weight: 0 },
    { name: 'd', weight: 1 },
  ];
  const s = shares(maglev(backends), 4);
  t.is(s[2], 0);
  t.is(s[0] + s[1] + s[3], MAGLEV_SIZE);
  t.true(Math.abs(s[1] / MAGLEV_SIZE - 0.5) < 0.01, `b: ${s[1]}`);
  t.true(Math.abs(s[0] - s[3]) <= 1, `a ${s[0]}, d ${s[3]}`);
  t.deepEqual(maglev([{ name: 'a', weight: 0 }]), new Array<number>(MAGLEV_SIZE).fill(-1));
});

test('Maglev: the table depends on the backends, not on the order of the list', (t) => {
  const list = names(5);
  const byName = (table: number[], of: typeof list) => table.map((i) => of[i].name);
  t.deepEqual(byName(maglev(list), list), byName(maglev([...list].reverse()), [...list].reverse()));
});

test('Maglev: removing one of ten backends moves its slots, and few others', (t) => {
  const ten = names(10);
  const before = maglev(ten).map((i) => ten[i].name);
  const nine = ten.filter((_, i) => i !== 4);
  const after = maglev(nine).map((i) => nine[i].name);
  let moved = 0;
  before.forEach((name, slot) => {
    if (name !== ten[4].name && after[slot] !== name) moved++;
  });
  // Maglev's bound: a small fraction of the others' slots change owner.
  t.true(moved / MAGLEV_SIZE < 0.05, `${moved} of ${MAGLEV_SIZE} slots of remaining backends moved`);
  t.false(after.includes(ten[4].name));
});

const PORTS = { f0: 0, f1: 1, be: 2 };
const base: LbConfig = {
  backendPort: 'be',
  frontends: { f0: { hosts: ['10.0.0.10'] } },
  services: [
    { vip: '10.96.0.1', port: 80, protocol: 'tcp', backends: [{ address: '10.1.0.1', port: 8080 }, { address: '10.1.0.2', port: 8080, weight: 3 }] },
    { vip: 'fd00:96::1', port: 53, protocol: 'udp', backends: [{ address: 'fd00:1::1' }], affinitySeconds: 600 },
  ],
};

test('tables: ports, hosts, services, backends and their Maglev tables', (t) => {
  const { tables, ids } = compileLb(base, { ports: PORTS });
  t.deepEqual(tables.lb_ports, [
    { key: 0, value: { role: 'LB_FRONTEND' } },
    { key: 1, value: { role: 'LB_FRONTEND' } },
    { key: 2, value: { role: 'LB_BACKEND' } },
  ]);
  t.deepEqual(tables.lb_config, [{ key: 0, value: { backend_port: 2, default_port: NO_PORT } }]);
  t.deepEqual(tables.lb_hosts, [{ key: '::ffff:10.0.0.10', value: 0 }]);
  t.deepEqual(tables.lb_services, [
    { key: { vip: '::ffff:10.96.0.1', port: 80, proto: 6, pad: 0 }, value: { id: 0, backends: 2, affinity_s: 0, pad: 0 } },
    { key: { vip: 'fd00:96::1', port: 53, proto: 17, pad: 0 }, value: { id: 1, backends: 1, affinity_s: 600, pad: 0 } },
  ]);
  t.deepEqual(tables.lb_backends, [
    { key: 1, value: { addr: '::ffff:10.1.0.1', port: 8080, pad: 0 } },
    { key: 2, value: { addr: '::ffff:10.1.0.2', port: 8080, pad: 0 } },
    { key: 3, value: { addr: 'fd00:1::1', port: 53, pad: 0 } },
  ]);
  const web = (tables.lb_maglev[0].value as { slot: number[] }).slot;
  t.is(web.length, MAGLEV_SIZE);
  const heavy = web.filter((id) => id === 2).length;
  t.true(Math.abs(heavy / MAGLEV_SIZE - 0.75) < 0.01, `weight 3 of 4: ${heavy} slots`);
  t.deepEqual((tables.lb_maglev[1].value as { slot: number[] }).slot, new Array<number>(MAGLEV_SIZE).fill(3));
  t.deepEqual(ids, { services: { '::ffff:10.96.0.1 80/tcp': 0, 'fd00:96::1 53/udp': 1 }, backends: { '::ffff:10.1.0.1 8080': 1, '::ffff:10.1.0.2 8080': 2, 'fd00:1::1 53': 3 } });
});

test('ids stay with services and backends; a freed id is not given out at once', (t) => {
  const first = compileLb(base, { ports: PORTS });
  const changed: LbConfig = {
    ...base,
    services: [
      { vip: '10.96.0.9', port: 80, protocol: 'tcp', backends: [{ address: '10.1.0.9' }] },
      { ...base.services![0], backends: [{ address: '10.1.0.2', port: 8080 }, { address: '10.1.0.3', port: 8080 }] },
    ],
  };
  const second = compileLb(changed, { ports: PORTS, previous: first.ids });
  t.is(second.ids.services['::ffff:10.96.0.1 80/tcp'], 0, 'the web service keeps its id');
  t.is(second.ids.services['::ffff:10.96.0.9 80/tcp'], 2, 'a new service takes neither 0 nor the freed 1');
  t.is(second.ids.backends['::ffff:10.1.0.2 8080'], 2);
  t.deepEqual([second.ids.backends['::ffff:10.1.0.9 80'], second.ids.backends['::ffff:10.1.0.3 8080']], [4, 5]);
  t.deepEqual(second.freedBackends.sort(), [1, 3]);
  const empty = compileLb({ ...base, services: [{ vip: '10.96.0.1', port: 80, protocol: 'tcp' }] }, { ports: PORTS });
  t.deepEqual(empty.tables.lb_services[0].value, { id: 0, backends: 0, affinity_s: 0, pad: 0 });
  t.deepEqual((empty.tables.lb_maglev[0].value as { slot: number[] }).slot, new Array<number>(MAGLEV_SIZE).fill(0));
});

test('config errors name the field', (t) => {
  const svc = base.services![0];
  const cases: [unknown, string][] = [
    [{ ...base, backendPort: 'out' }, 'backendPort: "out" is not a port of the cube; its ports are f0, f1, be'],
    [{ ...base, defaultFrontend: 'be' }, 'defaultFrontend: the backend port cannot be a frontend'],
    [{ ...base, frontends: { be: {} } }, 'frontends.be: the backend port cannot be a frontend'],
    [{ ...base, frontends: { f0: { hosts: ['10.0.0.1'] }, f1: { hosts: ['10.0.0.1'] } } }, 'frontends.f1.hosts[0]: 10.0.0.1 is behind f0 already'],
    [{ ...base, services: [{ ...svc, protocol: 'icmp' }] }, 'services[0].protocol: expected one of tcp, udp, sctp, got "icmp"'],
    [{ ...base, services: [{ ...svc, port: 0 }] }, 'services[0].port: expected an integer from 1 to 65535, got 0'],
    [{ ...base, services: [{ ...svc, backends: [{ address: 'fd00::1' }] }] }, "services[0].backends[0].address: fd00::1 is IPv6 but the service's vip 10.96.0.1 is IPv4"],
    [{ ...base, services: [{ ...svc, backends: [{ address: '10.1.0.1', weight: -1 }] }] }, 'services[0].backends[0].weight: expected an integer from 0 to 1000, got -1'],
    [{ ...base, services: [{ ...svc, backends: [{ address: '10.1.0.1' }, { address: '10.1.0.1', port: 80 }] }] }, 'services[0].backends[1]: 10.1.0.1 port 80 is listed twice'],
    [{ ...base, services: [svc, svc] }, 'services[1]: services[0] is the same service (vip, port and protocol)'],
    [{ ...base, services: [{ ...svc, affinity: 10 }] }, 'services[0].affinity: unknown field; the fields here are vip, port, protocol, backends, affinitySeconds'],
  ];
  for (const [config, message] of cases) {
    const err = t.throws(() => compileLb(config, { ports: PORTS }), { instanceOf: FieldError });
    t.is(err?.message, message);
  }
});

test('10,000 services with 30,000 backends: each in the tables, each with its Maglev table', (t) => {
  const services = Array.from({ length: 10_000 }, (_, i) => ({
    vip: `10.96.${i >> 8}.${i & 0xff}`,
    port: 80,
    protocol: 'tcp' as const,
    backends: [1, 2, 3].map((b) => ({ address: `10.${100 + b}.${i >> 8}.${i & 0xff}` })),
  }));
  const { tables } = compileLb({ backendPort: 'be', services }, { ports: PORTS });
  t.is(tables.lb_services.length, 10_000);
  t.is(tables.lb_backends.length, 30_000);
  t.is(tables.lb_maglev.length, 10_000);
  t.is(new Set(tables.lb_services.map((s) => (s.value as { id: number }).id)).size, 10_000, 'distinct ids');
});
