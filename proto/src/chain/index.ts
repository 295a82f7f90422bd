// The chain format: types, parse, validate, diff, format. What a chain means for one
// host's data plane (its plan, the host check) is netcubed's: node-daemon/src/chain.
export * from './types';
export { ChainValidationError, formatIssue } from './errors';
export { parseChain } from './parse';
export { validateChain, checkedChain, typeCatalog } from './validate';
export { diffChains } from './diff';
export { formatChain } from './format';
export {
  endpointOf,
  formatEndpoint,
  hostNameProblem,
  ifnameProblem,
  MAX_CHAIN_BYTES,
  MAX_MICROCUBES,
  MAX_PARAMS_BYTES,
  MAX_PARAMS_DEPTH,
  MAX_PORTS,
  nameProblem,
  parseEndpoint,
  portNameProblem,
  stackDirections,
} from './schema';
export {
  MAX_SIZED_TABLES,
  MAX_TABLE_ENTRIES,
  RESIZABLE_TABLE_KINDS,
  sameTableFacts,
  sameTableSizes,
  tableFacts,
  tableNameProblem,
  tableResizeProblem,
  tableSizeRangeProblem,
  type TableFacts,
} from './tables';
