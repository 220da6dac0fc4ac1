// Progress and summary of a merge. Progress messages are kept and painted once per
// animation frame.
import { bytes, duration, el } from './format.js';

export class RunPanel {
  constructor() {
    this.bar = document.querySelector('#progress');
    this.status = document.querySelector('#status');
    this.summary = document.querySelector('#summary');
    this.latest = null;
    this.frame = 0;
  }

  start(text) {
    this.bar.value = 0;
    this.bar.removeAttribute('aria-valuetext');
    this.status.textContent = text;
    this.summary.replaceChildren();
    this.latest = null;
  }

  progress(msg) {
    this.latest = msg;
    if (!this.frame) this.frame = requestAnimationFrame(() => this.paint());
  }

  paint() {
    this.frame = 0;
    const p = this.latest;
    if (!p) return;
    const frac = p.totalBytes > 0 ? Math.min(1, p.bytesWritten / p.totalBytes) : 0;
    const rate = p.seconds > 0 ? p.bytesWritten / 1e6 / p.seconds : 0;
    const eta = frac > 0.01 ? duration((p.seconds * (1 - frac)) / frac) : '--';
    this.bar.value = frac;
    const pct = `${(100 * frac).toFixed(1)}%`;
    this.bar.setAttribute('aria-valuetext', pct);
    this.status.textContent = `${pct} · ${rate.toFixed(1)} MB/s · ETA ${eta} · tensor ${p.tensorsDone + 1 > p.tensors ? p.tensors : p.tensorsDone + 1} of ${p.tensors}: ${p.tensor}`;
  }

  stop(text) {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.status.textContent = text;
  }

  // done shows the summary and, for a zip in OPFS, the download link; simd says whether the
  // core ran the WebAssembly SIMD kernels.
  done(res, memory, link, simd) {
    this.stop(`Done: ${res.tensors} tensors merged with ${res.method}.`);
    this.bar.value = 1;
    const rows = [
      ['tensors', String(res.tensors)],
      ['written', bytes(res.bytesWritten)],
      ['read', bytes(res.bytesRead)],
      ['time', duration(res.seconds)],
      ['seed', res.seed],
      ['peak WebAssembly memory', bytes(memory)],
      ['SIMD kernels', simd ? 'yes' : 'no (they did not load, as without WebAssembly SIMD: the portable loops ran)'],
      ['files', res.files.join(', ')],
    ];
    if (res.nonFinite > 0) rows.push(['NaN or Inf inputs merged', String(res.nonFinite)]);
    const table = el('table', { 'data-testid': 'summary' });
    for (const [k, v] of rows) {
      const tr = el('tr');
      tr.append(el('td', {}, k), el('td', { 'data-key': k }, v));
      table.append(tr);
    }
    this.summary.replaceChildren(table);
    for (const w of res.warnings || []) this.summary.append(el('p', { class: 'note' }, `warning: ${w}`));
    if (link) this.summary.append(link);
  }
}
