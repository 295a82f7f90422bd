// @netcube/k8s: netcube as a Kubernetes network provider.
export { KubeSource, loadKubeConfig, type KubeConfigFlags, type KubeSourceOptions } from './kube/source';
export * from './model';
export { Controller, SERVICE_TYPE, type ControllerOptions } from './controller';
export { parseControllerFlags } from './main';
export { cniConfig, nodeConflist, parseCniConfigFlags, type CniConfigFlags, type CniConfigOptions } from './cni-config';
export { CONFIGURED_TYPES, orphanedConfigs, planChain, type ConfigPlan, type ConfigPut, type HeldConfigs } from './service-configs';
