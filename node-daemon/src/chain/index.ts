// What a chain means for one host: its plan (the runtime's Topology) and the host check
// chain validation runs. The chain format itself is @netcube/api/chain.
export { planHost, type HostPlan, type PlannedCube } from './plan';
export { hostCheck } from './host-check';
