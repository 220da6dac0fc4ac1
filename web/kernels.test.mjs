// The committed kernels.wasm is what kernels.wat assembles to (make kernels rebuilds it).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { assemble } from '../tools/kernels.mjs';

test('kernels.wasm is kernels.wat assembled', async () => {
  const want = await assemble();
  const got = readFileSync(new URL('kernels.wasm', import.meta.url));
  assert.ok(want.equals(got), 'web/kernels.wasm is stale: run make kernels');
  assert.ok(WebAssembly.validate(got), 'kernels.wasm does not validate');
});
