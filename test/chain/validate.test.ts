import test from 'ava';
import { Chain, ChainValidationError, validateChain } from '@netcube/api/chain';
import { hostCheck } from '../../node-daemon/src/chain';
import { MAX_TAIL_CALLS } from '../../node-daemon/src/runtime/abi';
import { catalog, cube, demo, line, other } from './fixtures';

interface Expected {
  path: string;
  /** Words the message must contain. */
  says?: string[];
  /** The whole message, when it is worth pinning. */
  exactly?: string;
}

interface Case {
  title: string;
  /** Edits a fresh copy of the demo chain, or returns a chain of its own. */
  chain: (c: Chain) => Chain | void;
  others?: Chain[];
  expect: Expected[] | 'valid';
}

// Chains arrive from anywhere (gRPC, etcd, code); the wrong shapes below are deliberate.
type Loose = any;

const cases: Case[] = [
  // --- valid chains ---
  { title: 'the demo chain', chain: () => undefined, expect: 'valid' },
  { title: 'beside another chain on the same host', chain: () => undefined, others: [other()], expect: 'valid' },
  {
    title: 'replacing an older version of itself',
    chain: () => undefined,
    others: [demo(), other()],
    expect: 'valid',
  },
  {
    title: 'a netdev name reused on another host',
    chain: c => void c.spec.links.push({ from: 'fwd3:out', to: 'netdev:veth0' }),
    expect: 'valid',
  },
  {
    title: 'defaults may be left out',
    chain: c => {
      const loose = c.spec.cubes[0] as Loose;
      delete loose.mode;
      delete loose.logLevel;
      delete loose.params;
    },
    expect: 'valid',
  },
  { title: `exactly ${MAX_TAIL_CALLS} tail calls`, chain: () => line('c', MAX_TAIL_CALLS), expect: 'valid' },
  {
    title: 'a long path split across hosts',
    chain: () => {
      const c = line('c', 40);
      c.spec.cubes.slice(20).forEach(k => (k.host = 'host2'));
      c.spec.links[20].via = { from: 'eth0', to: 'eth0' };
      return c;
    },
    expect: 'valid',
  },
  {
    title: 'a transparent stack on a port, in tc mode on both sides',
    chain: c => {
      c.spec.cubes.forEach(k => (k.mode = 'tc'));
      c.spec.attachments[0] = { cube: 'ddos1', to: 'fwd2:in', direction: 'both' };
    },
    expect: 'valid',
  },

  // --- schema ---
  {
    title: 'unknown field, with a suggestion',
    chain: c => void ((c.spec.cubes[0] as Loose).prots = ['in']),
    expect: [{ path: 'spec.cubes[0].prots', says: ["unknown field 'prots'", "did you mean 'ports'?"] }],
  },
  {
    title: 'unknown top-level field',
    chain: c => void ((c as Loose).status = {}),
    expect: [{ path: 'status', says: ["unknown field 'status'", 'apiVersion, kind, metadata, spec'] }],
  },
  {
    title: 'wrong apiVersion',
    chain: c => void ((c as Loose).apiVersion = 'netcube/v2'),
    expect: [{ path: 'apiVersion', says: ['must be netcube/v1'] }],
  },
  {
    title: 'ports not a list',
    chain: c => void ((c.spec.cubes[0] as Loose).ports = 'in'),
    expect: [{ path: 'spec.cubes[0].ports', says: ['must be a list', "the string 'in'"] }],
  },
  {
    title: 'a port name given as a number',
    chain: c => void ((c.spec.cubes[0] as Loose).ports = [1, 'out']),
    expect: [{ path: 'spec.cubes[0].ports[0]', says: ['must be a string', 'quote it: "1"'] }],
  },
  {
    title: 'bad cube name',
    chain: c => void (c.spec.cubes[0].name = 'Fwd_1'),
    expect: [{ path: 'spec.cubes[0].name', says: ["cube name 'Fwd_1' is invalid", 'lowercase letters, digits', '63'] }],
  },
  {
    title: 'bad chain name',
    chain: c => void (c.metadata.name = '-demo'),
    expect: [{ path: 'metadata.name', says: ["chain name '-demo' is invalid"] }],
  },
  {
    title: 'bad host name',
    chain: c => void (c.spec.cubes[0].host = 'Host_1'),
    expect: [{ path: 'spec.cubes[0].host', says: ["host name 'Host_1' is invalid"] }],
  },
  {
    title: 'missing host',
    chain: c => void delete (c.spec.cubes[0] as Loose).host,
    expect: [{ path: 'spec.cubes[0].host', says: ["a cube needs 'host'"] }],
  },
  {
    title: 'mode not in the enum',
    chain: c => void ((c.spec.cubes[0] as Loose).mode = 'XDP'),
    expect: [{ path: 'spec.cubes[0].mode', says: ['mode must be one of xdp, tc', "'XDP'"] }],
  },
  {
    title: 'logLevel not in the enum',
    chain: c => void ((c.spec.cubes[0] as Loose).logLevel = 'verbose'),
    expect: [{ path: 'spec.cubes[0].logLevel', says: ['off, error, warn, info, debug, trace'] }],
  },
  {
    title: 'port name too long',
    chain: c => void (c.spec.cubes[0].ports[0] = 'a-very-long-port-name'),
    expect: [{ path: 'spec.cubes[0].ports[0]', says: ["port name 'a-very-long-port-name' is invalid", 'at most 15'] }],
  },
  {
    title: 'more than 32 ports',
    chain: c => void (c.spec.cubes[1].ports = ['in', 'out', ...Array.from({ length: 31 }, (_, i) => `p${i}`)]),
    expect: [{ path: 'spec.cubes[1].ports', says: ['at most 32 ports', 'lists 33'] }],
  },
  {
    title: 'params not a mapping',
    chain: c => void ((c.spec.cubes[0] as Loose).params = [1, 2]),
    expect: [{ path: 'spec.cubes[0].params', says: ['params must be a mapping', 'a list'] }],
  },
  {
    title: 'params not JSON',
    chain: c => void ((c.spec.cubes[0] as Loose).params = { ttl: Infinity }),
    expect: [{ path: 'spec.cubes[0].params.ttl', says: ['not a JSON number'] }],
  },
  {
    title: 'no cubes',
    chain: c => void (c.spec = { cubes: [], links: [], attachments: [] }),
    expect: [{ path: 'spec.cubes', says: ['at least one cube'] }],
  },
  {
    title: 'endpoint without a port',
    chain: c => void (c.spec.links[0].to = 'fwd2'),
    expect: [{ path: 'spec.links[0].to', says: ['<cube>:<port> or netdev:<ifname>', "'fwd2'"] }],
  },
  {
    title: 'bad netdev name in via',
    chain: c => void (c.spec.links[2].via!.from = 'an-interface-name-too-long'),
    expect: [{ path: 'spec.links[2].via.from', says: ['netdev name', 'is invalid', '1 to 15'] }],
  },
  {
    title: "a cube named 'netdev'",
    chain: c => void (c.spec.cubes[0].name = 'netdev'),
    expect: [{ path: 'spec.cubes[0].name', says: ["'netdev' is reserved"] }],
  },
  {
    title: 'attachment without a direction',
    chain: c => void delete (c.spec.attachments[0] as Loose).direction,
    expect: [{ path: 'spec.attachments[0].direction', says: ["an attachment needs 'direction'"] }],
  },
  {
    title: 'several shape problems at once',
    chain: c => {
      (c.spec.cubes[0] as Loose).mode = 'fast';
      (c.spec.links[1] as Loose).to = 'veth0';
    },
    expect: [
      { path: 'spec.cubes[0].mode', says: ['mode must be one of'] },
      { path: 'spec.links[1].to', says: ['<cube>:<port> or netdev:<ifname>'] },
    ],
  },

  // --- types and modes ---
  {
    title: 'unknown cube type',
    chain: c => void (c.spec.cubes[0].type = 'simplefwd'),
    expect: [{ path: 'spec.cubes[0].type', says: ['unknown cube type simplefwd', 'known types are ddos, firewall, router', 'register the type'] }],
  },
  {
    title: 'mode the type does not support',
    chain: c => void (c.spec.cubes[2].type = 'tconly'),
    expect: [{ path: 'spec.cubes[2].mode', says: ['cube type tconly does not run in xdp mode', 'only in tc', 'set mode: tc'] }],
  },
  {
    title: 'cubes of different modes linked on one host',
    chain: c => void (c.spec.cubes[1].mode = 'tc'),
    expect: [{ path: 'spec.links[0]', says: ['fwd1 runs in xdp mode and fwd2 in tc mode on host1', 'cannot tail-call each other'] }],
  },
  {
    title: 'cubes of different modes on different hosts are fine',
    chain: c => void (c.spec.cubes[2].mode = 'tc'),
    expect: 'valid',
  },

  // --- names across the cluster ---
  {
    title: 'duplicate cube name in the chain',
    chain: c => void c.spec.cubes.push(cube('fwd1', 'host2', ['x'])),
    expect: [{ path: 'spec.cubes[4].name', says: ['cube name fwd1 is already used by spec.cubes[0]', 'unique across the cluster'] }],
  },
  {
    title: 'cube name used by another chain',
    chain: c => void c.spec.cubes.push(cube('ofwd', 'host2', ['x'])),
    others: [other()],
    expect: [{ path: 'spec.cubes[4].name', says: ['cube name ofwd is already used by chain other (on host1)', 'rename it'] }],
  },
  {
    title: 'duplicate port name',
    chain: c => void (c.spec.cubes[0].ports = ['in', 'out', 'in']),
    expect: [{ path: 'spec.cubes[0].ports[2]', says: ['port in is listed twice in cube fwd1'] }],
  },

  // --- links ---
  {
    title: 'link to an unknown cube',
    chain: c => void (c.spec.links[0].to = 'fwd9:in'),
    expect: [{ path: 'spec.links[0].to', says: ['unknown cube fwd9', 'the cubes of this chain are fwd1, fwd2, fwd3, ddos1'] }],
  },
  {
    title: 'link to an unknown port',
    chain: c => void (c.spec.links[0].to = 'fwd2:inn'),
    expect: [{ path: 'spec.links[0].to', says: ['cube fwd2 has no port inn', 'its ports are in, out', 'spec.cubes[1].ports'] }],
  },
  {
    title: "link to another chain's cube",
    chain: c => void (c.spec.links[0].to = 'ofwd:b'),
    others: [other()],
    expect: [{ path: 'spec.links[0].to', says: ['cube ofwd belongs to chain other', 'only to its own cubes'] }],
  },
  {
    title: 'link to a transparent cube',
    chain: c => void (c.spec.links[0].to = 'ddos1:in'),
    expect: [{ path: 'spec.links[0].to', says: ['cube ddos1 is transparent and has no ports', 'spec.attachments'] }],
  },
  {
    title: 'a port linked twice',
    chain: c => void c.spec.links.push({ from: 'fwd1:out', to: 'netdev:veth3' }),
    expect: [{ path: 'spec.links[3].from', says: ['port fwd1:out already has a peer', 'spec.links[0] links it to fwd2:in', 'at most one peer'] }],
  },
  {
    title: 'a port linked to itself',
    chain: c => void c.spec.links.push({ from: 'fwd3:out', to: 'fwd3:out' }),
    expect: [{ path: 'spec.links[3]', says: ['both ends are fwd3:out'] }],
  },
  {
    title: 'two netdevs linked',
    chain: c => void c.spec.links.push({ from: 'netdev:veth1', to: 'netdev:veth2' }),
    expect: [{ path: 'spec.links[3]', says: ['both ends (netdev:veth1, netdev:veth2) are netdevs'] }],
  },
  {
    title: 'a netdev linked twice on one host',
    chain: c => {
      c.spec.cubes.push(cube('fwd4', 'host1', ['p']));
      c.spec.links.push({ from: 'fwd4:p', to: 'netdev:veth0' });
    },
    expect: [{ path: 'spec.links[3].to', says: ['netdev veth0 on host1 already has a peer', 'spec.links[1] links it to fwd1:in'] }],
  },
  {
    title: 'a via netdev already linked on its host',
    chain: c => void (c.spec.links[2].via!.from = 'veth0'),
    expect: [{ path: 'spec.links[2].via.from', says: ['netdev veth0 on host1 already has a peer'] }],
  },
  {
    title: 'a netdev linked by another chain',
    chain: c => {
      c.spec.cubes.push(cube('fwd4', 'host1', ['p']));
      c.spec.links.push({ from: 'netdev:veth5', to: 'fwd4:p' });
    },
    others: [other()],
    expect: [{ path: 'spec.links[3].from', says: ['netdev veth5 on host1 already has a peer', 'chain other links it to ofwd:a'] }],
  },
  {
    title: 'cross-host link without via',
    chain: c => void delete c.spec.links[2].via,
    expect: [
      {
        path: 'spec.links[2].via',
        exactly: 'cube fwd2 on host1 and fwd3 on host2 are on different hosts: add via: {from: <netdev on host1>, to: <netdev on host2>}',
      },
    ],
  },
  {
    title: 'via on a same-host link',
    chain: c => void (c.spec.links[0].via = { from: 'a', to: 'b' }),
    expect: [{ path: 'spec.links[0].via', says: ['fwd1 and fwd2 are both on host1', 'remove via'] }],
  },
  {
    title: 'via on a link to a netdev',
    chain: c => void (c.spec.links[1].via = { from: 'a', to: 'b' }),
    expect: [{ path: 'spec.links[1].via', says: ['ends at a netdev', 'remove via'] }],
  },

  // --- transparent cubes ---
  {
    title: 'ports on a transparent cube',
    chain: c => void (c.spec.cubes[3].ports = ['x']),
    expect: [{ path: 'spec.cubes[3].ports', says: ['cube type ddos is transparent', 'remove ports'] }],
  },
  {
    title: 'attaching a cube that is not transparent',
    chain: c => void c.spec.attachments.push({ cube: 'fwd3', to: 'netdev:eth1', direction: 'ingress' }),
    expect: [{ path: 'spec.attachments[1].cube', says: ['cube fwd3 is not transparent', 'spec.links'] }],
  },
  {
    title: 'a transparent cube attached twice',
    chain: c => void c.spec.attachments.push({ cube: 'ddos1', to: 'fwd2:in', direction: 'ingress' }),
    expect: [{ path: 'spec.attachments[1].cube', says: ['cube ddos1 is already attached by spec.attachments[0]', 'direction: both'] }],
  },
  {
    title: 'attaching an unknown cube',
    chain: c => void (c.spec.attachments[0].cube = 'ddos2'),
    expect: [{ path: 'spec.attachments[0].cube', says: ['unknown cube ddos2'] }],
  },
  {
    title: 'a detached transparent cube (in no attachment)',
    chain: c => void (c.spec.attachments = []),
    expect: 'valid',
  },
  {
    title: 'a replaced micro-cube the type does not have',
    chain: c => void (c.spec.cubes[0].replacedMicrocubes = { '1': 'a'.repeat(64) }),
    expect: [{ path: 'spec.cubes[0].replacedMicrocubes.1', says: ['no micro-cube 1 to replace'] }],
  },
  {
    title: 'a replaced micro-cube not named by a sha256',
    chain: c => void ((c.spec.cubes[0] as Loose).replacedMicrocubes = { '0': 'abc', x: 'a'.repeat(64) }),
    expect: [
      { path: 'spec.cubes[0].replacedMicrocubes.0', says: ['sha256'] },
      { path: 'spec.cubes[0].replacedMicrocubes.x', says: ['not a micro-cube index'] },
    ],
  },
  // --- tables sized by the chain (a firewall cube fw1, detached, is spec.cubes[4]) ---
  ...(
    [
      ['a conntrack table sized small', { fw_ct: 64 }, 'valid'],
      ['an LPM trie and an LRU hash sized at the limit', { fw_prefixes: 16777216, fw_ct: 1 }, 'valid'],
      ['a table the type does not have', { fw_nope: 64 }, [{ path: 'spec.cubes[4].tableSizes.fw_nope', says: ['cube type firewall has no table fw_nope', 'may size: fw_ct, fw_prefixes'] }]],
      ['an array', { fw_rules: 64 }, [{ path: 'spec.cubes[4].tableSizes.fw_rules', says: ['fw_rules of cube type firewall is a map of kind array', 'bounds fixed when it was built', 'only hash, lru_hash'] }]],
      ['a host-scope table', { fw_shared: 64 }, [{ path: 'spec.cubes[4].tableSizes.fw_shared', says: ['has host scope', 'every cube of the host shares it'] }]],
      ['a private table', { fw_scratch: 64 }, [{ path: 'spec.cubes[4].tableSizes.fw_scratch', says: ['has private scope', 'only tables of cube scope'] }]],
      ['zero entries', { fw_ct: 0 }, [{ path: 'spec.cubes[4].tableSizes.fw_ct', exactly: "a table's size is a whole number of entries from 1 to 16777216; got 0" }]],
      ['past the limit', { fw_ct: 16777217 }, [{ path: 'spec.cubes[4].tableSizes.fw_ct', says: ['from 1 to 16777216', 'got 16777217'] }]],
      ['a fraction', { fw_ct: 1.5 }, [{ path: 'spec.cubes[4].tableSizes.fw_ct', says: ['whole number', 'got 1.5'] }]],
      ['a string', { fw_ct: '64' }, [{ path: 'spec.cubes[4].tableSizes.fw_ct', says: ["got the string '64'"] }]],
      ['a name no table could have', { 'fw-ct': 64 }, [{ path: 'spec.cubes[4].tableSizes.fw-ct', says: ["'fw-ct' is not a table name"] }]],
      ['a list instead of a mapping', [64], [{ path: 'spec.cubes[4].tableSizes', says: ['tableSizes must be a mapping of table name to its max entries', 'got a list'] }]],
      ['too many tables', Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`t${i}`, 1])), [{ path: 'spec.cubes[4].tableSizes', says: ['at most 64 tables', 'sizes 65'] }]],
    ] as [string, unknown, Case['expect']][]
  ).map(([title, sizes, expect]): Case => ({
    title: `tableSizes: ${title}`,
    chain: c => void c.spec.cubes.push({ ...cube('fw1', 'host1', [], 'firewall'), tableSizes: sizes as Record<string, number> }),
    expect,
  })),
  {
    title: 'tableSizes: a type whose record lists no tables leaves the check to netcubed',
    chain: c => void (c.spec.cubes[0].tableSizes = { anything: 64 }),
    expect: 'valid',
  },
  {
    title: 'attaching to a port on another host',
    chain: c => void (c.spec.attachments[0].to = 'fwd3:in'),
    expect: [{ path: 'spec.attachments[0].to', says: ['ddos1 is on host1 but fwd3 is on host2', 'on its own host'] }],
  },
  {
    title: 'attaching to a port of a cube in another mode',
    chain: c => {
      c.spec.cubes[3].mode = 'tc';
      c.spec.attachments[0].to = 'fwd2:in';
    },
    expect: [{ path: 'spec.attachments[0].to', says: ['ddos1 runs in tc mode and fwd2 in xdp mode', 'cannot tail-call'] }],
  },
  {
    title: 'a stack on a netdev in another mode than the cube it feeds',
    chain: c => void (c.spec.cubes[3].mode = 'tc'),
    expect: [{ path: 'spec.attachments[0].to', says: ['netdev veth0 on host1 is linked to fwd1, which runs in xdp mode'] }],
  },
  {
    title: 'XDP egress on a netdev no cube sends to',
    chain: c => void (c.spec.attachments[0] = { cube: 'ddos1', to: 'netdev:eth9', direction: 'egress' }),
    expect: [{ path: 'spec.attachments[0].direction', says: ['XDP sees only the packets a netdev receives', 'use mode: tc for egress'] }],
  },
  {
    title: "attaching into another chain's stack",
    chain: c => void (c.spec.attachments[0].to = 'netdev:veth5'),
    others: [other()],
    expect: [{ path: 'spec.attachments[0].to', says: ['the ingress stack of netdev:veth5 on host1 belongs to chain other (ddos9)'] }],
  },

  // --- topology ---
  {
    title: 'a loop of three cubes',
    chain: () => {
      const c = line('x', 1);
      c.spec.cubes = [cube('a', 'host1', ['in', 'out']), cube('b', 'host1', ['in', 'out']), cube('c', 'host1', ['in', 'out', 'up'])];
      c.spec.links = [
        { from: 'a:out', to: 'b:in' },
        { from: 'b:out', to: 'c:in' },
        { from: 'c:out', to: 'a:in' },
        { from: 'c:up', to: 'netdev:veth0' },
      ];
      return c;
    },
    expect: [{ path: 'spec', says: ['on host1: loop: c -> b -> a -> c', 'remove a link to break it'] }],
  },
  {
    title: 'three routers in a triangle: a cycle through cubes that decrement the TTL',
    chain: () => {
      const c = line('x', 1);
      c.spec.cubes = ['r1', 'r2', 'r3'].map((r) => cube(r, 'host1', ['a', 'b', 'up'], 'router'));
      c.spec.links = [
        { from: 'r1:a', to: 'r2:b' },
        { from: 'r2:a', to: 'r3:b' },
        { from: 'r3:a', to: 'r1:b' },
        { from: 'r1:up', to: 'netdev:veth0' },
      ];
      return c;
    },
    expect: 'valid',
  },
  {
    title: 'a loop of forwarders with one router in it',
    chain: () => {
      const c = line('x', 1);
      c.spec.cubes = [cube('a', 'host1', ['in', 'out']), cube('r', 'host1', ['in', 'out'], 'router'), cube('b', 'host1', ['in', 'out', 'up'])];
      c.spec.links = [
        { from: 'a:out', to: 'r:in' },
        { from: 'r:out', to: 'b:in' },
        { from: 'b:out', to: 'a:in' },
        { from: 'b:up', to: 'netdev:veth0' },
      ];
      return c;
    },
    expect: 'valid',
  },
  {
    title: 'two links between the same two cubes',
    chain: c => {
      c.spec.cubes[0].ports.push('extra');
      c.spec.cubes[1].ports.push('extra');
      c.spec.links.push({ from: 'fwd2:extra', to: 'fwd1:extra' });
    },
    expect: [{ path: 'spec', says: ['on host1: loop: fwd1 -> fwd2 -> fwd1'] }],
  },
  {
    title: 'a cube linked to itself',
    chain: c => {
      c.spec.cubes[2].ports.push('back');
      c.spec.links.push({ from: 'fwd3:out', to: 'fwd3:back' });
    },
    expect: [{ path: 'spec', says: ['on host2: loop: fwd3 -> fwd3'] }],
  },
  {
    title: 'too many tail calls',
    chain: () => line('c', 35),
    expect: [
      {
        path: 'spec',
        says: [
          // The path up to the first cube past the limit.
          'on host1: path netdev:veth0 -> c1 -> c2 -> c3',
          'c33 -> c34 needs 34 tail calls, the kernel allows 33',
          'split the chain across hosts or shorten it',
        ],
      },
    ],
  },
  {
    title: 'micro-cubes count towards the limit',
    chain: () => line('r', 12, 'router'),
    expect: [{ path: 'spec', says: ['netdev:veth0 -> r1 (3 programs) -> r2 (3 programs)', 'needs 36 tail calls'] }],
  },
  {
    title: 'transparent cubes count towards the limit',
    chain: () => {
      const c = line('c', 32);
      c.spec.cubes.push(cube('fw1', 'host1', [], 'firewall'));
      c.spec.attachments.push({ cube: 'fw1', to: 'c16:in', direction: 'ingress' });
      return c;
    },
    expect: [{ path: 'spec', says: ['c15 -> fw1 (2 programs) -> c16', 'needs 34 tail calls'] }],
  },
  {
    title: "another chain's stack on a netdev counts too",
    chain: () => {
      const c = line('c', 33);
      c.spec.links[0] = { from: 'netdev:veth5', to: 'c1:in' };
      return c;
    },
    others: [{ ...other(), spec: { ...other().spec, links: [] } }],
    expect: [{ path: 'spec', says: ['path netdev:veth5 -> ddos9 -> c1', 'needs 34 tail calls'] }],
  },
];

for (const c of cases) {
  test(`validate: ${c.title}`, t => {
    const base = demo();
    const chain = c.chain(base) ?? base;
    const ctx = { types: catalog, otherChains: c.others ?? [], hostCheck };
    if (c.expect === 'valid') {
      t.notThrows(() => validateChain(chain, ctx));
      return;
    }
    const error = t.throws(() => validateChain(chain, ctx), { instanceOf: ChainValidationError });
    for (const expected of c.expect) {
      const atPath = error.issues.filter(i => i.path === expected.path);
      t.true(atPath.length > 0, `no issue at ${expected.path}; got:\n${error.message}`);
      if (expected.exactly) t.true(atPath.some(i => i.message === expected.exactly), error.message);
      for (const words of expected.says ?? []) {
        t.true(atPath.some(i => i.message.includes(words)), `no issue at ${expected.path} says "${words}"; got:\n${error.message}`);
      }
    }
  });
}

test('validate: every problem is reported, not just the first', t => {
  const chain = demo();
  chain.spec.cubes[0].type = 'nosuchtype';
  chain.spec.links[0].to = 'fwd9:in';
  chain.spec.attachments[0].cube = 'ddos2';
  const error = t.throws(() => validateChain(chain, { types: catalog, otherChains: [] }), { instanceOf: ChainValidationError });
  t.deepEqual(
    error.issues.map(i => i.path),
    ['spec.cubes[0].type', 'spec.links[0].to', 'spec.attachments[0].cube'],
  );
  t.regex(error.message, /^chain demo is invalid \(3 problems\):\n {2}spec\.cubes\[0\]\.type: unknown cube type nosuchtype/);
});

test('validate: with no types registered, the message says so', t => {
  const chain = line('c', 1);
  const error = t.throws(() => validateChain(chain, { types: { get: () => undefined, names: () => [] }, otherChains: [] }), {
    instanceOf: ChainValidationError,
  });
  t.true(error.issues[0].message.includes('no types are registered'));
});
