// Chain text (YAML, or JSON, which YAML 1.2 reads as well) to a normalized Chain, with
// every problem located at its line in the text.

import { Document, isMap, isScalar, isSeq, LineCounter, parseDocument, YAMLError } from 'yaml';
import { ChainValidationError } from './errors';
import { normalizeChain, Path, PathIssue, pathToString } from './schema';
import { Chain, ChainIssue } from './types';

interface Origin {
  source?: string;
  locate(path: Path): { line: number; column: number } | undefined;
}

// Chains parsed from text remember where they came from, so problems the validator
// finds later (an unknown cube, a loop) still point at a line of the user's file.
const origins = new WeakMap<Chain, Origin>();

export function parseChain(text: string, source?: string): Chain {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ChainValidationError(undefined, doc.errors.map(yamlIssue), source);
  }
  const origin: Origin = { source, locate: path => locateInDocument(doc, lineCounter, path) };
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // Only alias bombs get here: anchors expanded past maxAliasCount.
    throw new ChainValidationError(undefined, [{ path: '', message: `cannot read the YAML: ${(err as Error).message}` }], source);
  }
  if (value === null || value === undefined) {
    const message = 'the text holds no chain: expected a mapping with apiVersion, kind, metadata and spec';
    throw new ChainValidationError(undefined, [{ path: '', message }], source);
  }
  const { chain, issues } = normalizeChain(value);
  if (!chain) {
    throw new ChainValidationError(nameOf(value), issues.map(issue => locate(origin, issue)), source);
  }
  origins.set(chain, origin);
  return chain;
}

/** Turns path issues about `chain` into ChainIssues, with lines when it was parsed from text. */
export function locateIssues(chain: Chain, issues: readonly PathIssue[]): ChainIssue[] {
  const origin = origins.get(chain);
  return issues.map(issue => (origin ? locate(origin, issue) : { path: pathToString(issue.path), message: issue.message }));
}

/** The file (or other origin) a chain was parsed from, if any. */
export function sourceOf(chain: Chain): string | undefined {
  return origins.get(chain)?.source;
}

function locate(origin: Origin, issue: PathIssue): ChainIssue {
  const position = origin.locate(issue.path);
  return {
    path: pathToString(issue.path),
    message: issue.message,
    ...(position ? { line: position.line, column: position.column } : {}),
  };
}

function yamlIssue(error: YAMLError): ChainIssue {
  const message =
    error.code === 'MULTIPLE_DOCS'
      ? 'the text holds several YAML documents; apply one chain per document'
      : // The first line; the pretty error repeats the position we report separately.
        error.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
  const position = error.linePos?.[0];
  return { path: '', message, ...(position ? { line: position.line, column: position.col } : {}) };
}

/** The deepest node on `path` that exists: a missing field is reported where its parent is. */
function locateInDocument(doc: Document, lineCounter: LineCounter, path: Path) {
  let node: unknown = doc.contents;
  let offset = isNodeWithRange(node) ? node.range[0] : undefined;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find(p => (isScalar(p.key) ? p.key.value === segment : p.key === segment));
      if (!pair) break;
      // A field is reported at its key: that is the line to edit, also for nested values.
      if (isNodeWithRange(pair.key)) offset = pair.key.range[0];
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number' && segment < node.items.length) {
      node = node.items[segment];
      if (isNodeWithRange(node)) offset = node.range[0];
    } else {
      break;
    }
  }
  if (offset === undefined) return undefined;
  const { line, col } = lineCounter.linePos(offset);
  return { line, column: col };
}

function isNodeWithRange(node: unknown): node is { range: [number, number, number] } {
  return typeof node === 'object' && node !== null && Array.isArray((node as { range?: unknown }).range);
}

function nameOf(value: unknown): string | undefined {
  const name = (value as { metadata?: { name?: unknown } })?.metadata?.name;
  return typeof name === 'string' ? name : undefined;
}
