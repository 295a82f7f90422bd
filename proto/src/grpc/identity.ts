// Who is calling: the identity of a gRPC peer, for netcubed's API and a service's
// config API alike. Over TCP every peer presents a client certificate signed by the
// cluster's CA (mutual TLS), and its identity is the one SPIFFE-style URI SAN of the
// netcube trust domain it carries:
//
//   spiffe://netcube/admin             does anything
//   spiffe://netcube/viewer            reads
//   spiffe://netcube/service/<type>    the control plane of one cube type
//   spiffe://netcube/host/<host>       a netcubed (its etcd user, its server certificate)
//
// A certificate with none of these, or with more than one, authenticates a peer
// with no netcube identity: it is refused everything but health checks. On a unix
// socket the server says who the peer is (netcubed by SO_PEERCRED).
//
// The certificate's CN is the peer's etcd user (see store/access.ts): one
// certificate serves a process for etcd and for gRPC.

import type { PeerCertificate } from 'node:tls';
import type * as grpc from '@grpc/grpc-js';
import { hostNameProblem, nameProblem } from '../names';

export const TRUST_DOMAIN = 'netcube';
const PREFIX = `spiffe://${TRUST_DOMAIN}/`;

export type Role = 'admin' | 'viewer' | 'service' | 'host';

export interface Identity {
  /** The peer as messages and logs name it: `spiffe://netcube/service/bridge`, `uid 1000 on the unix socket`. */
  readonly name: string;
  /** Undefined: authenticated, but without a netcube identity. */
  readonly role?: Role;
  /** A service's cube type; a host's name. */
  readonly subject?: string;
}

/** The SPIFFE ID of a role (and its subject, for a service or a host). */
export function spiffeId(role: Role, subject?: string): string {
  if ((role === 'service' || role === 'host') !== (subject !== undefined)) throw new TypeError(`subject: a ${role} identity ${subject === undefined ? 'needs' : 'has no'} subject`);
  return subject === undefined ? `${PREFIX}${role}` : `${PREFIX}${role}/${subject}`;
}

/** The role a SPIFFE ID of the netcube trust domain names; undefined for anything else. */
export function parseSpiffeId(uri: string): { role: Role; subject?: string } | undefined {
  if (!uri.startsWith(PREFIX)) return undefined;
  const path = uri.slice(PREFIX.length);
  if (path === 'admin' || path === 'viewer') return { role: path };
  const slash = path.indexOf('/');
  if (slash < 0) return undefined;
  const [kind, subject] = [path.slice(0, slash), path.slice(slash + 1)];
  if (kind === 'service' && !nameProblem(subject, 'cube type name')) return { role: 'service', subject };
  if (kind === 'host' && !hostNameProblem(subject)) return { role: 'host', subject };
  return undefined;
}

export function identityOf(role: Role, subject?: string): Identity {
  return { name: spiffeId(role, subject), role, subject };
}

/**
 * The entries of a certificate's subjectAltName as Node writes it (`URI:spiffe://..,
 * DNS:localhost, IP Address:127.0.0.1`), where a value holding a comma, a quote or
 * another special character is a JSON string: read value by value, so that no part
 * of a quoted value ever passes for an entry of its own.
 */
export function subjectAltNames(text: string): { type: string; value: string }[] {
  const out: { type: string; value: string }[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) throw new SyntaxError(`subjectAltName: no ':' after ${JSON.stringify(text.slice(i))}`);
    const type = text.slice(i, colon);
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      end = colon + 2;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      if (end >= text.length) throw new SyntaxError('subjectAltName: a quoted value does not end');
      value = JSON.parse(text.slice(colon + 1, end + 1)) as string;
      end++;
    } else {
      end = text.indexOf(', ', colon);
      if (end < 0) end = text.length;
      value = text.slice(colon + 1, end);
    }
    out.push({ type, value });
    if (end < text.length && !text.startsWith(', ', end)) throw new SyntaxError(`subjectAltName: expected ', ' at ${end}`);
    i = end + 2;
  }
  return out;
}

/** The identity a client certificate (already verified against the cluster's CA) carries. */
export function identityOfCertificate(cert: Pick<PeerCertificate, 'subjectaltname' | 'subject'>): Identity {
  const cn = cert.subject?.CN;
  const described = `the certificate ${cn ? `CN=${Array.isArray(cn) ? cn.join('+') : cn}` : 'without a CN'}`;
  let sans: { type: string; value: string }[];
  try {
    sans = cert.subjectaltname ? subjectAltNames(cert.subjectaltname) : [];
  } catch {
    return { name: `${described} (an unreadable subjectAltName)` };
  }
  const ours = sans.filter((s) => s.type === 'URI' && s.value.startsWith(PREFIX));
  const parsed = ours.map((s) => parseSpiffeId(s.value));
  if (ours.length === 1 && parsed[0]) return identityOf(parsed[0].role, parsed[0].subject);
  if (ours.length > 1) return { name: `${described} (${ours.length} netcube identities: ${ours.map((s) => s.value).join(', ')}; a certificate carries one)` };
  if (ours.length === 1) return { name: `${described} (${ours[0].value} is no netcube identity)` };
  return { name: `${described} (no netcube identity)` };
}

/** What a server call tells of its peer. */
export type PeerCall = Pick<grpc.ServerUnaryCall<unknown, unknown>, 'getPeer' | 'getAuthContext'>;

/** The identity of a TLS peer of `call`; undefined when the call did not come over TLS. */
export function tlsIdentity(call: PeerCall): Identity | undefined {
  const auth = call.getAuthContext();
  if (auth?.transportSecurityType !== 'ssl') return undefined;
  // grpc-js hands out only certificates the TLS handshake verified.
  if (!auth.sslPeerCertificate) return { name: 'a TLS peer without a client certificate' };
  return identityOfCertificate(auth.sslPeerCertificate);
}

/** A peer that presented nothing to tell it by. */
export function unauthenticated(call: PeerCall): Identity {
  return { name: `the peer ${call.getPeer()} (not authenticated)` };
}

/** Whether `identity` is the service of cube type `type`. */
export const isServiceOf = (identity: Identity, type: string): boolean => identity.role === 'service' && identity.subject === type;
