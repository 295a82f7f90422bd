// The host check of chain validation (ValidationContext.hostCheck): the chains a host
// runs, planned as its runtime would apply them, through the runtime's own topology
// rule. One rule, two callers: netcubed applying a topology, and anyone validating a
// chain with it (netcubed's API, netcubectl apply).

import type { HostCheck } from '@netcube/api/chain';
import { NetcubeError } from '../runtime/errors';
import { wire } from '../runtime/topology';
import { planHost } from './plan';

export const hostCheck: HostCheck = (chains, host, types) => {
  try {
    wire(planHost(chains, host).topology, (type) => types.get(type));
    return undefined;
  } catch (err) {
    if (err instanceof NetcubeError) return err.message;
    throw err;
  }
};
