// The Analyze view (issue 8): the deltas of the dropped models against the base, measured by
// the core (core/analyze) in a fresh Worker, drawn per model as a log-scale histogram of |δ|
// and bars of relative norm per layer, a cosine heatmap between the models, and the verdicts
// in plain words. The result is kept, with the File objects it was computed from, and sent
// back with each plan so that the core checks the config's DARE densities against it
// (analyze.CheckDARE, the rule of merge --check-deltas); the warning is shown by the Merge
// button and never blocks.
import { jobCore, spareCore } from './client.js';
import { bars, heatmap, histogram, num } from './charts.js';
import { el, duration } from './ui/format.js';

const $ = (s) => document.querySelector(s);
// pct shows a fraction as a percentage with two decimals, never rounding a fraction below
// 1 up to 100%.
const pct = (v) => {
  if (v === null || v === undefined) return 'n/a';
  const s = (100 * v).toFixed(2);
  return `${s === '100.00' && v < 1 ? '99.99' : s}%`;
};

// explain puts a verdict in plain words with the model's own numbers.
function explain(verdict, o, limits) {
  const rel = num(o.rel_norm);
  const noise = num(o.dare_noise?.['0.9']);
  switch (verdict) {
    case 'a fine-tune of this base':
      return `Its weights differ from the base's by ${rel} of the base's norm, and ${pct(o['frac_within_0.002'])} of its deltas are within 0.002, as in the DARE paper. Dropping 90% of them at random (DARE, density 0.1) is expected to move its weights by ${noise} of their norm: safe.`;
    case 'deltas too large for aggressive DARE':
      return `Its weights differ from the base's by ${rel} of the base's norm (only ${pct(o['frac_within_0.002'])} of its deltas are within 0.002). Dropping 90% of them at random (DARE, density 0.1) is expected to move its weights by ${noise} of their norm, above ${limits.maxDareNoise}: use a higher density, or a method that drops nothing at random (ties, task_arithmetic).`;
    case 'not derived from this base':
      return `Its weights differ from the base's by ${rel} of the base's norm (${limits.unrelatedRelNorm} or more, in all or in most of its weights): it is not a fine-tune of this base, or was trained far from it (e.g. continued pre-training). Its "delta" is not a task vector; merging it from this base mixes unrelated weights.`;
    default:
      return '';
  }
}

export class AnalyzeView {
  // models() returns the page's model list ({name, role, files, error}); chunk() the chunk
  // size; changed() is called when a new result is at hand (the page re-plans).
  constructor({ models, chunk, changed }) {
    this.models = models;
    this.chunk = chunk;
    this.changed = changed;
    this.button = $('#analyze');
    this.cancelButton = $('#analyze-cancel');
    this.bar = $('#analyze-progress');
    this.status = $('#analyze-status');
    this.out = $('#analysis');
    this.warning = $('#dare-warning');
    this.result = null; // {base: {name, files}, models: [{name, files}], res}
    this.job = null; // {core, id}
    this.latest = null;
    this.frame = 0;
    this.button.addEventListener('click', () => this.run());
    this.cancelButton.addEventListener('click', () => this.cancel());
  }

  async run() {
    if (this.job) return;
    const all = this.models();
    const base = all.find((m) => m.role === 'base' && !m.error);
    const fts = all.filter((m) => m.role === 'model' && !m.error);
    if (!base || fts.length === 0) {
      this.status.textContent = 'Add a base model and at least one fine-tuned model first.';
      return;
    }
    const c = jobCore();
    const inputs = { base: { name: base.name, files: base.files }, models: fts.map((m) => ({ name: m.name, files: m.files })) };
    const req = c.request('analyze', {
      base: base.name, models: fts.map((m) => m.name), chunkSize: this.chunk(),
      files: [...base.files, ...fts.flatMap((m) => m.files)],
    }, (p) => this.progress(p));
    this.job = { core: c, id: req.id };
    this.buttons();
    this.bar.value = 0;
    this.status.textContent = `Comparing ${fts.length} model${fts.length > 1 ? 's' : ''} with ${base.name}…`;
    try {
      const res = await req;
      this.result = { ...inputs, res };
      this.stopPaint();
      this.bar.value = 1;
      this.status.textContent = `Done in ${duration(res.seconds)}: ${fts.length} model${fts.length > 1 ? 's' : ''} compared with ${base.name}.`;
      this.render(res);
      this.changed();
    } catch (err) {
      this.stopPaint();
      this.status.textContent = err.code === 'canceled' ? 'Analysis cancelled.' : `The analysis stopped: ${err.message}`;
    } finally {
      c.terminate();
      this.job = null;
      this.buttons();
      spareCore();
    }
  }

  cancel() {
    const j = this.job;
    if (!j) return;
    this.status.textContent = 'Cancelling…';
    j.core.cancel(j.id);
    setTimeout(() => j.core.terminate(), 3000); // if the core does not answer
  }

  buttons() {
    this.button.disabled = this.job !== null;
    this.cancelButton.disabled = this.job === null;
  }

  progress(p) {
    this.latest = p;
    if (!this.frame) this.frame = requestAnimationFrame(() => this.paint());
  }

  paint() {
    this.frame = 0;
    const p = this.latest;
    if (!p || !this.job) return;
    const frac = p.elements > 0 ? Math.min(1, p.elementsDone / p.elements) : 0;
    this.bar.value = frac;
    this.status.textContent = `${(100 * frac).toFixed(1)}% · tensor ${Math.min(p.tensorsDone + 1, p.tensors)} of ${p.tensors}: ${p.tensor}`;
  }

  stopPaint() {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
  }

  render(res) {
    const report = res.report;
    const limits = res.limits;
    const parts = [];
    res.models.forEach((m, i) => {
      const o = report.models[i].overall;
      const card = el('article', { class: 'model-analysis', 'data-testid': 'model-analysis', 'data-model': m.model });
      card.append(el('h3', {}, m.model));
      const v = el('p', { class: 'verdict', 'data-testid': 'verdict', 'data-verdict': m.verdict });
      v.append(el('strong', {}, `${m.verdict[0].toUpperCase()}${m.verdict.slice(1)}.`), ` ${explain(m.verdict, o, limits)}`);
      card.append(v);
      card.append(el('p', { class: 'hint' },
        `max |δ| ${num(o.max_abs)} · median ${num(o.quantiles['0.5'])} · 99th percentile ${num(o.quantiles['0.99'])} · ` +
        `within 0.002: ${pct(o['frac_within_0.002'])} · within 0.005: ${pct(o['frac_within_0.005'])}`));
      const h = el('figure', { 'data-testid': 'histogram' });
      h.append(histogram(m.bins || [], { marks: [0.002, 0.005], label: `histogram of |δ| of ${m.model}` }),
        el('figcaption', {}, 'How many elements have each size of delta |δ| (log scale; exact zeros at the left). The DARE paper found most fine-tuning deltas within 0.002.'));
      const layers = (m.layers || []).map((l) => ({
        label: l.layer < 0 ? 'rest' : String(l.layer), value: l.relNorm ?? Infinity,
        title: `${l.layer < 0 ? 'tensors outside the layers (embeddings, final norm, head)' : `layer ${l.layer}`}: ‖δ‖/‖B‖ = ${num(l.relNorm)}`,
      }));
      const b = el('figure', { 'data-testid': 'layers' });
      b.append(bars(layers, {
        label: `relative norm per layer of ${m.model}`, yLabel: '‖δ‖/‖B‖',
        guides: [{ value: limits.largeRelNorm, label: 'too large for DARE at density 0.1' }, { value: limits.unrelatedRelNorm, label: 'not derived' }],
      }), el('figcaption', {}, 'Relative norm of the delta, ‖δ‖/‖B‖, per layer; "rest" is the tensors outside the numbered layers.'));
      const charts = el('div', { class: 'charts' });
      charts.append(h, b);
      card.append(charts);
      parts.push(card);
    });
    const names = res.models.map((m) => m.model);
    const sc = new Map(report.pairs.map((p) => [p.models.join('\n'), p.sign_conflict]));
    const pairs = el('section', { class: 'pairs' });
    pairs.append(el('h3', {}, 'Between the models'));
    if (names.length >= 2) {
      const f = el('figure', { 'data-testid': 'cosine' });
      f.append(heatmap(names, res.cosine, {
        label: 'cosine similarity of the deltas between models',
        title: (i, j, v) => {
          const s = sc.get(`${names[i]}\n${names[j]}`) ?? sc.get(`${names[j]}\n${names[i]}`);
          return `${names[i]} · ${names[j]}: cosine ${num(v)}${i !== j && s !== undefined ? `, signs disagree on ${pct(s)} of the elements both change` : ''}`;
        },
      }), el('figcaption', {}, 'Cosine similarity of the deltas (red: alike, white: unrelated, blue: opposed). Independent fine-tunes are near 0; TIES resolves the sign conflicts.'));
      pairs.append(f);
    } else {
      pairs.append(el('p', { class: 'hint' }, 'Add a second fine-tuned model to compare deltas between models.'));
    }
    parts.push(pairs);
    if (res.skipped?.length) {
      parts.push(el('p', { class: 'note', 'data-testid': 'skipped' },
        `Not compared: ${res.skipped.map((s) => `${s.tensor} (${s.reason})`).join('; ')}.`));
    }
    this.out.replaceChildren(...parts);
  }

  // payload is the analysis to send with a plan: only while the base and the models it was
  // computed from are still on the page with the same files.
  payload() {
    const r = this.result;
    if (!r) return undefined;
    const all = this.models();
    const same = (x) => all.some((m) => m.name === x.name && m.files === x.files);
    if (!same(r.base)) return undefined;
    const models = r.res.models.filter((_, i) => same(r.models[i]))
      .map((m) => ({ model: m.model, verdict: m.verdict, norms: m.norms }));
    return models.length ? { base: r.res.base, models } : undefined;
  }

  // warn shows the plan's DARE check next to the Merge button (p null: clear it).
  warn(p) {
    const w = this.warning;
    w.replaceChildren();
    w.className = '';
    if (!p) return;
    const risks = p.dare || [];
    const unsafe = risks.filter((d) => d.unsafe);
    if (unsafe.length) {
      w.className = 'warning';
      w.append(el('strong', {}, `Warning: ${p.method} at these densities is likely to damage ${unsafe.length === 1 ? 'a model' : `${unsafe.length} models`} (the Analyze results above). You can still merge.`));
      const ul = el('ul');
      for (const d of unsafe) ul.append(el('li', { 'data-testid': 'dare-risk', 'data-model': d.model }, d.message));
      w.append(ul);
    } else if (risks.length) {
      w.className = 'note';
      w.append(el('span', { 'data-testid': 'dare-checked' },
        `DARE densities checked against the analysis: ${p.method} moves none of ${risks.map((d) => d.model).join(', ')} by more than ${this.result?.res.limits.maxDareNoise ?? 0.1} of the base's norm.`));
    } else if (p.dropsAtRandom) {
      w.className = 'note';
      w.append(el('span', {}, `${p.method} drops deltas at random: Analyze the models (above) to check its densities before merging.`));
    }
  }
}
