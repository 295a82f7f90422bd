// Chains and cube types shared by the chain tests (and the store tests).

import { Chain, CubeSpec, CubeTypeInfo, typeCatalog } from '@netcube/api/chain';

export const TYPES: CubeTypeInfo[] = [
  { name: 'simpleforwarder', transparent: false, microcubes: 1, modes: ['xdp', 'tc'] },
  { name: 'router', transparent: false, microcubes: 3, modes: ['xdp', 'tc'], decrementsTtl: true },
  { name: 'tconly', transparent: false, microcubes: 1, modes: ['tc'] },
  { name: 'ddos', transparent: true, microcubes: 1, modes: ['xdp', 'tc'] },
  {
    name: 'firewall',
    transparent: true,
    microcubes: 2,
    modes: ['tc', 'xdp'],
    tables: [
      { name: 'fw_ct', scope: 'cube', mapType: 'lru_hash', maxEntries: 32768 },
      { name: 'fw_rules', scope: 'cube', mapType: 'array', maxEntries: 4096 },
      { name: 'fw_prefixes', scope: 'cube', mapType: 'lpm_trie', maxEntries: 1024 },
      { name: 'fw_shared', scope: 'host', mapType: 'hash', maxEntries: 1024 },
      { name: 'fw_scratch', scope: 'private', mapType: 'percpu_hash', maxEntries: 16 },
    ],
  },
];
export const catalog = typeCatalog(TYPES);

export function cube(name: string, host: string, ports: string[], type = 'simpleforwarder', extra: Partial<CubeSpec> = {}): CubeSpec {
  return { name, host, type, mode: 'xdp', ports, logLevel: 'info', params: {}, ...extra };
}

/** fwd1 -> fwd2 on host1, fwd2 -> fwd3 across to host2, ddos1 in front of veth0. */
export function demo(): Chain {
  return {
    apiVersion: 'netcube/v1',
    kind: 'Chain',
    metadata: { name: 'demo' },
    spec: {
      cubes: [
        cube('fwd1', 'host1', ['in', 'out']),
        cube('fwd2', 'host1', ['in', 'out']),
        cube('fwd3', 'host2', ['in', 'out']),
        cube('ddos1', 'host1', [], 'ddos'),
      ],
      links: [
        { from: 'fwd1:out', to: 'fwd2:in' },
        { from: 'fwd1:in', to: 'netdev:veth0' },
        { from: 'fwd2:out', to: 'fwd3:in', via: { from: 'eth-h1h2', to: 'eth-h2h1' } },
      ],
      attachments: [{ cube: 'ddos1', to: 'netdev:veth0', direction: 'ingress' }],
    },
  };
}

/** Another chain on host1: ofwd behind veth5, with ddos9 in front of it. */
export function other(): Chain {
  return {
    apiVersion: 'netcube/v1',
    kind: 'Chain',
    metadata: { name: 'other' },
    spec: {
      cubes: [cube('ofwd', 'host1', ['a', 'b']), cube('ddos9', 'host1', [], 'ddos')],
      links: [{ from: 'ofwd:a', to: 'netdev:veth5' }],
      attachments: [{ cube: 'ddos9', to: 'netdev:veth5', direction: 'ingress' }],
    },
  };
}

/** `count` cubes of `type` in a line on one host, fed by a netdev. */
export function line(name: string, count: number, type = 'simpleforwarder', host = 'host1', netdev = 'veth0'): Chain {
  const cubes = Array.from({ length: count }, (_, i) => cube(`${name}${i + 1}`, host, ['in', 'out'], type));
  const links = [{ from: `netdev:${netdev}`, to: `${name}1:in` }];
  for (let i = 1; i < count; i++) links.push({ from: `${name}${i}:out`, to: `${name}${i + 1}:in` });
  return {
    apiVersion: 'netcube/v1',
    kind: 'Chain',
    metadata: { name },
    spec: { cubes, links, attachments: [] },
  };
}

export const DEMO_YAML = `apiVersion: netcube/v1
kind: Chain
metadata:
  name: demo
spec:
  cubes:
    - name: fwd1
      host: host1
      type: simpleforwarder
      ports: [in, out]
    - name: fwd2
      host: host1
      type: simpleforwarder
      ports: [in, out]
    - name: fwd3
      host: host2
      type: simpleforwarder
      ports: [in, out]
    - name: ddos1
      host: host1
      type: ddos
  links:
    - from: fwd1:out
      to: fwd2:in
    - from: fwd1:in
      to: netdev:veth0
    - from: fwd2:out
      to: fwd3:in
      via: { from: eth-h1h2, to: eth-h2h1 }
  attachments:
    - cube: ddos1
      to: netdev:veth0
      direction: ingress
`;
