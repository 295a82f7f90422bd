import test from 'ava';
import { ChainValidationError, formatChain, parseChain, validateChain } from '@netcube/api/chain';
import { catalog, demo, DEMO_YAML } from './fixtures';

test('parse: YAML with defaults filled in', t => {
  t.deepEqual(parseChain(DEMO_YAML), demo());
});

test('parse: JSON reads the same as YAML', t => {
  t.deepEqual(parseChain(JSON.stringify(demo())), demo());
});

test('parse: the formatted chain reads back the same, in YAML and JSON', t => {
  const chain = demo();
  chain.spec.cubes[0].params = { routes: [{ prefix: '10.0.0.0/8', port: 'out' }], ttl: 64, off: 'off' };
  for (const format of ['yaml', 'json'] as const) {
    t.deepEqual(parseChain(formatChain(chain, format)), chain, format);
  }
  t.true(formatChain(chain, 'yaml').startsWith('apiVersion: netcube/v1\nkind: Chain\n'));
});

test('parse: a shape problem carries its path and line', t => {
  const text = DEMO_YAML.replace('      ports: [in, out]\n    - name: fwd2', '      prots: [in, out]\n    - name: fwd2');
  const error = t.throws(() => parseChain(text, 'demo.yaml'), { instanceOf: ChainValidationError });
  t.is(error.issues.length, 1);
  t.like(error.issues[0], { path: 'spec.cubes[0].prots', line: 10, column: 7 });
  t.is(error.source, 'demo.yaml');
  t.true(error.message.includes("demo.yaml:10:7 spec.cubes[0].prots: unknown field 'prots' in a cube (did you mean 'ports'?)"), error.message);
});

test('parse: a missing field is reported at its parent', t => {
  const text = DEMO_YAML.replace('      host: host2\n', '');
  const error = t.throws(() => parseChain(text), { instanceOf: ChainValidationError });
  t.like(error.issues[0], { path: 'spec.cubes[2].host', line: 15, message: "a cube needs 'host'" });
  t.true(error.message.includes("line 15:7 spec.cubes[2].host: a cube needs 'host'"), error.message);
});

test('parse: problems the validator finds later still point at lines of the file', t => {
  const chain = parseChain(DEMO_YAML.replace('to: fwd2:in', 'to: fwd9:in'), 'demo.yaml');
  const error = t.throws(() => validateChain(chain, { types: catalog, otherChains: [] }), { instanceOf: ChainValidationError });
  t.like(error.issues[0], { path: 'spec.links[0].to', line: 24, column: 7 });
  t.true(error.message.includes('demo.yaml:24:7 spec.links[0].to: unknown cube fwd9'), error.message);
});

test('parse: YAML syntax errors carry their line', t => {
  const error = t.throws(() => parseChain('metadata:\n  name: a\n  name: b\n', 'x.yaml'), { instanceOf: ChainValidationError });
  t.like(error.issues[0], { path: '', line: 3, message: 'Map keys must be unique' });
  const flow = t.throws(() => parseChain('spec: { cubes: [\n'), { instanceOf: ChainValidationError });
  t.is(flow.issues.length > 0 && flow.issues[0].line !== undefined, true);
});

test('parse: several documents are refused', t => {
  const error = t.throws(() => parseChain(`${DEMO_YAML}---\n${DEMO_YAML}`), { instanceOf: ChainValidationError });
  t.is(error.issues[0].message, 'the text holds several YAML documents; apply one chain per document');
});

test('parse: empty text and non-mappings', t => {
  const empty = t.throws(() => parseChain('  \n# nothing\n'), { instanceOf: ChainValidationError });
  t.true(empty.issues[0].message.includes('holds no chain'));
  const list = t.throws(() => parseChain('- a\n- b\n'), { instanceOf: ChainValidationError });
  t.is(list.issues[0].message, 'a chain must be a mapping, got a list');
});

test('parse: YAML 1.2 scalars stay strings where names are expected', t => {
  const chain = parseChain(DEMO_YAML.replace('ports: [in, out]', 'ports: [on, off]').replace('fwd1:out', 'fwd1:off').replace('fwd1:in', 'fwd1:on'));
  t.deepEqual(chain.spec.cubes[0].ports, ['on', 'off']);
  const error = t.throws(() => parseChain(DEMO_YAML.replace('ports: [in, out]', 'ports: [0, 1]')), { instanceOf: ChainValidationError });
  t.like(error.issues[0], { path: 'spec.cubes[0].ports[0]', line: 10 });
  t.true(error.issues[0].message.includes('quote it: "0"'));
});

test('parse: alias bombs are refused', t => {
  const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 8; i++) bomb.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(', ')}]`);
  const error = t.throws(() => parseChain(bomb.join('\n')), { instanceOf: ChainValidationError });
  t.true(error.issues[0].message.startsWith('cannot read the YAML'), error.issues[0].message);
});
