#!/usr/bin/env node
// Lines of code of the cube types, fast path and control plane, against the vanilla
// baseline (bpf/baseline/vanilla_fwd.bpf.c): node remote-services/scripts/loc.js
//
// A line counts when it holds code: blank lines and comments (// and /* */ in C and
// TypeScript, // in .proto) do not, nor do lines of a lone brace or bracket. The
// framework (bpf/include/netcube, remote-services/sdk) and generated code are
// shared by every cube and counted apart. Prints a Markdown table.

'use strict';
const fs = require('node:fs');
const path = require('node:path');

const repo = path.resolve(__dirname, '../..');

/** Code lines of a C, TypeScript or proto source. */
function codeLines(file) {
  const text = fs.readFileSync(path.join(repo, file), 'utf8');
  // Comments go first (a block comment may span lines); string contents are not inspected,
  // which is fine for these sources: none holds a comment marker in a string.
  const stripped = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
  return stripped.split('\n').filter((l) => {
    const s = l.trim();
    return s !== '' && !/^[{}()[\];,]+$/.test(s);
  }).length;
}

function files(dir, ext) {
  const abs = path.join(repo, dir);
  if (!fs.existsSync(abs)) return [];
  return fs
    .readdirSync(abs, { withFileTypes: true })
    // build/ holds a package's compiled output (its .d.ts too), not its sources.
    .filter((e) => !(e.isDirectory() && (e.name === 'build' || e.name === 'node_modules')))
    .flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name), ext) : e.name.endsWith(ext) ? [path.join(dir, e.name)] : []));
}

const sum = (list) => list.reduce((n, f) => n + codeLines(f), 0);

const rows = [
  { cube: 'vanilla forwarder (baseline, no framework)', fast: ['bpf/baseline/vanilla_fwd.bpf.c'], control: [] },
  { cube: 'simpleforwarder', fast: ['bpf/cubes/simpleforwarder.bpf.c'], control: [] },
  { cube: 'macfilter (the tutorial)', fast: ['remote-services/examples/macfilter/macfilter.bpf.c'], control: [...files('remote-services/examples/macfilter', '.ts'), 'proto/netcube/macfilter/v1/macfilter.proto'] },
  { cube: 'bridge', fast: ['bpf/cubes/bridge.bpf.c'], control: [...files('remote-services/bridge', '.ts'), 'proto/netcube/bridge/v1/bridge.proto'] },
  { cube: 'router', fast: ['bpf/cubes/router.bpf.c'], control: [...files('remote-services/router', '.ts'), 'proto/netcube/router/v1/router.proto'] },
  ...['firewall', 'nat', 'lbrp', 'k8sdispatcher'].map((name) => ({ cube: name, fast: [`bpf/cubes/${name}.bpf.c`], control: [...files(`remote-services/${name}`, '.ts'), `proto/netcube/${name}/v1/${name}.proto`] })),
];

const out = ['| cube type | fast path (C) | control + slow path (TS + config .proto) | files |', '|---|---:|---:|---|'];
for (const r of rows) {
  out.push(`| ${r.cube} | ${sum(r.fast)} | ${r.control.length ? sum(r.control) : 0} | ${[...r.fast, ...r.control].join(', ')} |`);
}
const shared = [
  ['data-plane framework (bpf/include/netcube)', files('bpf/include/netcube', '.h')],
  ['remote-service SDK without the packet library (remote-services/sdk)', files('remote-services/sdk', '.ts').filter((f) => !f.includes(`${path.sep}packet${path.sep}`))],
  ['packet library (remote-services/sdk/packet)', files('remote-services/sdk/packet', '.ts')],
  ['the catalog\'s shared fields, conntrack timeouts and collection (remote-services/catalog, firewall/nat/lbrp/k8sdispatcher only)', [...files('remote-services/catalog', '.ts'), 'proto/netcube/catalog/v1/conntrack.proto']],
];
out.push('', '| shared by every cube | lines |', '|---|---:|');
for (const [what, list] of shared) out.push(`| ${what} | ${sum(list)} |`);
process.stdout.write(`${out.join('\n')}\n`);
