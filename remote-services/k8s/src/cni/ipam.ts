// IPAM delegated as the CNI spec says: the plugin named by the config's `ipam.type`,
// found in CNI_PATH, run with the same environment (CNI_COMMAND ADD, DEL, CHECK or
// GC) and the whole network config on stdin; its result or error on stdout.

import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { CNI_CODES, CniError } from './errors';

export interface IpamResult {
  cniVersion?: string;
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
  dns?: Record<string, unknown>;
}

/** The IPAM plugin's executable in one of CNI_PATH's directories. */
export function findPlugin(type: string, cniPath: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(type)) throw new CniError(CNI_CODES.INVALID_NETWORK_CONFIG, `ipam.type ${JSON.stringify(type)} is not a plugin name`);
  const dirs = cniPath.split(':').filter(Boolean);
  for (const dir of dirs) {
    const file = join(dir, type);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  throw new CniError(CNI_CODES.INVALID_ENVIRONMENT, `IPAM plugin ${type} is in none of CNI_PATH (${dirs.join(', ') || 'empty'}): install it (Debian: containernetworking-plugins, in /usr/lib/cni) or fix ipam.type`);
}

/**
 * Runs the IPAM plugin for `command`; its parsed result (ADD), or nothing. The
 * config goes with the highest version both speak: a 1.1.0 config reaches a 1.0.0
 * plugin (Debian's host-local) as 1.0.0, whose results are the same.
 */
export async function delegate(command: 'ADD' | 'DEL' | 'CHECK', plugin: string, config: { cniVersion: string }, env: NodeJS.ProcessEnv): Promise<IpamResult | undefined> {
  const supported = ((await exec('VERSION', plugin, {}, env)) as { supportedVersions?: string[] } | undefined)?.supportedVersions ?? [];
  const version = supported.includes(config.cniVersion) ? config.cniVersion : supported.filter((v) => v.startsWith('1.') && v < config.cniVersion).sort().pop();
  if (!version) throw new CniError(CNI_CODES.INCOMPATIBLE_VERSION, `IPAM plugin ${plugin} speaks ${supported.join(', ') || 'no version it told'}, none of them ${config.cniVersion} or another 1.x`);
  return exec(command, plugin, { ...config, cniVersion: version }, env) as Promise<IpamResult | undefined>;
}

function exec(command: string, plugin: string, config: object, env: NodeJS.ProcessEnv): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = execFile(plugin, [], { env: { ...env, CNI_COMMAND: command }, timeout: 30_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      const text = stdout.trim();
      if (err) {
        let parsed: { code?: number; msg?: string; details?: string } | undefined;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not a CNI error
        }
        const why = parsed?.msg ? `${parsed.msg}${parsed.details ? ` (${parsed.details})` : ''}` : (stderr || err.message).trim();
        reject(new CniError(parsed?.code ?? CNI_CODES.IO_FAILURE, `IPAM plugin ${plugin} ${command} failed: ${why}`));
        return;
      }
      if (command !== 'ADD' && command !== 'VERSION') return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new CniError(CNI_CODES.DECODING_FAILURE, `IPAM plugin ${plugin} ADD printed no JSON result: ${text.slice(0, 200)}`));
      }
    });
    // A plugin need not read its stdin (host-local's VERSION does not): its exit is its answer.
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(JSON.stringify(config));
  });
}
