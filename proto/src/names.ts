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

/** A rule: undefined when `name` is a string that follows it, else what is wrong, in words. */
function rule(what: string, follows: (text: string) => boolean, says: (text: string) => string): (name: unknown) => string | undefined {
  return (name) => {
    if (typeof name !== 'string') return `${what} must be a string, got ${name === null ? 'null' : typeof name}`;
    return follows(name) ? undefined : says(name);
  };
}

const isName = (text: string): boolean => text.length > 0 && text.length <= NAME_MAX && NAME_RE.test(text);

/**
 * The rule for chain, cube and cube type names; `what` says which ('cube name',
 * 'chain name (its key)'). Undefined when `name` follows it, else what is wrong.
 */
export function nameProblem(name: unknown, what: string): string | undefined {
  return rule(what, isName, (text) =>
    `${what} '${cite(text)}' is invalid: use lowercase letters, digits, '-' and '_', ` +
    `starting and ending with a letter or digit, at most ${NAME_MAX} characters`,
  )(name);
}

/** Host names: names as nameProblem's, joined by dots (host1, node-3.rack2). */
export const hostNameProblem = rule(
  'host name',
  (text) => text.length <= HOST_NAME_MAX && text.split('.').every(isName),
  (text) =>
    `host name '${cite(text)}' is invalid: use dot-separated labels of lowercase letters, digits, '-' and '_', ` +
    `each starting and ending with a letter or digit, at most ${HOST_NAME_MAX} characters in all`,
);

export const portNameProblem = rule(
  'port name',
  (text) => text.length > 0 && text.length <= PORT_NAME_MAX && PORT_RE.test(text),
  (text) => `port name '${cite(text)}' is invalid: use lowercase letters, digits, '_' and '-', at most ${PORT_NAME_MAX} characters`,
);

/** The kernel's own rule for interface names (dev_valid_name), ASCII only. */
export const ifnameProblem = rule(
  'netdev name',
  (text) => text.length > 0 && Buffer.byteLength(text) <= IFNAME_MAX && text !== '.' && text !== '..' && /^[\x21-\x7e]+$/.test(text) && !/[/:]/.test(text),
  (text) => `netdev name '${cite(text)}' is invalid: Linux interface names have 1 to ${IFNAME_MAX} printable characters without '/', ':' or spaces`,
);
