// The Kubernetes cluster as netcube chains: pure, shared by the controller and its tests.
export { clusterChains, DISPATCHER_TYPE, MAX_PODS_PER_NODE, type ChainOptions, type ClusterState, type ClusterChains } from './chains';
export { DEFAULT_SETTINGS, HOST_LINK, NODE_LINK, nodeModel, nodeNames, vxlanMac, UPLINK_ANNOTATION, type ClusterSettings, type NodeModel, type NodeNames } from './nodes';
export { podFirewalls, subtract, MAX_RULES, type FirewallConfig, type FirewallDirection, type FirewallRule } from './policy';
export { placePods, type PlacedPod, type Placement } from './pods';
export { clusterIpServices, nodePortServices, serviceModels, type LbService, type NodePortRule } from './services';
export { selects } from './selectors';
export { Problems, type Problem } from './problems';
export * from './objects';
