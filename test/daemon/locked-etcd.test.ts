// netcubed against an etcd locked down as deploy/hosts.sh runs it (issue 11): TLS
// with the host's certificate, whose CN is its etcd user, and netcube's roles. The
// host publishes the built-in types, registers under its lease, follows the chains
// the admin applies, carries traffic and reports status; its own credentials write
// no chain, so its chain-changing RPCs are refused by etcd, naming its etcd user.

import * as fs from 'node:fs';
import test from 'ava';
import { ApiCallError } from '@netcube/api/grpc/client';
import { Store } from '@netcube/api/store';
import { hostCheck } from '../../node-daemon/src/chain';
import { builtinTypeNames } from '../../node-daemon/src/cli/commands/access';
import { pki as makePki } from '../helpers/certs';
import { startDaemon } from '../helpers/daemon';
import { startEtcd } from '../helpers/etcd';
import { createTestbed } from '../helpers/testbed';
import { applyAndWait, lineChain, sendThrough, statusOf } from './setup';

test('a host on a locked-down etcd applies what the admin applies, and cannot change a chain itself', async (t) => {
  t.timeout(120_000);
  const pki = makePki(t);
  const etcd = await startEtcd(t, { pki });
  const name = `nct${process.pid}-locked`;
  await etcd.access((a) => a.host(name, builtinTypeNames()));
  const bed = await createTestbed(t, { mode: 'xdp', outs: 1 });
  const daemon = await startDaemon(t, { netns: bed.host, name, etcd: etcd.endpoints, tls: { ...pki.issue('host', name), ca: pki.ca } });
  await daemon.waitConnected();

  const admin = await Store.connect({ endpoints: etcd.endpoints, tls: { ca: pki.ca, ...pki.issue('admin') }, hostCheck });
  t.teardown(() => admin.close());
  t.true((await admin.hosts.listHosts()).some((h) => h.name === name), 'registered under its lease');
  const published = (await admin.types.listTypes()).map((x) => x.name);
  for (const builtin of builtinTypeNames()) t.true(published.includes(builtin), `built-in type ${builtin} published`);

  const r = await applyAndWait(admin, lineChain('locked', name, ['a'], 'in0', 'out0'));
  t.deepEqual(await statusOf(admin, 'locked'), { a: { host: name, state: 'applied', version: r.version, revision: r.revision } });
  t.deepEqual(await sendThrough(bed, 100), [100]);

  const client = daemon.client();
  t.teardown(() => client.close());
  const err = await t.throwsAsync(client.createCube({ name: 'b', type: 'nop', mode: 'MODE_XDP', ports: ['p0', 'p1'] }), { instanceOf: ApiCallError });
  t.is(err?.codeName, 'PERMISSION_DENIED');
  t.regex(err?.details ?? '', new RegExp(`etcd user host-${name} may not`));
  t.deepEqual((await admin.chains.list()).map((c) => `${c.name} v${c.version}`), ['locked v1']);
  // Leases, watches, status: nothing the daemon does of itself was refused.
  t.deepEqual(fs.readFileSync(daemon.logFile, 'utf8').split('\n').filter((l) => /etcd refused|does not accept/.test(l)), []);
});
