// web/kernels.wat assembles (with npm's wabt, as make does) into a valid module.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assemble } from '../tools/kernels.mjs';

test('kernels.wat assembles into a valid module', async () => {
  assert.ok(WebAssembly.validate(await assemble()), 'kernels.wasm does not validate');
});
