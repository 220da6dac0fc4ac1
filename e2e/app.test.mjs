// End-to-end tests of the browser app: the real server on loopback, headless Chromium,
// generated models through the pickers and a synthetic drop, merges compared byte for byte
// with the CLI's output.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { cliMerge, launch, models, pickFiles, startServer, unzip } from './helpers.mjs';

const config = `merge_method: dare_ties
base_model: demo-base
models:
  - model: demo-math
    parameters:
      weight: 0.5
      density: 0.4
  - model: demo-code
    parameters:
      weight: [0.2, 0.8]
      density: 0.6
  - model: extra.safetensors
    parameters:
      weight: 0.3
      density: 0.5
parameters:
  lambda: 0.9
dtype: bfloat16
`;

let server, browser, page, dir;
const requests = [];

before(async () => {
  dir = models('inputs', '-hidden', '64', '-layers', '3');
  copyFileSync(path.join(dir, 'demo-math', 'model.safetensors'), path.join(dir, 'extra.safetensors'));
  server = await startServer();
  browser = await launch();
  page = browser.ctx.pages()[0] || (await browser.ctx.newPage());
  page.on('request', (r) => requests.push({ method: r.method(), url: r.url() }));
  browser.ctx.on('request', (r) => {
    if (!r.frame || r.frame() !== page.mainFrame()) requests.push({ method: r.method(), url: r.url(), worker: true });
  });
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(server.url);
  await page.waitForFunction(() => document.querySelector('#method').options.length > 0);
});

after(async () => {
  await browser?.close();
  server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// dropFile dispatches a synthetic drop of a file with the given bytes on a zone. Such a
// drop has no file-system entries, as in design.md §10.
async function dropFile(zone, name, bytes) {
  await page.evaluate(({ zone, name, b64 }) => {
    const bin = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bin], name));
    document.querySelector(zone).dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, { zone, name, b64: Buffer.from(bytes).toString('base64') });
}

async function setConfig(text) {
  await page.fill('[data-testid=config]', text);
}

// mergeAndDownload clicks Merge on p (the shared page unless said) and returns the zip's
// name and files.
async function mergeAndDownload(p = page) {
  await p.waitForSelector('[data-testid=merge]:enabled', { timeout: 20000 });
  await p.click('[data-testid=merge]');
  const link = await p.waitForSelector('[data-testid=download]', { timeout: 120000 });
  const [download] = await Promise.all([p.waitForEvent('download'), link.click()]);
  const file = path.join(dir, await download.suggestedFilename());
  await download.saveAs(file);
  return { name: await download.suggestedFilename(), files: unzip(readFileSync(file)) };
}

function safetensorsOf(outDir) {
  return readdirSync(outDir).filter((f) => f.endsWith('.safetensors') || f.endsWith('.json')).sort();
}

describe('browser app', () => {
  test('pickers, a synthetic drop, form ↔ YAML, and a merge byte-identical to the CLI', async () => {
    await page.setInputFiles('[data-testid=base-input]', path.join(dir, 'demo-base'));
    await page.setInputFiles('[data-testid=models-input]', path.join(dir, 'demo-math'));
    await page.setInputFiles('[data-testid=models-input]', path.join(dir, 'demo-code'));
    await dropFile('#models-zone', 'extra.safetensors', readFileSync(path.join(dir, 'extra.safetensors')));
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=model]').length === 4);
    await page.waitForFunction(() => !document.querySelector('#model-list').textContent.includes('reading headers'));
    const listed = await page.textContent('#model-list');
    assert.match(listed, /demo-base.*base model.*tensors, BF16/s);
    assert.match(listed, /extra\.safetensors/);

    // Form → YAML: the models are named by folder and file name, weight filled in.
    let yaml = await page.inputValue('[data-testid=config]');
    assert.match(yaml, /base_model: demo-base/);
    assert.match(yaml, /- model: demo-code\n {4}parameters:\n {6}weight: 1/);
    assert.match(yaml, /- model: extra\.safetensors/);
    await page.fill('#model-params [data-model=demo-math] [data-param=density]', '0.25');
    yaml = await page.inputValue('[data-testid=config]');
    assert.match(yaml, /- model: demo-math\n {4}parameters:\n {6}weight: 1\n {6}density: 0.25/);
    await page.selectOption('#method', 'ties');
    assert.match(await page.inputValue('[data-testid=config]'), /^merge_method: ties/);

    // YAML → form.
    await setConfig(config);
    await page.waitForFunction(() => document.querySelector('#method').value === 'dare_ties'
      && document.querySelector('#model-params [data-model=demo-code] [data-param=weight]')?.value === '[0.2,0.8]');
    assert.equal(await page.inputValue('#global-params [data-param=lambda]'), '0.9');

    // A config error is shown next to the text area with its line.
    await setConfig(config.replace('density: 0.4', 'densty: 0.4'));
    await page.waitForFunction(() => document.querySelector('#config-error').textContent.includes('line 7'));
    assert.match(await page.textContent('#config-error'), /densty.*did you mean "density"/);
    assert.equal(await page.isDisabled('[data-testid=merge]'), true);
    // A model the page does not have is named.
    await setConfig(config.replace('model: demo-code', 'model: demo-cod'));
    await page.waitForFunction(() => document.querySelector('[data-testid=error]').textContent.includes('demo-cod'));

    await setConfig(config);
    await page.fill('[data-testid=seed]', '7');
    const { files } = await mergeAndDownload();
    const cli = cliMerge(dir, config, 7);
    const names = safetensorsOf(cli);
    assert.ok(names.includes('model.safetensors'));
    for (const name of names) {
      const got = [...files].find(([n]) => n.endsWith('/' + name));
      assert.ok(got, `zip has no ${name}: ${[...files.keys()].join(', ')}`);
      assert.ok(Buffer.compare(got[1], readFileSync(path.join(cli, name))) === 0, `${name} differs from the CLI's`);
    }
    assert.ok([...files.keys()].some((n) => n.endsWith('/README.md')));
    const summary = await page.textContent('[data-testid=summary]');
    assert.match(summary, /seed\s*7/);
    const mem = await page.textContent('[data-key="peak WebAssembly memory"]');
    assert.match(mem, /MiB/);
    assert.ok(parseFloat(mem) <= 256, `peak memory ${mem}`);
    // the Worker loaded web/kernels.wasm (embedded, served as application/wasm, allowed by the CSP)
    assert.equal(await page.textContent('[data-key="SIMD kernels"]'), 'yes');
  });

  test('a malformed model file: the error shown next to it, the page still usable', async () => {
    await dropFile('#models-zone', 'broken.safetensors', Buffer.from('\x10\x00\x00\x00\x00\x00\x00\x00{"a": not json}'));
    const err = await page.waitForSelector('[data-model="broken.safetensors"] [data-testid=model-error]');
    assert.match(await err.textContent(), /broken\.safetensors/);
    await page.click('[data-model="broken.safetensors"] button');
    await setConfig(config);
    await page.waitForSelector('[data-testid=merge]:enabled');
  });

  test('cancel in the middle of a merge, then a second merge succeeds', async () => {
    await setConfig(config);
    await page.fill('#chunk', '256'); // many small chunks: a slow merge to cancel
    await page.waitForSelector('[data-testid=merge]:enabled');
    await page.click('[data-testid=merge]');
    await page.waitForFunction(() => document.querySelector('[data-testid=progress]').value > 0);
    await page.click('[data-testid=cancel]');
    await page.waitForFunction(() => document.querySelector('[data-testid=status]').textContent.includes('Cancelled'));
    assert.equal(await page.$('[data-testid=download]'), null);
    await page.fill('#chunk', '1048576');
    const { files } = await mergeAndDownload();
    assert.ok([...files.keys()].some((n) => n.endsWith('/model.safetensors')));
  });

  test('storage quota exceeded: a clear error, then a merge that fits succeeds', async () => {
    const cdp = await browser.ctx.newCDPSession(page);
    const origin = new URL(server.url).origin;
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 64 * 1024 });
    try {
      await setConfig(config);
      await page.waitForSelector('[data-testid=merge]:enabled');
      await page.click('[data-testid=merge]');
      await page.waitForFunction(() => document.querySelector('[data-testid=status]').textContent.includes('stopped'), null, { timeout: 60000 });
      assert.match(await page.textContent('[data-testid=error]'), /storage is full/);
      assert.equal(await page.$('[data-testid=download]'), null);
    } finally {
      await cdp.send('Storage.overrideQuotaForOrigin', { origin });
    }
    const { files } = await mergeAndDownload();
    assert.ok([...files.keys()].some((n) => n.endsWith('/model.safetensors')));
  });

  test('reload in the middle of a merge: the leftover file is removed at the next load', async () => {
    await setConfig(config);
    await page.fill('#chunk', '1024');
    await page.waitForSelector('[data-testid=merge]:enabled');
    await page.click('[data-testid=merge]');
    await page.waitForFunction(() => document.querySelector('[data-testid=progress]').value > 0.02);
    const opfs = () => page.evaluate(async () => {
      const names = [];
      for await (const n of (await navigator.storage.getDirectory()).keys()) names.push(n);
      return names;
    });
    assert.ok((await opfs()).length > 0);
    await page.reload();
    await page.waitForFunction(() => document.querySelector('#method').options.length > 0);
    const deadline = Date.now() + 15000;
    while ((await opfs()).length > 0 && Date.now() < deadline) await page.waitForTimeout(250);
    assert.deepEqual(await opfs(), []);
  });

  test('the demo button: its fine-tunes analyze as such, no DARE warning, a merge with no files of the user', async () => {
    await page.reload();
    await page.waitForFunction(() => document.querySelector('#method').options.length > 0);
    await page.click('[data-testid=demo]');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=model]').length === 3);
    await page.waitForSelector('[data-testid=merge]:enabled');
    await page.click('[data-testid=analyze]');
    await page.waitForSelector('[data-testid=dare-checked], [data-testid=dare-risk]', { timeout: 60000 });
    const verdicts = await page.$$eval('[data-testid=verdict]', (vs) => vs.map((v) => v.dataset.verdict));
    assert.deepEqual(verdicts, ['a fine-tune of this base', 'a fine-tune of this base']);
    assert.deepEqual(await page.$$eval('[data-testid=dare-risk]', (rs) => rs.map((r) => r.textContent)), []);
    assert.ok(await page.$('[data-testid=dare-checked]'));
    assert.doesNotMatch(await page.textContent('[data-testid=dare-warning]'), /Warning/);
    const { files } = await mergeAndDownload();
    assert.ok([...files.keys()].some((n) => n.endsWith('/model.safetensors')));
    assert.match(await page.textContent('[data-testid=status]'), /Done/);
  });

  test('an analysis and a merge run in Workers started before their clicks, the next one started when each ends', async () => {
    // Every worker.js Worker the page starts, and whether the job's result was on the page
    // then: a Worker started for a job after its click would be started before its result.
    await page.addInitScript(() => {
      window.coreWorkers = [];
      window.Worker = new Proxy(Worker, {
        construct(W, args) {
          if (String(args[0]).endsWith('worker.js')) {
            window.coreWorkers.push({
              verdicts: document.querySelectorAll('[data-testid=verdict]').length,
              link: document.querySelector('[data-testid=download]') !== null,
            });
          }
          return new W(...args);
        },
      });
    });
    await page.reload();
    await page.waitForFunction(() => document.querySelector('#method').options.length > 0);
    await page.click('[data-testid=demo]');
    await page.waitForSelector('[data-testid=merge]:enabled');
    await page.waitForFunction(() => window.coreWorkers.length === 2); // the service's and a spare
    const started = () => page.evaluate(() => window.coreWorkers.slice());

    await page.click('[data-testid=analyze]');
    await page.waitForSelector('[data-testid=dare-checked], [data-testid=dare-risk]', { timeout: 60000 });
    await page.waitForFunction(() => window.coreWorkers.length >= 3);
    const afterAnalysis = await started();
    assert.equal(afterAnalysis.length, 3, 'one Worker started during or after the analysis');
    assert.ok(afterAnalysis[2].verdicts > 0, 'the analysis waited for a Worker started after its click');

    const { files } = await mergeAndDownload();
    assert.ok([...files.keys()].some((n) => n.endsWith('/model.safetensors')));
    await page.waitForFunction(() => window.coreWorkers.length >= 4);
    const afterMerge = await started();
    assert.equal(afterMerge.length, 4, 'one Worker started during or after the merge');
    assert.ok(afterMerge[3].link, 'the merge waited for a Worker started after its click');
  });

  test('at phone width (390×844) nothing overflows, and Tab reaches every control with a visible focus', async () => {
    // The page as the demo test left it (models, analysis charts, form, summary, link), plus
    // a model whose name has nowhere to break.
    const long = 'MetaLlama31_8BInstruct_finetuned_on_everything_v2_final.safetensors';
    await dropFile('#models-zone', long, readFileSync(path.join(dir, 'extra.safetensors')));
    await page.waitForSelector(`#model-params [data-model="${long}"]`);
    // Settled: the model list is drawn anew when headers are read and after each plan (which
    // fails: the model's shapes are not the demo's, and the error names it too).
    await page.waitForFunction(() => !document.querySelector('#model-list').textContent.includes('reading headers')
      && document.querySelector('[data-testid=error]').textContent.includes('MetaLlama'));
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      const { scroll, inner } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: innerWidth }));
      assert.ok(scroll <= inner, `the page is ${scroll} px wide in a ${inner} px window`);
      const controls = await page.$$eval('a[href], button, input, select, textarea', (es) => es
        .filter((e) => !e.disabled && !e.closest('[hidden]') && (e.offsetParent !== null || e.closest('label.button')))
        .map((e, i) => { e.dataset.tabCheck = String(i); return String(i); }));
      // From the first control on, Tab must reach all the others (and show where it is).
      await page.focus('[data-tab-check="0"]');
      const reached = new Set();
      for (let i = 0; i < 2 * controls.length && reached.size < controls.length; i++) {
        if (i > 0) await page.keyboard.press('Tab');
        const f = await page.evaluate(() => {
          const e = document.activeElement;
          // A file input is visually hidden inside its label, which shows the focus.
          const shown = e.type === 'file' ? e.closest('label') : e;
          const st = getComputedStyle(shown);
          return { id: e.dataset.tabCheck, outline: st.outlineStyle !== 'none' && parseFloat(st.outlineWidth) > 0, what: e.outerHTML.slice(0, 80) };
        });
        if (f.id === undefined) continue;
        assert.ok(f.outline, `no visible focus on ${f.what}`);
        reached.add(f.id);
      }
      assert.deepEqual(controls.filter((c) => !reached.has(c)), []);
    } finally {
      await page.setViewportSize({ width: 1280, height: 720 });
      await page.click(`[data-model="${long}"] button`);
    }
  });

  // newPageMerge merges the demo-base, demo-math and demo-code models of from with cfg
  // (seed 7) in a new page (route, if given, set up on it first) and checks the zip's
  // model.safetensors against the CLI's merge of the same config into from/name.
  async function newPageMerge(from, cfg, name, route) {
    const p = await browser.ctx.newPage();
    try {
      await route?.(p);
      await p.goto(server.url);
      await p.waitForFunction(() => document.querySelector('#method').options.length > 0);
      await p.setInputFiles('[data-testid=base-input]', path.join(from, 'demo-base'));
      await p.setInputFiles('[data-testid=models-input]', path.join(from, 'demo-math'));
      await p.setInputFiles('[data-testid=models-input]', path.join(from, 'demo-code'));
      await p.fill('[data-testid=config]', cfg);
      await p.fill('[data-testid=seed]', '7');
      const { files } = await mergeAndDownload(p);
      const cli = cliMerge(from, cfg, 7, name);
      const got = [...files].find(([n]) => n.endsWith('/model.safetensors'));
      assert.ok(got, `zip has no model.safetensors: ${[...files.keys()].join(', ')}`);
      assert.ok(Buffer.compare(got[1], readFileSync(path.join(cli, 'model.safetensors'))) === 0, 'model.safetensors differs from the CLI\'s');
    } finally {
      await p.close();
    }
  }
  const twoModels = config.replace(/  - model: extra\.safetensors\n(.*\n){3}/, '');

  // worker.js reads the files itself, in larger windows, when its helper cannot start.
  test('without its file-reading helper (reader.js not found) a merge still matches the CLI', async () => {
    assert.doesNotMatch(twoModels, /extra/);
    let asked = 0;
    await newPageMerge(dir, twoModels, 'cli-no-helper', (p) => p.route('**/web/reader.js', (route) => {
      asked++;
      return route.fulfill({ status: 404, body: 'not here' });
    }));
    assert.ok(asked > 0, 'the page never asked for reader.js');
  });

  // 24 files of about 1.2 MB read by the one helper, three at a time, shard after shard.
  test('models of eight shards each: the merge matches the CLI', async () => {
    const sharded = models('shards', '-hidden', '256', '-layers', '6', '-shards', '7');
    try {
      assert.equal(readdirSync(path.join(sharded, 'demo-math')).filter((f) => f.endsWith('.safetensors')).length, 8);
      await newPageMerge(sharded, twoModels, 'cli-shards');
    } finally {
      rmSync(sharded, { recursive: true, force: true });
    }
  });

  // The page names a new file for each merge, but the Worker protocol's `out` may name one
  // that exists: the core truncates it only then (an empty file is left alone: on ext4 its
  // truncation makes the close write the whole zip back to disk).
  test('a merge into a file that already holds more bytes leaves the new zip alone in it', async () => {
    const names = readdirSync(dir, { recursive: true }).filter((f) => /^demo-(base|math|code)\//.test(f)).sort();
    await pickFiles(page, 'stale-files', names.map((f) => path.join(dir, f)));
    const got = await page.evaluate(async ({ names, config }) => {
      const { Core } = await import('/web/client.js');
      const files = [...document.getElementById('stale-files').files].map((file, i) => ({ path: names[i], file }));
      const root = await navigator.storage.getDirectory();
      const merge = async (out) => {
        const c = new Core();
        try {
          await c.request('merge', { config, seed: '7', chunkSize: 0, shardSize: 0, out, files });
        } finally {
          c.terminate();
        }
        const b = new Uint8Array(await (await (await root.getFileHandle(out)).getFile()).arrayBuffer());
        await root.removeEntry(out);
        let s = '';
        for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
        return btoa(s);
      };
      const fresh = await merge('fresh-out.zip');
      const w = await (await root.getFileHandle('stale-out.zip', { create: true })).createWritable();
      await w.write(new Uint8Array(2 * atob(fresh).length + 12345).fill(0xab));
      await w.close();
      return { fresh, stale: await merge('stale-out.zip') };
    }, { names, config: twoModels });
    const fresh = Buffer.from(got.fresh, 'base64');
    const stale = Buffer.from(got.stale, 'base64');
    assert.equal(stale.length, fresh.length, 'the zip written over a longer file has its old bytes after it');
    assert.equal(stale.readUInt32LE(stale.length - 22), 0x06054b50, 'no end of central directory at the end');
    const a = unzip(fresh);
    const b = unzip(stale);
    assert.deepEqual([...b.keys()].map((n) => n.replace(/^[^/]*\//, '')), [...a.keys()].map((n) => n.replace(/^[^/]*\//, '')));
    for (const [n, bytes] of a) assert.ok(Buffer.compare(b.get(n.replace('fresh-out', 'stale-out')), bytes) === 0, `${n} differs`);
  });

  test('the page makes no request but GETs of its own assets', () => {
    const origin = new URL(server.url).origin;
    const foreign = requests.filter((r) => !(r.url.startsWith(origin + '/') || r.url.startsWith('blob:') || r.url.startsWith('data:')));
    assert.deepEqual(foreign, []);
    const nonGet = requests.filter((r) => r.method !== 'GET');
    assert.deepEqual(nonGet, []);
    const paths = new Set(requests.filter((r) => r.url.startsWith(origin)).map((r) => new URL(r.url).pathname));
    for (const p of paths) assert.match(p, /^\/(|index\.html|web\/.*)$/, `unexpected request ${p}`);
    assert.ok(paths.has('/web/main.wasm'));
    console.log(`# ${requests.length} requests, ${paths.size} distinct paths`);
  });
});
