// Running a process as on a machine without netcube's native addon (no libbpf, no
// compiler): in a mount namespace of its own, where the addon's file is /dev/null,
// so that loading it fails. Only that process sees it; the file stays for the rest.

import * as path from 'node:path';

export const ADDON = path.resolve(__dirname, '../../../../node-daemon/build/Release/netcube_bpf.node');

/** `command` (a program and its arguments) wrapped so that the addon cannot be loaded. */
export function withoutAddon(command: string[]): string[] {
  return ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount --bind /dev/null "$0" && exec "$@"', ADDON, ...command];
}
