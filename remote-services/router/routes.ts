// What a router's config means for its routing table, without a kernel: the
// connected routes its port addresses (primary and secondary) make, the static
// routes, and which one of each prefix is used. The service writes the used ones
// into the `routes` table and routes its own packets by them; the tests check the
// choice here.
//
// One route per prefix is used, as in Linux and Polycube: a connected route wins
// over every static route for its prefix; among static routes the lowest metric
// (path cost) wins. Config validation refuses two static routes with the same
// prefix and metric, so the choice never depends on their order.

import type { RouterConfig__Output as RouterConfig } from '@netcube/api/generated/netcube/router/v1/RouterConfig';
import type { RouterPort__Output as RouterPort } from '@netcube/api/generated/netcube/router/v1/RouterPort';
import { cidrContains, formatIpv4, parseCidr, type Cidr } from '@netcube/sdk/packet';

export interface RouteModel {
  cidr: Cidr;
  nexthop?: string;
  port: string;
  connected: boolean;
  /** Connected routes cost 0. */
  metric: number;
  /** The route of its prefix in the table; false: another one of the prefix wins. */
  active: boolean;
}

/** A port's addresses as written, a.b.c.d/len: its primary address first, then the secondary ones. */
export const portAddresses = (p: RouterPort): string[] => [p.address, ...p.secondaryAddresses];

/** `prefix/len` of a route, host bits cleared. */
export const prefixOf = (cidr: Cidr): string => `${formatIpv4(cidr.network)}/${cidr.prefixLength}`;

/** Every route of the config, each marked active or not; connected ones first, in port order. */
export function routesOf(config: RouterConfig): RouteModel[] {
  const connected = Object.entries(config.ports).flatMap(([port, p]) =>
    portAddresses(p).map((address) => {
      const cidr = parseCidr(address);
      return { cidr: { ...cidr, address: cidr.network }, port, connected: true, metric: 0, active: false };
    }),
  );
  const fixed = config.routes.map((r) => ({ cidr: parseCidr(r.prefix), nexthop: r.nexthop, port: r.port, connected: false, metric: r.metric, active: false }));
  const all: RouteModel[] = [...connected, ...fixed];
  const best = new Map<string, RouteModel>();
  for (const r of all) {
    const held = best.get(prefixOf(r.cidr));
    if (!held || r.metric < held.metric) best.set(prefixOf(r.cidr), r);
  }
  for (const r of best.values()) r.active = true;
  return all;
}

/** The route for `dst`: the active one of the longest prefix that holds it. */
export function lookup(config: RouterConfig, dst: string): RouteModel | undefined {
  let found: RouteModel | undefined;
  for (const r of routesOf(config)) if (r.active && cidrContains(r.cidr, dst) && (!found || r.cidr.prefixLength > found.cidr.prefixLength)) found = r;
  return found;
}
