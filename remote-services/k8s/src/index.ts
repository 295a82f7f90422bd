// @netcube/k8s: netcube as a Kubernetes network provider.
export { KubeSource, loadKubeConfig, type KubeConfigFlags, type KubeResource, type KubeSourceOptions } from './kube/source';
export * from './model';
export { Controller, SERVICE_TYPE, type ControllerOptions } from './controller';
export { parseControllerFlags } from './main';
export { cniConfig, nodeConflist, parseCniConfigFlags, type CniConfigFlags, type CniConfigOptions } from './cni-config';
export { CONFIGURED_TYPES, orphanedConfigs, planChain, type ConfigPlan, type ConfigPut, type HeldConfigs } from './service-configs';
export { ensureHostLink, NodeAgent, type NodeAgentOptions } from './node/agent';
export { hostLinkCommands, hostLinkSpec, type HostLinkSpec, type HostLinkState } from './node/host-link';
export { Iproute } from './node/iproute';
export { DEFAULT_VXLAN, parseNodeAgentFlags, type NodeAgentFlags } from './node/command';
export { desiredFdb, fdbChanges, linkChange, vxlanSpec, FLOOD_MAC, VXLAN_OVERHEAD, type FdbEntry, type IpLink, type LinkChange, type VxlanSpec } from './node/vxlan';
