// End-to-end tests of the page's output: "Merge and save to folder…" and the Output options
// (shard size, tokenizer files, NaN/Inf inputs), each merge compared byte for byte with
// `freelunch merge` of the same config, seed and flags.
//
// Headless Chromium cannot drive the native folder picker, so window.showDirectoryPicker
// alone is replaced, before the page loads, by a function returning a real
// FileSystemDirectoryHandle: a fresh folder of the origin private file system. The page and
// its Worker write into it exactly as into a folder the user picked (createWritable, the only
// writing method such a folder offers), and the test reads every file back through the page.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cliMerge, launch, models, root, startServer, unzip } from './helpers.mjs';

const config = (tune = 'demo-code') => `merge_method: dare_ties
base_model: demo-base
models:
  - model: demo-math
    parameters:
      weight: 0.6
      density: 0.4
  - model: ${tune}
    parameters:
      weight: [0.2, 0.8]
      density: 0.6
parameters:
  lambda: 0.9
dtype: bfloat16
`;

let server, browser, page, dir;
let nanTensor = ''; // the tensor of demo-nan holding NaNs

before(async () => {
  dir = models('output', '-hidden', '64', '-layers', '3');
  // demo-nan is demo-code with three NaNs in a tensor of the last output shard at 100KiB,
  // so that a merge stopping there has already written the shards before it.
  const sharded = cli('--out-shard-size', '100KiB', 'plain.yml', 'cli-plain-shards', { config: config() });
  assert.equal(sharded.status, 0, sharded.stderr);
  const index = JSON.parse(readFileSync(path.join(dir, 'cli-plain-shards', 'model.safetensors.index.json'), 'utf8'));
  const shards = [...new Set(Object.values(index.weight_map))].sort();
  assert.ok(shards.length >= 3, `want several shards at 100KiB, got ${shards.join(', ')}`);
  nanTensor = Object.keys(index.weight_map).find((t) => index.weight_map[t] === shards.at(-1));
  cpSync(path.join(dir, 'demo-code'), path.join(dir, 'demo-nan'), { recursive: true });
  const file = path.join(dir, 'demo-nan', 'model.safetensors');
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const t = JSON.parse(buf.toString('utf8', 8, 8 + n))[nanTensor];
  assert.ok(t.dtype === 'BF16' && t.shape.reduce((a, b) => a * b) > 17, JSON.stringify(t));
  for (const i of [0, 5, 17]) buf.writeUInt16LE(0x7fc0, 8 + n + t.data_offsets[0] + 2 * i); // BF16 quiet NaN
  writeFileSync(file, buf);

  server = await startServer();
  browser = await launch();
  page = browser.ctx.pages()[0] || (await browser.ctx.newPage());
  page.setDefaultTimeout(120000);
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.addInitScript(() => {
    window.__picked = [];
    window.showDirectoryPicker = async () => {
      const root = await navigator.storage.getDirectory();
      const d = await root.getDirectoryHandle(`picked-${window.__picked.length}`, { create: true });
      window.__picked.push(d);
      return d;
    };
  });
  await page.goto(server.url);
  await page.waitForFunction(() => document.querySelector('#method').options.length > 0);
  await page.setInputFiles('[data-testid=base-input]', path.join(dir, 'demo-base'));
  for (const m of ['demo-math', 'demo-code', 'demo-nan']) await page.setInputFiles('[data-testid=models-input]', path.join(dir, m));
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=model]').length === 4);
});

after(async () => {
  await browser?.close();
  server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// cli runs bin/freelunch merge in dir with flags, CONFIG (written from opts.config) and OUT.
function cli(...args) {
  const { config: text } = args.pop();
  const [cfg, out] = args.slice(-2);
  writeFileSync(path.join(dir, cfg), text);
  rmSync(path.join(dir, out), { recursive: true, force: true });
  return spawnSync(path.join(root, 'bin/freelunch'), ['merge', ...args], { cwd: dir, encoding: 'utf8' });
}

function folder(out) {
  return new Map(readdirSync(out).sort().map((n) => [n, readFileSync(path.join(out, n))]));
}

// picked returns the files of the last folder the page was given, read through the page
// (FileSystemFileHandle.getFile), as a Map name → Buffer; a subfolder maps to null.
async function picked() {
  const files = await page.evaluate(async () => {
    const d = window.__picked.at(-1);
    const out = [];
    for await (const [name, h] of d.entries()) {
      if (h.kind !== 'file') {
        out.push([name, null]);
        continue;
      }
      const b = new Uint8Array(await (await h.getFile()).arrayBuffer());
      let s = '';
      for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
      out.push([name, btoa(s)]);
    }
    return out;
  });
  return new Map(files.sort(([a], [b]) => (a < b ? -1 : 1)).map(([n, b64]) => [n, b64 === null ? null : Buffer.from(b64, 'base64')]));
}

function sameFiles(got, want, what) {
  assert.deepEqual([...got.keys()], [...want.keys()], `${what}: file names`);
  for (const [name, bytes] of want) assert.ok(got.get(name) && Buffer.compare(got.get(name), bytes) === 0, `${what}: ${name} differs from the CLI's`);
}

async function setup(text, { seed = '7', shardSize = '', chunk = '1048576', copyTokenizer = true, allowNonFinite = false } = {}) {
  await page.fill('[data-testid=config]', text);
  await page.fill('[data-testid=seed]', seed);
  await page.fill('[data-testid=shard-size]', shardSize);
  await page.fill('[data-testid=chunk]', chunk);
  await page.setChecked('[data-testid=copy-tokenizer]', copyTokenizer);
  await page.setChecked('[data-testid=allow-nonfinite]', allowNonFinite);
  await page.waitForSelector('[data-testid=merge]:enabled');
}

// start clears the status line (so that the last run's "Done" is not taken for this one's)
// and presses a button.
async function start(testid) {
  await page.$eval('[data-testid=status]', (e) => { e.textContent = ''; });
  await page.click(`[data-testid=${testid}]`);
}

async function done() {
  await page.waitForFunction(() => /^(Done|Cancelled|The merge stopped)/.test(document.querySelector('[data-testid=status]').textContent));
  return page.textContent('[data-testid=status]');
}

async function download() {
  const link = await page.waitForSelector('[data-testid=download]');
  const [d] = await Promise.all([page.waitForEvent('download'), link.click()]);
  const file = path.join(dir, d.suggestedFilename());
  await d.saveAs(file);
  const zip = unzip(readFileSync(file));
  return new Map([...zip].map(([n, b]) => [n.slice(n.indexOf('/') + 1), b]).sort(([a], [b]) => (a < b ? -1 : 1)));
}

describe('output', () => {
  test('save to folder: every file byte-identical to the CLI (seed 7)', async () => {
    assert.equal(await page.isVisible('[data-testid=save-folder]'), true);
    await setup(config());
    await start('save-folder');
    assert.match(await done(), /^Done/);
    assert.equal(await page.$('[data-testid=download]'), null);
    const got = await picked();
    sameFiles(got, folder(cliMerge(dir, config(), 7)), 'folder');
    assert.ok(got.has('model.safetensors') && got.has('README.md') && got.has('tokenizer.json'));
    assert.match(await page.textContent('[data-testid=status]'), /picked-0/);
  });

  test('save to folder: a non-empty folder is refused before merging', async () => {
    // picked-0 holds the last merge; the stand-in picker hands it out again.
    await page.evaluate(() => {
      window.showDirectoryPicker = async () => window.__picked.at(-1);
    });
    await page.click('[data-testid=save-folder]');
    await page.waitForFunction(() => document.querySelector('[data-testid=error]').textContent.includes('not empty'));
    assert.equal(await page.isDisabled('[data-testid=cancel]'), true);
    await page.evaluate(() => {
      window.showDirectoryPicker = async () => {
        const d = await (await navigator.storage.getDirectory()).getDirectoryHandle(`picked-${window.__picked.length}`, { create: true });
        window.__picked.push(d);
        return d;
      };
    });
  });

  test('save to folder: a cancel after shards were written leaves the folder empty', async () => {
    await setup(config(), { shardSize: '100KiB', chunk: '256' });
    await start('save-folder');
    // Wait until a finished shard is in the folder, then cancel.
    await page.waitForFunction(async () => {
      for await (const _ of window.__picked.at(-1).keys()) return true;
      return false;
    }, null, { polling: 50 });
    await page.click('[data-testid=cancel]');
    assert.match(await done(), /^Cancelled\. Nothing was left in picked-\d+\./);
    assert.deepEqual([...(await picked()).keys()], []);
  });

  test('save to folder: an error after shards were written leaves the folder empty', async () => {
    await setup(config('demo-nan'), { shardSize: '100KiB' });
    await start('save-folder');
    assert.match(await done(), /^The merge stopped\. Nothing was left in picked-\d+\./);
    const err = await page.textContent('[data-testid=error]');
    assert.ok(err.includes('demo-nan') && err.includes(`"${nanTensor}"`), err);
    assert.match(err, /Merge inputs that hold NaN or Inf/);
    assert.deepEqual([...(await picked()).keys()], []);
  });

  test('save to folder: a full disk is named as the chosen folder\'s, and the folder left empty', async () => {
    // The stand-in picked folder lives in OPFS, so the origin's quota stands for its disk.
    // The folder is made before the quota shrinks (the earlier tests' folders already hold
    // more than it), as a real picker's would exist; the picker hands it out once.
    await page.evaluate(async () => {
      const d = await (await navigator.storage.getDirectory()).getDirectoryHandle(`picked-${window.__picked.length}`, { create: true });
      window.__picked.push(d);
      const picker = window.showDirectoryPicker;
      window.showDirectoryPicker = async () => {
        window.showDirectoryPicker = picker;
        return d;
      };
    });
    const cdp = await browser.ctx.newCDPSession(page);
    const origin = new URL(server.url).origin;
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 64 * 1024 });
    try {
      await setup(config(), { shardSize: '100KiB' });
      await start('save-folder');
      assert.match(await done(), /^The merge stopped\. Nothing was left in picked-\d+\./);
      assert.match(await page.textContent('[data-testid=error]'), /disk of the chosen folder is full/);
      assert.deepEqual([...(await picked()).keys()], []);
    } finally {
      await cdp.send('Storage.overrideQuotaForOrigin', { origin });
    }
  });

  test('shard size and no tokenizer files: the same shards, index and files as the CLI', async () => {
    await setup(config(), { shardSize: '100KiB', copyTokenizer: false });
    assert.match(await page.textContent('[data-testid=plan]'), /in \d+ shards/);
    await start('merge');
    assert.match(await done(), /^Done/);
    const got = await download();
    const r = cli('--random-seed', '7', '--out-shard-size', '100KiB', '--no-copy-tokenizer', 'shards.yml', 'cli-shards', { config: config() });
    assert.equal(r.status, 0, r.stderr);
    const want = folder(path.join(dir, 'cli-shards'));
    sameFiles(got, want, 'zip');
    assert.ok(want.has('model.safetensors.index.json') && !want.has('tokenizer.json'), [...want.keys()].join(', '));
  });

  test('a bad shard size is named and blocks merging', async () => {
    await page.fill('[data-testid=shard-size]', '5 GB');
    await page.waitForFunction(() => document.querySelector('[data-testid=shard-size-note]').textContent.includes('not a positive size'));
    await page.waitForTimeout(400); // past the validation's debounce
    assert.equal(await page.isDisabled('[data-testid=merge]'), true);
    assert.equal(await page.getAttribute('[data-testid=shard-size]', 'aria-invalid'), 'true');
    await page.fill('[data-testid=shard-size]', '');
    await page.waitForSelector('[data-testid=merge]:enabled');
  });

  test('NaN inputs: merged when allowed, their count in the summary as the CLI counts them', async () => {
    await setup(config('demo-nan'), { allowNonFinite: true });
    await start('merge');
    assert.match(await done(), /^Done/);
    const got = await download();
    const r = cli('--random-seed', '7', '--allow-nonfinite', 'nan.yml', 'cli-nan', { config: config('demo-nan') });
    assert.equal(r.status, 0, r.stderr);
    const count = /the inputs held (\d+) NaN or Inf values/.exec(r.stderr)?.[1];
    assert.ok(count > 0, r.stderr);
    sameFiles(got, folder(path.join(dir, 'cli-nan')), 'zip');
    assert.equal(await page.textContent('[data-key="NaN or Inf inputs merged"]'), count);
  });
});
