// Identities from certificates (@netcube/api's grpc/identity.ts): the one SPIFFE ID
// of the netcube trust domain a certificate carries, read from subjectAltName as
// Node writes it, where no part of a quoted value may pass for an entry.

import test from 'ava';
import { identityOfCertificate, parseSpiffeId, spiffeId, subjectAltNames } from '@netcube/api/grpc/identity';

const cert = (subjectaltname: string | undefined, CN = 'x') => ({ subjectaltname, subject: { CN } as never });

test('SPIFFE IDs of the four roles, and nothing else', (t) => {
  t.deepEqual(parseSpiffeId('spiffe://netcube/admin'), { role: 'admin' });
  t.deepEqual(parseSpiffeId('spiffe://netcube/viewer'), { role: 'viewer' });
  t.deepEqual(parseSpiffeId('spiffe://netcube/service/bridge'), { role: 'service', subject: 'bridge' });
  t.deepEqual(parseSpiffeId('spiffe://netcube/host/node-3.rack2'), { role: 'host', subject: 'node-3.rack2' });
  for (const other of [
    'spiffe://other/admin',
    'spiffe://netcube/admin/',
    'spiffe://netcube/root',
    'spiffe://netcube/service/',
    'spiffe://netcube/service/Bridge',
    'spiffe://netcube/service/a/b',
    'spiffe://netcube/host/-h',
    'spiffe://netcube.evil/admin',
  ])
    t.is(parseSpiffeId(other), undefined, other);
  t.is(spiffeId('service', 'router'), 'spiffe://netcube/service/router');
  t.throws(() => spiffeId('service'), { instanceOf: TypeError });
});

test('subjectAltName entries, quoted values kept whole', (t) => {
  t.deepEqual(subjectAltNames('URI:spiffe://netcube/admin, DNS:localhost, IP Address:127.0.0.1'), [
    { type: 'URI', value: 'spiffe://netcube/admin' },
    { type: 'DNS', value: 'localhost' },
    { type: 'IP Address', value: '127.0.0.1' },
  ]);
  t.deepEqual(subjectAltNames('DNS:"a, URI:spiffe://netcube/admin, b"'), [{ type: 'DNS', value: 'a, URI:spiffe://netcube/admin, b' }]);
  t.throws(() => subjectAltNames('DNS:"open'), { instanceOf: SyntaxError });
});

test('a certificate has an identity when it carries exactly one of the netcube trust domain', (t) => {
  t.like(identityOfCertificate(cert('URI:spiffe://netcube/service/bridge, IP Address:127.0.0.1')), { role: 'service', subject: 'bridge', name: 'spiffe://netcube/service/bridge' });
  t.like(identityOfCertificate(cert('URI:spiffe://netcube/admin')), { role: 'admin' });
  // An admin URI smuggled inside a quoted DNS name is a DNS name.
  const smuggled = identityOfCertificate(cert('DNS:"x, URI:spiffe://netcube/admin, y"', 'mallory'));
  t.is(smuggled.role, undefined);
  t.regex(smuggled.name, /CN=mallory \(no netcube identity\)/);
  const two = identityOfCertificate(cert('URI:spiffe://netcube/viewer, URI:spiffe://netcube/admin'));
  t.is(two.role, undefined);
  t.regex(two.name, /2 netcube identities/);
  t.is(identityOfCertificate(cert('URI:spiffe://netcube/superuser')).role, undefined);
  t.is(identityOfCertificate(cert(undefined)).role, undefined);
  t.is(identityOfCertificate(cert('URI:spiffe://elsewhere/admin')).role, undefined);
});
