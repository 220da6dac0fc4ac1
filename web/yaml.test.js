import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toYAML, str } from './yaml.js';
import { groupFiles } from './files.js';

test('toYAML writes a dare_ties config', () => {
  const y = toYAML({
    method: 'dare_ties', base: 'llama base', dtype: 'bfloat16',
    models: [{ model: 'math', params: { weight: 0.6, density: [0.2, 0.8] } }, { model: 'code', params: {} }],
    params: { lambda: 1, normalize: false, rescale_norm: 'l1' },
  });
  assert.equal(y, `merge_method: dare_ties
base_model: "llama base"
models:
  - model: math
    parameters:
      weight: 0.6
      density: [0.2,0.8]
  - model: code
parameters:
  lambda: 1
  normalize: false
  rescale_norm: l1
dtype: bfloat16
`);
});

test('str quotes what YAML would read as something else', () => {
  for (const [s, want] of [['true', '"true"'], ['1.5', '"1.5"'], ['a b', '"a b"'], ['m.safetensors', 'm.safetensors'], ['', '""']]) {
    assert.equal(str(s), want, `str(${JSON.stringify(s)})`);
  }
});

test('groupFiles groups folders and keeps single safetensors files', () => {
  const f = (name, rel) => ({ name, webkitRelativePath: rel });
  const { models, skipped } = groupFiles([
    f('model.safetensors', 'base/model.safetensors'), f('config.json', 'base/config.json'),
    f('tune.safetensors', ''), f('notes.txt', ''),
  ]);
  assert.deepEqual(models.map((m) => [m.name, m.files.map((x) => x.path)]), [
    ['base', ['base/model.safetensors', 'base/config.json']], ['tune.safetensors', ['tune.safetensors']],
  ]);
  assert.deepEqual(skipped, ['notes.txt']);
});
