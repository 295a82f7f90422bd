// The router's routing table from its config, without a kernel (remote-services/
// router/routes.ts): connected routes from every address of a port, secondary ones
// too; one route per prefix used, a connected one before a static one for the same
// prefix (as Linux and Polycube), else the lowest metric; lookups by the used ones.

import test from 'ava';
import type { RouterConfig__Output as RouterConfig } from '@netcube/api/generated/netcube/router/v1/RouterConfig';
import { ConfigSchema } from '@netcube/sdk';
import router from '@netcube/router';
import { lookup, prefixOf, routesOf } from '@netcube/router/routes';

const config = (params: unknown): RouterConfig => ConfigSchema.load<RouterConfig>(router.config.proto, router.config.message).normalize(params);

/** The routes as `prefix port [via nexthop] metric`, the used ones marked with *. */
const table = (c: RouterConfig): string[] =>
  routesOf(c).map((r) => `${r.active ? '*' : ' '}${prefixOf(r.cidr)} ${r.port}${r.nexthop ? ` via ${r.nexthop}` : ''} ${r.metric}`);

test('every address of a port makes a connected route, secondary ones too', (t) => {
  const c = config({ ports: { lan: { address: '10.0.0.1/24', secondaryAddresses: ['10.5.0.1/24', '192.168.7.9/30'] }, wan: { address: '10.1.0.1/24' } } });
  t.deepEqual(table(c), ['*10.0.0.0/24 lan 0', '*10.5.0.0/24 lan 0', '*192.168.7.8/30 lan 0', '*10.1.0.0/24 wan 0']);
  t.is(lookup(c, '10.5.0.77')?.port, 'lan');
  t.true(lookup(c, '192.168.7.10')?.connected);
});

test('a connected route is used before a static route for the same prefix, whatever its metric', (t) => {
  const c = config({
    ports: { lan: { address: '10.0.0.1/24' }, wan: { address: '10.1.0.1/24' } },
    routes: [{ prefix: '10.0.0.0/24', nexthop: '10.1.0.9', port: 'wan', metric: 0 }],
  });
  t.deepEqual(table(c), ['*10.0.0.0/24 lan 0', '*10.1.0.0/24 wan 0', ' 10.0.0.0/24 wan via 10.1.0.9 0']);
  t.like(lookup(c, '10.0.0.5'), { port: 'lan', connected: true, nexthop: undefined });
});

test('two static routes for one prefix coexist: the lower metric is used, in either order', (t) => {
  const ports = { lan: { address: '10.0.0.1/24' }, wan: { address: '10.1.0.1/24' } };
  const primary = { prefix: '10.9.0.0/16', nexthop: '10.1.0.9', port: 'wan', metric: 10 };
  const backup = { prefix: '10.9.0.0/16', nexthop: '10.0.0.9', port: 'lan', metric: 20 };
  for (const routes of [[primary, backup], [backup, primary]]) {
    const c = config({ ports, routes });
    t.deepEqual(routesOf(c).filter((r) => r.cidr.prefixLength === 16).map((r) => [r.nexthop, r.active]), routes.map((r) => [r.nexthop, r === primary]));
    t.like(lookup(c, '10.9.3.4'), { nexthop: '10.1.0.9', port: 'wan', metric: 10 });
  }
  // Without a metric a route costs 1: it wins over both.
  const c = config({ ports, routes: [primary, backup, { prefix: '10.9.0.0/16', nexthop: '10.0.0.7', port: 'lan' }] });
  t.like(lookup(c, '10.9.3.4'), { nexthop: '10.0.0.7', metric: 1 });
});

test('the longest prefix still wins over a lower metric', (t) => {
  const c = config({
    ports: { lan: { address: '10.0.0.1/24' }, wan: { address: '10.1.0.1/24' } },
    routes: [
      { prefix: '10.9.0.0/16', nexthop: '10.1.0.9', port: 'wan', metric: 1 },
      { prefix: '10.9.5.0/24', nexthop: '10.0.0.9', port: 'lan', metric: 100 },
    ],
  });
  t.like(lookup(c, '10.9.5.1'), { nexthop: '10.0.0.9' });
  t.like(lookup(c, '10.9.6.1'), { nexthop: '10.1.0.9' });
  t.is(lookup(c, '172.16.0.1'), undefined);
});
