// Hand-drawn SVG charts of the delta analysis: a log-scale histogram, labelled bars and a
// heatmap. No library and no network: each function returns an <svg> element whose marks
// carry a <title> (the tooltip and the accessible text) and data-* attributes with the
// exact values they draw.

const NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, text = '') {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

function titled(node, text) {
  node.append(svg('title', {}, text));
  return node;
}

// num formats a value for an axis or a tooltip: 3 significant digits.
export function num(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return 'n/a';
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e-3 && a < 1e4 ? String(Number(v.toPrecision(3))) : v.toExponential(2).replace('e-', 'e−');
}

function frame(width, height, label) {
  return svg('svg', {
    width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label, class: 'chart',
  });
}

// histogram draws bins [lo, hi, count] of |δ| on a log x axis (exact zeros, [0, 0, n],
// as a separate bar at the left) with dashed marks at `marks` (e.g. 0.002 and 0.005).
// Bars are rect.bar, one per bin.
export function histogram(bins, { width = 520, height = 170, marks = [], label = 'histogram of |δ|' } = {}) {
  const s = frame(width, height, label);
  const pad = { l: 44, r: 10, t: 10, b: 34 };
  const zero = bins.find((b) => b[1] === 0);
  const rest = bins.filter((b) => b[1] > 0);
  const total = bins.reduce((a, b) => a + b[2], 0);
  const maxCount = Math.max(1, ...bins.map((b) => b[2]));
  const zw = zero ? 18 : 0; // slot for the zero bar
  const x0 = pad.l + (zero ? zw + 8 : 0);
  const x1 = width - pad.r;
  const y0 = height - pad.b;
  const y = (c) => y0 - (c / maxCount) * (y0 - pad.t);
  const lo = rest.length ? Math.log10(rest[0][0]) : -3;
  const hi = rest.length ? Math.log10(rest[rest.length - 1][1]) : 0;
  const span = Math.max(hi - lo, 1e-9);
  const x = (v) => x0 + ((Math.log10(v) - lo) / span) * (x1 - x0);
  const axis = svg('g', { class: 'axis' });
  axis.append(svg('line', { x1: pad.l, y1: y0, x2: x1, y2: y0 }));
  axis.append(svg('line', { x1: pad.l, y1: pad.t, x2: pad.l, y2: y0 }));
  axis.append(svg('text', { x: pad.l - 4, y: pad.t + 8, 'text-anchor': 'end' }, String(maxCount)));
  axis.append(svg('text', { x: pad.l - 4, y: y0, 'text-anchor': 'end' }, '0'));
  for (let p = Math.ceil(lo); p <= Math.floor(hi); p++) {
    const xp = x(10 ** p);
    if (zero && xp < x0 + 14) continue; // would overlap the zero bar's label
    axis.append(svg('line', { x1: xp, y1: y0, x2: xp, y2: y0 + 4 }));
    axis.append(svg('text', { x: xp, y: y0 + 15, 'text-anchor': 'middle' }, `1e${p}`.replace('-', '−')));
  }
  axis.append(svg('text', { x: (x0 + x1) / 2, y: height - 4, 'text-anchor': 'middle', class: 'axis-label' }, '|δ| (log scale)'));
  s.append(axis);
  const share = (c) => (total ? `${((100 * c) / total).toFixed(2)}%` : '');
  if (zero) {
    const r = svg('rect', {
      class: 'bar zero', x: pad.l + 4, y: y(zero[2]), width: zw, height: y0 - y(zero[2]),
      'data-lo': 0, 'data-hi': 0, 'data-count': zero[2],
    });
    s.append(titled(r, `exactly 0: ${zero[2]} elements (${share(zero[2])})`));
    s.append(svg('text', { x: pad.l + 4 + zw / 2, y: y0 + 15, 'text-anchor': 'middle', class: 'axis' }, '0'));
  }
  for (const [blo, bhi, c] of rest) {
    const xa = x(blo);
    const r = svg('rect', {
      class: 'bar', x: xa, y: y(c), width: Math.max(0.5, x(bhi) - xa), height: y0 - y(c),
      'data-lo': blo, 'data-hi': bhi, 'data-count': c,
    });
    s.append(titled(r, `${num(blo)} ≤ |δ| < ${num(bhi)}: ${c} elements (${share(c)})`));
  }
  marks.forEach((m, k) => {
    if (!rest.length || Math.log10(m) < lo || Math.log10(m) > hi) return;
    const xm = x(m);
    const g = svg('g', { class: 'mark', 'data-mark': m });
    g.append(svg('line', { x1: xm, y1: pad.t, x2: xm, y2: y0 }));
    g.append(svg('text', { x: xm + 3, y: pad.t + 8 + 12 * k }, String(m))); // staggered: close marks
    s.append(g);
  });
  return s;
}

// bars draws labelled values [{label, value, title}] as vertical bars (rect.bar) from 0,
// with dashed guide lines [{value, label}] drawn when they fall within 1.5× the largest bar.
export function bars(items, { width = 520, height = 150, guides = [], label = 'bars', yLabel = '' } = {}) {
  const s = frame(width, height, label);
  const pad = { l: 44, r: 10, t: 10, b: 30 };
  const finite = items.map((i) => i.value).filter((v) => Number.isFinite(v));
  const top = Math.max(...finite, 0);
  const shown = guides.filter((g) => g.value <= 1.5 * top);
  const maxV = Math.max(top, ...shown.map((g) => g.value)) || 1;
  const y0 = height - pad.b;
  const y = (v) => y0 - (Math.min(v, maxV) / maxV) * (y0 - pad.t);
  const slot = (width - pad.l - pad.r) / Math.max(1, items.length);
  const axis = svg('g', { class: 'axis' });
  axis.append(svg('line', { x1: pad.l, y1: y0, x2: width - pad.r, y2: y0 }));
  axis.append(svg('line', { x1: pad.l, y1: pad.t, x2: pad.l, y2: y0 }));
  axis.append(svg('text', { x: pad.l - 4, y: pad.t + 8, 'text-anchor': 'end' }, num(maxV)));
  axis.append(svg('text', { x: pad.l - 4, y: y0, 'text-anchor': 'end' }, '0'));
  if (yLabel) axis.append(svg('text', { x: pad.l + 4, y: pad.t + 8, class: 'axis-label' }, yLabel));
  s.append(axis);
  items.forEach((it, i) => {
    const v = Number.isFinite(it.value) ? it.value : maxV;
    const bw = Math.max(1, slot * 0.7);
    const xb = pad.l + i * slot + (slot - bw) / 2;
    const r = svg('rect', {
      class: 'bar', x: xb, y: y(v), width: bw, height: y0 - y(v), 'data-label': it.label, 'data-value': it.value,
    });
    s.append(titled(r, it.title || `${it.label}: ${num(it.value)}`));
    if (items.length <= 40 || i % Math.ceil(items.length / 40) === 0) {
      s.append(svg('text', { x: xb + bw / 2, y: y0 + 13, 'text-anchor': 'middle', class: 'axis' }, it.label));
    }
  });
  for (const g of shown) {
    const gy = y(g.value);
    const m = svg('g', { class: 'mark', 'data-mark': g.value });
    m.append(svg('line', { x1: pad.l, y1: gy, x2: width - pad.r, y2: gy }));
    m.append(svg('text', { x: width - pad.r - 2, y: gy - 3, 'text-anchor': 'end' }, g.label));
    s.append(m);
  }
  return s;
}

// color maps a cosine in [−1, 1] to a diverging scale: blue (−1), white (0), red (1);
// grey when undefined.
function color(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '#d0d7de';
  const t = Math.max(-1, Math.min(1, v));
  const mix = (a, b) => Math.round(255 + (a - 255) * Math.abs(t));
  return t >= 0 ? `rgb(255,${mix(96)},${mix(80)})` : `rgb(${mix(40)},${mix(110)},255)`;
}

// heatmap draws an n×n matrix (values in [−1, 1] or null) as rect.cell, row i column j,
// each with its value written in it, and the labels along both sides.
export function heatmap(labels, matrix, { cell = 64, label = 'heatmap', title = null } = {}) {
  const n = labels.length;
  const left = 150;
  const topPad = 24;
  const width = left + n * cell + 10;
  const height = topPad + n * cell + 10;
  const s = frame(width, height, label);
  const short = (t) => (t.length > 22 ? `…${t.slice(-21)}` : t);
  for (let i = 0; i < n; i++) {
    s.append(svg('text', { x: left - 6, y: topPad + i * cell + cell / 2 + 4, 'text-anchor': 'end', class: 'axis' }, `${i + 1}. ${short(labels[i])}`));
    s.append(svg('text', { x: left + i * cell + cell / 2, y: topPad - 8, 'text-anchor': 'middle', class: 'axis' }, String(i + 1)));
    for (let j = 0; j < n; j++) {
      const v = matrix[i][j];
      const r = svg('rect', {
        class: 'cell', x: left + j * cell, y: topPad + i * cell, width: cell - 2, height: cell - 2,
        fill: color(v), 'data-row': i, 'data-col': j, 'data-value': v ?? '',
      });
      s.append(titled(r, title ? title(i, j, v) : `${labels[i]} · ${labels[j]}: ${num(v)}`));
      s.append(svg('text', { x: left + j * cell + cell / 2 - 1, y: topPad + i * cell + cell / 2 + 4, 'text-anchor': 'middle', class: 'cell-text' }, num(v)));
    }
  }
  return s;
}
