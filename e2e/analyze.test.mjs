// End-to-end test of the Analyze view (issue 8) in headless Chromium against the real
// server: a generated family with known deltas (demomodels -delta 0.0005 -extra: two small
// fine-tunes, one derivative with ten times larger deltas, one unrelated model), the charts
// counted mark by mark, the verdicts and the DARE warning compared with the CLI's.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { launch, models, root, startServer } from './helpers.mjs';

const LAYERS = 3;
const tunes = ['demo-math', 'demo-code', 'demo-large', 'demo-unrelated'];
// The verdicts the family is built for (cmd/demomodels; relative norms about 0.01, 0.01,
// 0.1 and 0.58 against the thresholds 1/30 and 0.5 of core/analyze).
const verdicts = {
  'demo-math': 'a fine-tune of this base',
  'demo-code': 'a fine-tune of this base',
  'demo-large': 'deltas too large for aggressive DARE',
  'demo-unrelated': 'not derived from this base',
};

let server, browser, page, dir;

before(async () => {
  dir = models('analyze', '-hidden', '64', '-layers', String(LAYERS), '-delta', '0.0005', '-extra');
  server = await startServer();
  browser = await launch();
  page = browser.ctx.pages()[0] || (await browser.ctx.newPage());
  // Generous: the suite shares a small machine with others (load was 30 on 2 CPUs).
  page.setDefaultTimeout(180000);
  page.on('pageerror', (e) => console.error('page error:', e.message));
  await page.goto(server.url);
  await page.waitForFunction(() => document.querySelector('#method').options.length > 0);
});

after(async () => {
  await browser?.close();
  server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// elements counts the elements of the float tensors of a one-file model from its header.
function elements(file) {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.toString('utf8', 8, 8 + n));
  let total = 0;
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__' || !/^(F|BF)\d+$/.test(t.dtype)) continue;
    total += t.shape.reduce((a, b) => a * b, 1);
  }
  return total;
}

function cli(...args) {
  return execFileSync(path.join(root, 'bin/freelunch'), args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

// checkDeltas returns the CLI's --check-deltas warnings for a config, without the prefix.
function checkDeltas(config) {
  writeFileSync(path.join(dir, 'check.yml'), config);
  const r = execFileSync('sh', ['-c', '"$0" merge --check-deltas --dry-run check.yml out 2>&1', path.join(root, 'bin/freelunch')], { cwd: dir, encoding: 'utf8' });
  return r.split('\n').filter((l) => l.startsWith('warning: --check-deltas: ')).map((l) => l.slice('warning: --check-deltas: '.length));
}

const dareConfig = (largeDensity) => `merge_method: dare_ties
base_model: demo-base
models:
  - model: demo-math
    parameters:
      weight: 0.5
      density: 0.5
  - model: demo-large
    parameters:
      weight: 0.5
      density: ${largeDensity}
parameters:
  lambda: 1.0
`;

describe('Analyze view', () => {
  test('charts, verdicts and cosines of a family with known deltas, as the CLI finds them', async () => {
    await page.setInputFiles('[data-testid=base-input]', path.join(dir, 'demo-base'));
    for (const m of tunes) await page.setInputFiles('[data-testid=models-input]', path.join(dir, m));
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=model]').length === 5);
    // Before Analyze, a DARE config gets a hint to analyze, no warning.
    await page.waitForFunction(() => document.querySelector('[data-testid=dare-warning]').textContent.includes('Analyze the models'));

    await page.click('[data-testid=analyze]');
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid=model-analysis]').length === n, tunes.length);
    assert.match(await page.textContent('[data-testid=analyze-status]'), /Done.*4 models compared with demo-base/);

    const want = JSON.parse(cli('analyze', '--json', '--base', 'demo-base', ...tunes));
    const total = elements(path.join(dir, 'demo-base', 'model.safetensors'));
    const cards = await page.$$eval('[data-testid=model-analysis]', (cs) => cs.map((c) => ({
      model: c.dataset.model,
      verdict: c.querySelector('[data-testid=verdict]').dataset.verdict,
      text: c.querySelector('[data-testid=verdict]').textContent,
      bins: [...c.querySelectorAll('[data-testid=histogram] rect.bar')].map((r) => Number(r.dataset.count)),
      marks: [...c.querySelectorAll('[data-testid=histogram] .mark')].map((m) => Number(m.dataset.mark)),
      layers: [...c.querySelectorAll('[data-testid=layers] rect.bar')].map((r) => ({ label: r.dataset.label, value: Number(r.dataset.value) })),
    })));
    assert.deepEqual(cards.map((c) => c.model), tunes);
    const rel = {};
    for (const c of cards) {
      const cliModel = want.models.find((m) => m.model === c.model);
      assert.equal(c.verdict, verdicts[c.model], `${c.model}: verdict`);
      assert.equal(c.verdict, cliModel.verdict, `${c.model}: the page's verdict differs from the CLI's`);
      assert.ok(c.text.toLowerCase().startsWith(c.verdict.toLowerCase()), `${c.model}: verdict text ${c.text}`);
      assert.match(c.text, /of the base's norm/);
      // The histogram holds every compared element once, in at least a few bins.
      assert.ok(c.bins.length > 10, `${c.model}: ${c.bins.length} histogram bars`);
      assert.equal(c.bins.reduce((a, b) => a + b, 0), total, `${c.model}: histogram total`);
      // One bar per layer, then the tensors outside the layers.
      assert.deepEqual(c.layers.map((l) => l.label), [...Array(LAYERS).keys()].map(String).concat('rest'));
      for (const l of c.layers) assert.ok(Number.isFinite(l.value) && l.value > 0, `${c.model} layer ${l.label}: ${l.value}`);
      rel[c.model] = c.layers;
    }
    // The 0.002 and 0.005 marks fall within the fine-tunes' range of |δ|.
    assert.deepEqual(cards[0].marks, [0.002, 0.005]);
    // demo-large's deltas are the fine-tunes' made ten times larger, layer by layer
    // (seeds differ, so within a few percent).
    rel['demo-math'].forEach((l, i) => {
      const ratio = rel['demo-large'][i].value / l.value;
      assert.ok(ratio > 9 && ratio < 11, `layer ${l.label}: demo-large/demo-math = ${ratio}`);
    });

    // Cosine heatmap: 4×4 cells, 1 on the diagonal, near 0 between independent deltas, as
    // the CLI's pairs.
    const cells = await page.$$eval('[data-testid=cosine] rect.cell', (rs) => rs.map((r) => ({
      i: Number(r.dataset.row), j: Number(r.dataset.col), v: Number(r.dataset.value),
    })));
    assert.equal(cells.length, tunes.length * tunes.length);
    for (const { i, j, v } of cells) {
      if (i === j) {
        assert.equal(v, 1);
        continue;
      }
      const pair = want.pairs.find((p) => p.models.includes(tunes[i]) && p.models.includes(tunes[j]));
      assert.ok(Math.abs(v - pair.cosine) < 1e-12, `cosine ${tunes[i]}·${tunes[j]}: page ${v}, CLI ${pair.cosine}`);
      assert.ok(Math.abs(v) < 0.05, `cosine ${tunes[i]}·${tunes[j]} = ${v}`);
    }
  });

  test('the DARE warning before merging: for an unsafe density, as the CLI words it, not for a safe one', async () => {
    await page.fill('[data-testid=config]', dareConfig(0.3));
    await page.waitForSelector('[data-testid=dare-risk]');
    const risks = await page.$$eval('[data-testid=dare-risk]', (ls) => ls.map((l) => ({ model: l.dataset.model, text: l.textContent })));
    assert.deepEqual(risks.map((r) => r.model), ['demo-large']);
    assert.deepEqual(risks.map((r) => r.text), checkDeltas(dareConfig(0.3)));
    assert.match(risks[0].text, /use a density of at least 0\.51/);
    // The warning does not block.
    await page.waitForSelector('[data-testid=merge]:enabled');

    await page.fill('[data-testid=config]', dareConfig(0.9));
    await page.waitForSelector('[data-testid=dare-checked]');
    assert.equal(await page.$('[data-testid=dare-risk]'), null);
    assert.deepEqual(checkDeltas(dareConfig(0.9)), []);

    // A method that drops nothing at random: neither warning nor check.
    // (The warning changes only when a plan comes back.)
    await page.fill('[data-testid=config]', dareConfig(0.3).replace('dare_ties', 'ties'));
    await page.waitForFunction(() => document.querySelector('[data-testid=dare-warning]').textContent === '');
    assert.match(await page.textContent('#plan'), /^Ready/);
  });

  test('a model replaced after Analyze is no longer checked', async () => {
    await page.fill('[data-testid=config]', dareConfig(0.3));
    await page.waitForSelector('[data-testid=dare-risk]');
    await page.setInputFiles('[data-testid=models-input]', path.join(dir, 'demo-large'));
    // The check now covers demo-math only, which is safe at 0.5.
    await page.waitForFunction(() => !document.querySelector('[data-testid=dare-risk]')
      && document.querySelector('[data-testid=dare-checked]')?.textContent.includes('none of demo-math by'));
  });

  test('cancel an analysis, then run it again', async () => {
    await page.fill('#chunk', '1024'); // many small chunks: a slower analysis to cancel
    await page.click('[data-testid=analyze]');
    await page.waitForFunction(() => document.querySelector('[data-testid=analyze-progress]').value > 0.02);
    await page.click('[data-testid=analyze-cancel]');
    await page.waitForFunction(() => document.querySelector('[data-testid=analyze-status]').textContent.includes('cancelled'));
    await page.fill('#chunk', '1048576');
    await page.click('[data-testid=analyze]');
    await page.waitForFunction(() => document.querySelector('[data-testid=analyze-status]').textContent.startsWith('Done'), null);
    await page.waitForSelector('[data-testid=dare-risk]');
  });
});
