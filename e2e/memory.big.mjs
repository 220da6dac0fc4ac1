// Run by `make test-e2e-big` (minutes on a slow disk; not part of `make test`).
// The WebAssembly memory bound (issue 5): merging models of more than 1 GiB in all with
// default settings stays within 256 MiB of WebAssembly memory.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { launch, root, startServer } from './helpers.mjs';

let server, browser, dir;

before(async () => {
  // Generated once (the disk, not the generator, is the slow part) into the ignored .cache.
  dir = path.join(root, '.cache', 'e2e-big');
  if (!existsSync(path.join(dir, 'demo-code', 'model.safetensors'))) {
    execFileSync('go', ['run', './cmd/demomodels', '-big', '400000000', dir], { cwd: root, stdio: 'inherit' });
  }
  server = await startServer();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.stop();
});

test('a dare_ties merge of 1.2 GB of inputs stays within 256 MiB of WebAssembly memory', { timeout: 600000 }, async () => {
  const total = ['demo-base', 'demo-math', 'demo-code']
    .reduce((n, m) => n + statSync(path.join(dir, m, 'model.safetensors')).size, 0);
  assert.ok(total > 2 ** 30, `inputs hold ${total} bytes, want more than 1 GiB`);
  const page = browser.ctx.pages()[0] || (await browser.ctx.newPage());
  await page.goto(server.url);
  await page.waitForFunction(() => document.querySelector('#method').options.length > 0);
  await page.setInputFiles('[data-testid=base-input]', path.join(dir, 'demo-base'));
  await page.setInputFiles('[data-testid=models-input]', path.join(dir, 'demo-math'));
  await page.setInputFiles('[data-testid=models-input]', path.join(dir, 'demo-code'));
  await page.fill('[data-testid=config]', `merge_method: dare_ties
base_model: demo-base
models:
  - model: demo-math
    parameters: {weight: 0.5, density: 0.5}
  - model: demo-code
    parameters: {weight: 0.5, density: 0.5}
`);
  await page.waitForSelector('[data-testid=merge]:enabled', { timeout: 30000 });
  await page.click('[data-testid=merge]');
  await page.waitForSelector('[data-testid=download]', { timeout: 540000 });
  const mem = await page.textContent('[data-key="peak WebAssembly memory"]');
  const time = await page.textContent('[data-key="time"]');
  console.log(`# peak WebAssembly memory ${mem}, merge time ${time}`);
  const mib = mem.endsWith('GiB') ? parseFloat(mem) * 1024 : mem.endsWith('MiB') ? parseFloat(mem) : 0;
  assert.ok(mib > 0 && mib <= 256, `peak WebAssembly memory ${mem}, want at most 256 MiB`);
});
