// The chain format: parse, validate, plan per host, diff, format.
export * from './types';
export { ChainValidationError, formatIssue } from './errors';
export { parseChain } from './parse';
export { validateChain, checkedChain, typeCatalog, MAX_TAIL_CALLS } from './validate';
export { planHost } from './plan';
export { diffChains } from './diff';
export { formatChain } from './format';
export { parseEndpoint, formatEndpoint, nameProblem, hostNameProblem, MAX_PORTS } from './schema';
