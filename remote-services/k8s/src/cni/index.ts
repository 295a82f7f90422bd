// netcube-cni: the entry point a runtime's call goes through, and its commands.
import type { Readable, Writable } from 'node:stream';
import { CNI_CODES, CniError } from './errors';
import { cmdAdd, cmdCheck, cmdDel, cmdGc, cmdStatus, parseArgs, parseConfig, SUPPORTED_VERSIONS, type Invocation } from './plugin';

export { CNI_CODES, CniError } from './errors';
export { hostVethName } from './link';
export * from './plugin';

async function readAll(input: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of input) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks).toString('utf8');
}

/** The config's cniVersion when netcube-cni speaks it, for the error of a config it refuses. */
function declaredVersion(text: string): string | undefined {
  try {
    const v = (JSON.parse(text) as { cniVersion?: unknown }).cniVersion;
    return typeof v === 'string' && SUPPORTED_VERSIONS.includes(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Runs one CNI call; returns the exit status. */
export async function runCni(env: NodeJS.ProcessEnv, stdin: Readable, stdout: Writable): Promise<number> {
  const command = env.CNI_COMMAND ?? '';
  let version = SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.length - 1];
  const print = (v: unknown) => stdout.write(`${JSON.stringify(v)}\n`);
  try {
    if (command === 'VERSION') {
      print({ cniVersion: version, supportedVersions: SUPPORTED_VERSIONS });
      return 0;
    }
    const text = await readAll(stdin);
    version = declaredVersion(text) ?? version;
    const conf = parseConfig(text);
    version = conf.cniVersion;
    const inv: Invocation = {
      command,
      containerId: env.CNI_CONTAINERID,
      netns: env.CNI_NETNS,
      ifname: env.CNI_IFNAME,
      args: parseArgs(env.CNI_ARGS),
      path: env.CNI_PATH ?? '',
      env,
    };
    if ((command === 'STATUS' || command === 'GC') && conf.cniVersion !== '1.1.0') {
      throw new CniError(CNI_CODES.INCOMPATIBLE_VERSION, `${command} is a CNI 1.1.0 command; the config says cniVersion ${conf.cniVersion}`);
    }
    switch (command) {
      case 'ADD':
        print(await cmdAdd(conf, inv));
        return 0;
      case 'DEL':
        await cmdDel(conf, inv);
        return 0;
      case 'CHECK':
        await cmdCheck(conf, inv);
        return 0;
      case 'STATUS':
        await cmdStatus(conf, inv);
        return 0;
      case 'GC':
        await cmdGc(conf, inv);
        return 0;
      default:
        throw new CniError(CNI_CODES.INVALID_ENVIRONMENT, `CNI_COMMAND ${JSON.stringify(command)} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC`);
    }
  } catch (err) {
    const e = err instanceof CniError ? err : new CniError(CNI_CODES.IO_FAILURE, (err as Error).message ?? String(err));
    print(e.toJSON(version));
    return 1;
  }
}
