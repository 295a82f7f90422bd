import anyTest, { TestFn } from 'ava';
import { randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Etcd3 } from 'etcd3';
import { MAX_UNPACKED_OBJECT_BYTES, NotFoundError, Store, TypeInUseError, typeKey, ValidationError } from '@netcube/api/store';
import { hostCheck } from '../../node-daemon/src/chain';
import { demo, line } from '../chain/fixtures';
import { EtcdCluster } from '../helpers/etcd';
import { elf, registerTypes } from './setup';

const test = anyTest as TestFn<{ etcd: EtcdCluster; store: Store; raw: Etcd3 }>;

test.before(async t => {
  const etcd = await EtcdCluster.start();
  t.context = { etcd, store: await Store.connect({ endpoints: etcd.endpoints, hostCheck }), raw: new Etcd3({ hosts: etcd.endpoints }) };
});

test.beforeEach(async t => {
  await t.context.raw.delete().prefix('/netcube/');
  await registerTypes(t.context.store);
});

test.after.always(async t => {
  await t.context.store?.close();
  t.context.raw?.close();
  await t.context.etcd?.stop();
});

test.serial('types are registered with their objects and listed', async t => {
  const { store, raw } = t.context;
  const nat = await store.types.putType({ name: 'nat', transparent: false, microcubes: 2, modes: ['tc'], objects: { tc: elf('nat.tc') } });
  t.like(nat, { name: 'nat', transparent: false, microcubes: 2, modes: ['tc'] });
  t.regex(nat.sha256, /^[0-9a-f]{64}$/);

  const read = await store.types.getType('nat');
  t.deepEqual(read, nat);
  t.true(read.objects.tc!.equals(elf('nat.tc')));
  const stored = (await raw.get(typeKey('nat')).json()) as { objects: { tc: string } };
  t.true(gunzipSync(Buffer.from(stored.objects.tc.replace(/^gzip:/, ''), 'base64')).equals(elf('nat.tc')), 'kept gzipped');

  // A record whose object would unpack past the bound is broken, not read.
  const bomb = { ...stored, objects: { tc: `gzip:${gzipSync(Buffer.alloc(MAX_UNPACKED_OBJECT_BYTES + 1)).toString('base64')}` } };
  await raw.put(typeKey('bomb')).value(JSON.stringify({ ...bomb, name: 'bomb' }));
  const { broken } = await store.types.listTypesWithBroken();
  t.regex(broken.find((b) => b.name === 'bomb')?.error ?? '', /objects\.tc unpacks to more than 16777216 bytes/);
  await raw.delete().key(typeKey('bomb'));

  t.deepEqual((await store.types.listTypes()).map(type => type.name), ['ddos', 'firewall', 'nat', 'router', 'simpleforwarder', 'tconly']);
  const catalog = await store.types.catalog();
  t.like(catalog.get('nat'), { microcubes: 2, modes: ['tc'] });
  t.is(catalog.get('nope'), undefined);

  t.deepEqual(await store.types.putType({ name: 'nat', transparent: false, microcubes: 2, modes: ['tc'], objects: { tc: elf('nat.tc') } }), nat, 'same upload: unchanged');
  const rebuilt = await store.types.putType({ name: 'nat', transparent: false, microcubes: 2, modes: ['tc'], objects: { tc: elf('nat.tc v2') } });
  t.not(rebuilt.sha256, nat.sha256);
  t.true(rebuilt.revision > nat.revision);
  await t.throwsAsync(store.types.getType('nope'), { instanceOf: NotFoundError, message: 'cube type nope is not registered' });
});

test.serial('a type that decrements the TTL says so in its record; changing that is a change of the type', async t => {
  const { store, raw } = t.context;
  const upload = { name: 'rtr', transparent: false, microcubes: 1, modes: ['tc' as const], objects: { tc: elf('rtr.tc') } };
  t.false('decrementsTtl' in (await store.types.putType(upload)), 'absent when false');
  const ttl = await store.types.putType({ ...upload, decrementsTtl: true });
  t.true(ttl.decrementsTtl);
  t.deepEqual(await store.types.getType('rtr'), ttl);
  await raw.put(typeKey('odd')).value(JSON.stringify({ ...(await raw.get(typeKey('rtr')).json() as object), name: 'odd', decrementsTtl: 'yes' }));
  const listed = await store.types.listTypesWithBroken();
  t.regex(listed.broken.find(b => b.name === 'odd')?.error ?? '', /decrementsTtl must be true or false when given/);
});

test.serial("a type's record lists its tables; chains that size them are held to them, and so is a new version of the type", async t => {
  const { store, raw } = t.context;
  const fw = await store.types.getType('firewall');
  t.deepEqual(fw.tables?.map(x => `${x.name} ${x.scope} ${x.mapType} ${x.maxEntries}`), [
    'fw_ct cube lru_hash 32768',
    'fw_rules cube array 4096',
    'fw_prefixes cube lpm_trie 1024',
    'fw_shared host hash 1024',
    'fw_scratch private percpu_hash 16',
  ]);
  const chain = demo();
  chain.spec.cubes.push({ ...chain.spec.cubes[3], name: 'fw1', type: 'firewall', tableSizes: { fw_ct: 64 } });
  await store.chains.apply(chain);
  const refused = structuredClone(chain);
  refused.spec.cubes[4].tableSizes = { fw_rules: 64 };
  const error = await t.throwsAsync(store.chains.apply(refused));
  t.regex(error?.message ?? '', /spec\.cubes\[4\]\.tableSizes\.fw_rules: table fw_rules of cube type firewall is a map of kind array/);

  // A firewall whose new objects lose fw_ct would break the chain that sizes it.
  const objects = { tc: elf('firewall.tc v2'), xdp: elf('firewall.xdp v2') };
  const lost = await t.throwsAsync(store.types.putType({ ...fw, objects, tables: fw.tables!.filter(x => x.name !== 'fw_ct') }), { instanceOf: TypeInUseError });
  t.regex(lost?.message ?? '', /chain demo: spec\.cubes\[4\]\.tableSizes\.fw_ct: cube type firewall has no table fw_ct/);

  // A record whose tables cannot be read is broken, not trusted.
  await raw.put(typeKey('odd')).value(JSON.stringify({ ...(await raw.get(typeKey('firewall')).json() as object), name: 'odd', tables: [{ name: 'x', scope: 'everywhere', mapType: 'hash', maxEntries: 1 }] }));
  const listed = await store.types.listTypesWithBroken();
  t.regex(listed.broken.find(b => b.name === 'odd')?.error ?? '', /tables\[0\] must be \{name, scope \(private, cube or host\), mapType, maxEntries\}/);
});

test.serial('uploads that cannot be run are refused, saying why', async t => {
  const { store } = t.context;
  const error = await t.throwsAsync(
    store.types.putType({ name: 'Bad', transparent: false, microcubes: 0, modes: ['xdp', 'tc'], objects: { xdp: Buffer.from('MZ not elf'), tc: undefined } }),
    { instanceOf: ValidationError },
  );
  for (const words of ["cube type name 'Bad' is invalid", 'microcubes must be an integer from 1 to 8', 'objects.tc is missing', 'objects.xdp is not an ELF object']) {
    t.true(error.message.includes(words), `"${words}" in: ${error.message}`);
  }
  const extra = await t.throwsAsync(
    store.types.putType({ name: 'ok', transparent: true, microcubes: 1, modes: ['tc'], objects: { tc: elf('a'), xdp: elf('b') } }),
    { instanceOf: ValidationError },
  );
  t.true(extra.message.includes('objects.xdp is given but modes does not list xdp'));
  const huge = await t.throwsAsync(
    store.types.putType({ name: 'huge', transparent: false, microcubes: 1, modes: ['xdp'], objects: { xdp: Buffer.concat([elf('x'), randomBytes(1_200_000)]) } }),
    { instanceOf: ValidationError },
  );
  t.true(huge.message.includes('over the'), huge.message);
});

test.serial('a type used by a chain cannot be deleted; once unused it can', async t => {
  const { store } = t.context;
  await store.chains.apply(demo());
  await store.chains.apply(line('second', 1, 'simpleforwarder', 'host3'));

  const error = await t.throwsAsync(store.types.deleteType('simpleforwarder'), { instanceOf: TypeInUseError });
  t.is(error.code, 'FAILED_PRECONDITION');
  t.deepEqual(error.chains, ['demo', 'second']);
  t.is(error.message, 'cube type simpleforwarder is used by chains demo, second: delete those chains or move their cubes to another type first');

  await store.types.deleteType('router'); // unused
  await store.chains.delete('demo');
  await store.chains.delete('second');
  await store.types.deleteType('simpleforwarder');
  await t.throwsAsync(store.types.getType('simpleforwarder'), { instanceOf: NotFoundError });
  await t.throwsAsync(store.types.deleteType('simpleforwarder'), { instanceOf: NotFoundError });
  // And chains can no longer use it.
  await t.throwsAsync(store.chains.apply(demo()), { instanceOf: ValidationError, message: /unknown cube type simpleforwarder/ });
});

test.serial('a type change that would break the chains using it is refused', async t => {
  const { store } = t.context;
  await store.chains.apply(demo());
  await store.chains.apply(line('long', 12, 'simpleforwarder', 'host3'));

  const modes = await t.throwsAsync(
    store.types.putType({ name: 'simpleforwarder', transparent: false, microcubes: 1, modes: ['tc'], objects: { tc: elf('sf.tc') } }),
    { instanceOf: TypeInUseError },
  );
  t.true(modes.message.includes('chain demo: spec.cubes[0].mode: cube type simpleforwarder does not run in xdp mode'), modes.message);

  const programs = await t.throwsAsync(
    store.types.putType({ name: 'simpleforwarder', transparent: false, microcubes: 3, modes: ['xdp', 'tc'], objects: { xdp: elf('a'), tc: elf('b') } }),
    { instanceOf: TypeInUseError },
  );
  t.true(programs.message.includes('chain long: spec: on host3: path netdev:veth0 -> long1 (3 programs)'), programs.message);
  t.deepEqual(programs.chains, ['long'], 'only the chains that would break');

  // New objects, same shape: fine.
  await store.types.putType({ name: 'simpleforwarder', transparent: false, microcubes: 2, modes: ['xdp', 'tc'], objects: { xdp: elf('c'), tc: elf('d') } });
  t.is((await store.types.getType('simpleforwarder')).microcubes, 2);
});
