// The names of netcube's objects: one grammar per kind of name, with its length limit
// and the error text that says it. The chain format, the store, netcubed's runtime and
// API, netcubectl and the SDK all check names here, so a name one of them accepts is
// one every other accepts too.
//
//   chain, cube, cube type  lowercase letters, digits, '-' and '_', starting and ending
//                           with a letter or digit, 1 to 63 characters (a DNS label,
//                           with '_' as well: k8s-n1-pods, nop_nostats)
//   host                    such names joined by '.', 1 to 253 characters (node-3.rack2)
//   port                    lowercase letters, digits, '-' and '_', 1 to 15 characters
//                           (a port can be named after the netdev it leads to)
//   netdev                  the kernel's interface names: 1 to 15 printable characters
//                           without '/', ':' or spaces

import { cite } from './cite';

/** Chain, cube and cube type names, at most (a DNS label). */
export const NAME_MAX = 63;
/** Host names, at most (a DNS name). */
export const HOST_NAME_MAX = 253;
/** Port names, at most: as long as the netdev names ports are often named after. */
export const PORT_NAME_MAX = 15;
/** Netdev names, at most: the kernel's IFNAMSIZ (16) minus the terminating NUL. */
export const IFNAME_MAX = 15;

const NAME_RE = /^[a-z0-9]([-_a-z0-9]*[a-z0-9])?$/;
const PORT_RE = /^[a-z0-9_-]+$/;

function notText(name: unknown, what: string): string | undefined {
  return typeof name === 'string' ? undefined : `${what} must be a string, got ${name === null ? 'null' : typeof name}`;
}

/**
 * The rule for chain, cube and cube type names; `what` says which ('cube name',
 * 'chain name (its key)'). Undefined when `name` follows it, else what is wrong.
 */
export function nameProblem(name: unknown, what: string): string | undefined {
  const wrongType = notText(name, what);
  if (wrongType) return wrongType;
  const text = name as string;
  if (text.length > 0 && text.length <= NAME_MAX && NAME_RE.test(text)) return undefined;
  return (
    `${what} '${cite(text)}' is invalid: use lowercase letters, digits, '-' and '_', ` +
    `starting and ending with a letter or digit, at most ${NAME_MAX} characters`
  );
}

/** Host names: names as nameProblem's, joined by dots (host1, node-3.rack2). */
export function hostNameProblem(name: unknown): string | undefined {
  const wrongType = notText(name, 'host name');
  if (wrongType) return wrongType;
  const text = name as string;
  const ok =
    text.length > 0 &&
    text.length <= HOST_NAME_MAX &&
    text.split('.').every(label => label.length <= NAME_MAX && NAME_RE.test(label));
  if (ok) return undefined;
  return (
    `host name '${cite(text)}' is invalid: use dot-separated labels of lowercase letters, digits, '-' and '_', ` +
    `each starting and ending with a letter or digit, at most ${HOST_NAME_MAX} characters in all`
  );
}

export function portNameProblem(name: unknown): string | undefined {
  const wrongType = notText(name, 'port name');
  if (wrongType) return wrongType;
  const text = name as string;
  if (text.length > 0 && text.length <= PORT_NAME_MAX && PORT_RE.test(text)) return undefined;
  return `port name '${cite(text)}' is invalid: use lowercase letters, digits, '_' and '-', at most ${PORT_NAME_MAX} characters`;
}

/** The kernel's own rule for interface names (dev_valid_name), ASCII only. */
export function ifnameProblem(name: unknown): string | undefined {
  const wrongType = notText(name, 'netdev name');
  if (wrongType) return wrongType;
  const text = name as string;
  const ok =
    text.length > 0 &&
    Buffer.byteLength(text) <= IFNAME_MAX &&
    text !== '.' &&
    text !== '..' &&
    /^[\x21-\x7e]+$/.test(text) &&
    !/[/:]/.test(text);
  if (ok) return undefined;
  return `netdev name '${cite(text)}' is invalid: Linux interface names have 1 to ${IFNAME_MAX} printable characters without '/', ':' or spaces`;
}
