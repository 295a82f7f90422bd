// What changes between two versions of a chain, for `netcubectl diff` and to tell an
// identical re-apply from a real change. Compares meaning, not text: the order of cubes
// and links in the file does not matter; the order of a stack does.

import { stackDirections } from './schema';
import { AttachmentSpec, Chain, ChainChange, CubeSpec, JsonValue, LinkSpec } from './types';

/** Changes that turn `before` into `after`; undefined stands for a chain that does not exist. */
export function diffChains(before: Chain | undefined, after: Chain | undefined): ChainChange[] {
  const changes: ChainChange[] = [];
  const name = (after ?? before)?.metadata.name ?? '';
  if (!before && after) changes.push({ op: 'added', kind: 'chain', id: name, text: `+ chain ${name}` });
  if (before && !after) changes.push({ op: 'removed', kind: 'chain', id: name, text: `- chain ${name}` });

  diffKeyed(changes, 'cube', cubesOf(before), cubesOf(after), describeCube, cubeChanges);
  diffKeyed(changes, 'link', linksOf(before), linksOf(after), viaText, (a, b) =>
    viaText(a) === viaText(b) ? [] : [`${viaText(a) || 'no via'} -> ${viaText(b) || 'no via'}`],
  );
  diffKeyed(changes, 'attachment', placements(before), placements(after), p => p, (a, b) => (a === b ? [] : [`${a} -> ${b}`]));
  return changes;
}

function diffKeyed<T>(
  changes: ChainChange[],
  kind: ChainChange['kind'],
  before: Map<string, T>,
  after: Map<string, T>,
  describe: (item: T) => string,
  compare: (a: T, b: T) => string[],
) {
  const ids = [...new Set([...before.keys(), ...after.keys()])].sort();
  for (const id of ids) {
    const a = before.get(id);
    const b = after.get(id);
    const described = (item: T) => (describe(item) ? `: ${describe(item)}` : '');
    if (a === undefined && b !== undefined) {
      changes.push({ op: 'added', kind, id, text: `+ ${kind} ${id}${described(b)}` });
    } else if (a !== undefined && b === undefined) {
      changes.push({ op: 'removed', kind, id, text: `- ${kind} ${id}${described(a)}` });
    } else if (a !== undefined && b !== undefined) {
      const details = compare(a, b);
      if (details.length > 0) changes.push({ op: 'changed', kind, id, text: `~ ${kind} ${id}: ${details.join('; ')}` });
    }
  }
}

function cubesOf(chain: Chain | undefined): Map<string, CubeSpec> {
  return new Map((chain?.spec.cubes ?? []).map(cube => [cube.name, cube]));
}

function describeCube(cube: CubeSpec): string {
  const ports = cube.ports.length ? `ports ${cube.ports.join(', ')}` : 'no ports';
  return `${cube.type} on ${cube.host}, ${cube.mode}, ${ports}, logLevel ${cube.logLevel}`;
}

function cubeChanges(a: CubeSpec, b: CubeSpec): string[] {
  const out: string[] = [];
  for (const field of ['host', 'type', 'mode', 'logLevel'] as const) {
    if (a[field] !== b[field]) out.push(`${field} ${a[field]} -> ${b[field]}`);
  }
  if (a.ports.join(',') !== b.ports.join(',')) out.push(`ports ${a.ports.join(', ') || '(none)'} -> ${b.ports.join(', ') || '(none)'}`);
  diffJson(out, 'params', a.params, b.params);
  diffJson(out, 'replacedMicrocubes', a.replacedMicrocubes ?? {}, b.replacedMicrocubes ?? {});
  const before = out.length;
  diffJson(out, 'tableSizes', a.tableSizes ?? {}, b.tableSizes ?? {});
  // A map's size is fixed when the kernel creates it.
  if (out.length > before) out.push('the cube is loaded anew: its tables start empty');
  return out;
}

function diffJson(out: string[], path: string, a: JsonValue | undefined, b: JsonValue | undefined) {
  const isObject = (v: JsonValue | undefined): v is { [key: string]: JsonValue } =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObject(a) && isObject(b)) {
    for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      diffJson(out, `${path}.${key}`, a[key], b[key]);
    }
  } else if (a === undefined) {
    out.push(`${path} added: ${short(b)}`);
  } else if (b === undefined) {
    out.push(`${path} removed (was ${short(a)})`);
  } else if (canonical(a) !== canonical(b)) {
    out.push(`${path} ${short(a)} -> ${short(b)}`);
  }
}

/** JSON with sorted keys: two values with the same meaning have the same text. */
function canonical(value: JsonValue | undefined): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    return `{${Object.keys(value).sort().map(k => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function short(value: JsonValue | undefined): string {
  const text = canonical(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** A link is the same link whichever end is written first. */
function linksOf(chain: Chain | undefined): Map<string, LinkSpec> {
  const links = new Map<string, LinkSpec>();
  for (const link of chain?.spec.links ?? []) {
    const oriented =
      link.from <= link.to ? link : { from: link.to, to: link.from, ...(link.via ? { via: { from: link.via.to, to: link.via.from } } : {}) };
    links.set(`${oriented.from} <-> ${oriented.to}`, oriented);
  }
  return links;
}

function viaText(link: LinkSpec): string {
  return link.via ? `via ${link.via.from} <-> ${link.via.to}` : '';
}

/** Where each transparent cube sits: target, direction and its place in each stack (1 = outermost). */
function placements(chain: Chain | undefined): Map<string, string> {
  const attachments: AttachmentSpec[] = chain?.spec.attachments ?? [];
  const out = new Map<string, string>();
  attachments.forEach((attachment, i) => {
    const places = stackDirections(attachment.direction).map(direction => {
      const position = attachments
        .slice(0, i + 1)
        .filter(other => other.to === attachment.to && stackDirections(other.direction).includes(direction)).length;
      return `${direction} #${position}`;
    });
    out.set(attachment.cube, `${attachment.to} ${places.join(', ')}`);
  });
  return out;
}
