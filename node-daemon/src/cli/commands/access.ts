// `access`: etcd's access control for a netcube cluster (@netcube/api's
// store/access.ts has the layout): the admin and viewer roles, then one user and
// role per host and per service. Run as etcd's root user (certs.sh etcd-root).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { AccessControl } from '@netcube/api/store/access';
import { Command, flag, stringOption, UsageError } from '../command';

/**
 * The cube types this build has built in: the objects netcubed loads from
 * build/bpf/cubes (runtime.ts's DEFAULT_OBJECTS_DIR; netcubectl loads no native
 * code, so it reads the directory rather than the runtime).
 */
export function builtinTypeNames(dir = path.resolve(__dirname, '../../../../../bpf/cubes')): string[] {
  if (!fs.existsSync(dir)) return [];
  const names = fs.readdirSync(dir).flatMap(f => /^(.+)\.(xdp|tc)\.o$/.exec(f)?.[1] ?? []);
  return [...new Set(names)].sort();
}

export const access: Command = {
  name: 'access',
  summary: "set up etcd's access control: who may write what",
  usage: ['access enable', 'access host NAME... [--builtin-types LIST]', 'access service TYPE... [--owns-chains [--configures LIST]]'],
  description: `
Sets up etcd's users and roles for netcube, as etcd's root user (a certificate with
CN root: deploy/certs.sh DIR etcd-root), and turns access control on. Each
identity is an etcd user named as the CN of its certificate (deploy/certs.sh), with
a role of the same name:

  admin           reads and writes everything under /netcube/v1/ (netcubectl)
  viewer          reads everything
  host-NAME       reads everything; writes its own registration, status and pod
                  ports (pods/NAME/, netcube-cni's), and the records of the
                  built-in cube types
  service-TYPE    reads everything; writes its own keys (services/TYPE/) and type;
                  with --owns-chains also the chains named TYPE-..., and with
                  --configures the config of their cubes for those services (the
                  Kubernetes controller, netcube-k8s: access service k8s
                  --owns-chains --configures lbrp,firewall)

enable makes admin and viewer and turns access control on; host and service add
hosts and services (again: nothing changes). etcd must check client certificates
(etcd --client-cert-auth).`,
  options: { 'builtin-types': { type: 'string' }, 'owns-chains': { type: 'boolean' }, configures: { type: 'string' } },
  optionHelp: [
    ['--builtin-types LIST', `the built-in cube types hosts publish (default: this build's, ${builtinTypeNames().join(',') || 'none found'})`],
    ['--owns-chains', 'the services also write the chains named after them (TYPE-...)'],
    ['--configures LIST', 'with --owns-chains: the services whose config the owner sets for its chains\' cubes (TYPE-...)'],
  ],
  examples: [
    'netcubectl --etcd https://10.0.0.1:2379 --tls-ca ca.crt --tls-cert root.crt --tls-key root.key access enable',
    'netcubectl ... access host h1 h2 h3',
    'netcubectl ... access service bridge router',
    'netcubectl ... access service k8s --owns-chains --configures lbrp,firewall',
  ],
  async run(session, args) {
    const [action, ...names] = args.positionals;
    if (action !== 'enable' && action !== 'host' && action !== 'service') {
      throw new UsageError(`access: ${action === undefined ? 'say what to do' : `unknown action ${JSON.stringify(action)}`}: enable, host or service`, 'access');
    }
    if (action === 'enable' && names.length > 0) throw new UsageError('access enable takes no names', 'access');
    if (action !== 'enable' && names.length === 0) throw new UsageError(`access ${action}: name at least one ${action}`, 'access');
    const listed = stringOption(args, 'builtin-types');
    if (listed !== undefined && action !== 'host') throw new UsageError('--builtin-types goes with access host', 'access');
    const ownsChains = flag(args, 'owns-chains');
    if (ownsChains && action !== 'service') throw new UsageError('--owns-chains goes with access service', 'access');
    const configuresText = stringOption(args, 'configures');
    if (configuresText !== undefined && !ownsChains) throw new UsageError('--configures goes with access service ... --owns-chains', 'access');
    const configures = configuresText?.split(',').map((s) => s.trim()).filter(Boolean);
    const builtin = listed === undefined ? builtinTypeNames() : listed.split(',').map(s => s.trim()).filter(Boolean);
    const control = new AccessControl((await session.store()).etcdClient);
    const users: string[] = [];
    try {
      if (action === 'enable') {
        await control.enable();
        users.push('admin', 'viewer');
      }
      for (const name of names) users.push(action === 'host' ? await control.host(name, builtin) : await control.service(name, { ownsChains, configures }));
    } catch (err) {
      if (err instanceof RangeError) throw new UsageError(`access ${action}: ${err.message}`, 'access');
      throw err;
    }
    session.print({ action, users }, () => `etcd users and roles ${users.join(', ')} are set up${action === 'enable' ? '; access control is on' : ''}\n`);
  },
};
