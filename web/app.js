// freelunch's page: models in, form ↔ YAML, validation by the core's planner, merge in a
// fresh Worker per job (started ahead: client.js), download from the origin private file
// system (OPFS).
import { AnalyzeView } from './analyze.js';
import { Core, jobCore, spareCore } from './client.js';
import { droppedFiles, groupFiles } from './files.js';
import { parseSize } from './size.js';
import { toYAML } from './yaml.js';
import { el } from './ui/format.js';
import { MethodForm } from './ui/form.js';
import { ModelList } from './ui/models.js';
import { RunPanel } from './ui/run.js';

const $ = (s) => document.querySelector(s);
const ui = {
  config: $('#config'), configError: $('#config-error'), error: $('#error'), plan: $('#plan'),
  merge: $('#merge'), saveFolder: $('#save-folder'), cancel: $('#cancel'), seed: $('#seed'),
  chunk: $('#chunk'), note: $('#drop-note'), shardSize: $('#shard-size'), shardNote: $('#shard-size-note'),
  copyTokenizer: $('#copy-tokenizer'), allowNonFinite: $('#allow-nonfinite'),
};

let service = null; // long-lived Worker for methods, inspect, parse and plan
function core() {
  if (!service || service.dead) service = new Core();
  return service;
}

const models = []; // {name, role: 'base' | 'model', files: [{path, file}], info, error, pending}
let problems = new Map(); // model name → the last validation's error about it
let state = { method: '', base: '', models: [], params: {}, dtype: '', outDtype: '', tokenizerSource: '' };
let validation = 0; // increments per validation; stale answers are dropped
let planned = false;
let job = null; // {core, id, out}
let downloadURL = null;
let current = ''; // OPFS name of this page's latest output

const list = new ModelList($('#model-list'), removeModel);
const form = new MethodForm(changeForm);
const run = new RunPanel();
const analysis = new AnalyzeView({ models: () => models, chunk: () => Number(ui.chunk.value) || 0, changed: () => validateSoon() });

// ---- models ----------------------------------------------------------------------------

function allFiles() {
  return models.flatMap((m) => m.files);
}

function addModels(groups, role) {
  for (const g of groups) {
    const old = models.findIndex((m) => m.name === g.name);
    if (old >= 0) models.splice(old, 1);
    if (role === 'base') {
      const prev = models.findIndex((m) => m.role === 'base');
      if (prev >= 0) removeFromState(models.splice(prev, 1)[0].name);
    }
    const m = { name: g.name, role, files: g.files, pending: true };
    models.push(m);
    addToState(m);
    core().request('inspect', { model: m.name, files: m.files })
      .then((info) => { m.info = info; m.error = null; })
      .catch((err) => { m.error = err.message; })
      .finally(() => { m.pending = false; list.render(models, problems); });
  }
  models.sort((a, b) => (a.role === b.role ? 0 : a.role === 'base' ? -1 : 1));
  list.render(models, problems);
  stateChanged(true);
}

function removeModel(name) {
  const i = models.findIndex((m) => m.name === name);
  if (i >= 0) models.splice(i, 1);
  removeFromState(name);
  list.render(models, problems);
  stateChanged(true);
}

function defaultParams() {
  const m = form.method(state.method);
  const out = {};
  for (const p of m?.params || []) if (p.scope === 'model' && p.required) out[p.name] = 1;
  return out;
}

function addToState(m) {
  const method = form.method(state.method);
  if (m.role === 'base' && !method?.inputs.baseIsInput) {
    state.base = m.name;
    return;
  }
  if (!state.models.some((e) => e.model === m.name)) state.models.push({ model: m.name, params: defaultParams() });
}

function removeFromState(name) {
  if (state.base === name) state.base = '';
  state.models = state.models.filter((e) => e.model !== name);
}

function pick(input, role) {
  input.addEventListener('change', () => {
    const { models: groups, skipped } = groupFiles([...input.files]);
    note(skipped);
    addModels(groups, role);
    input.value = '';
  });
}

function note(skipped) {
  ui.note.textContent = skipped.length
    ? `Ignored ${skipped.join(', ')}: drop a model folder or a .safetensors file.` : '';
}

function zone(node, role) {
  node.addEventListener('dragover', (e) => {
    e.preventDefault();
    node.classList.add('over');
  });
  node.addEventListener('dragleave', () => node.classList.remove('over'));
  node.addEventListener('drop', async (e) => {
    e.preventDefault();
    node.classList.remove('over');
    const files = await droppedFiles(e.dataTransfer); // entries are taken synchronously inside
    const { models: groups, skipped } = groupFiles(files);
    note(skipped);
    addModels(role === 'base' ? groups.slice(0, 1) : groups, role);
  });
}

// ---- form and YAML -----------------------------------------------------------------------

// changeForm applies an edit of the form to the state, rewrites the YAML and validates.
function changeForm(edit, structural = false) {
  edit(state);
  if (structural) fitMethod();
  stateChanged(structural);
}

// fitMethod moves the base in or out of the model list and fills required parameters when
// the method changes.
function fitMethod() {
  const m = form.method(state.method);
  if (!m) return;
  const baseModel = models.find((x) => x.role === 'base');
  if (m.inputs.baseIsInput && state.base) {
    const b = state.base;
    state.base = '';
    if (!state.models.some((e) => e.model === b)) state.models.unshift({ model: b, params: defaultParams() });
  } else if (!m.inputs.baseIsInput && baseModel && !state.base) {
    state.base = baseModel.name;
    state.models = state.models.filter((e) => e.model !== baseModel.name);
  }
  for (const e of state.models) {
    e.params = e.params || {};
    for (const p of m.params) if (p.scope === 'model' && p.required && e.params[p.name] === undefined) e.params[p.name] = 1;
  }
}

function stateChanged(rerender) {
  ui.config.value = toYAML(state);
  ui.configError.textContent = '';
  ui.config.classList.remove('bad');
  if (rerender) form.render(state);
  validateSoon();
}

let parseTimer = 0;
// invalidate drops the answer of any validation in flight: the inputs changed.
function invalidate() {
  validation++;
  planned = false;
  buttons();
}

ui.config.addEventListener('input', () => {
  invalidate();
  clearTimeout(parseTimer);
  parseTimer = setTimeout(parseConfig, 300);
});

// parseConfig reads the text area through the core's parser and updates the form.
async function parseConfig() {
  const n = ++validation;
  try {
    const c = await core().request('parse', { config: ui.config.value });
    if (n !== validation) return;
    state = {
      method: c.method, base: c.base, params: c.params || {}, dtype: c.dtype, outDtype: c.outDtype,
      tokenizerSource: c.tokenizerSource, models: (c.models || []).map((e) => ({ model: e.model, params: e.params || {} })),
    };
    ui.configError.textContent = c.slices ? 'This config uses slices: edit it here; the form shows no models.' : '';
    ui.config.classList.remove('bad');
    form.render(state);
    validate(n);
  } catch (err) {
    if (n !== validation) return;
    ui.plan.textContent = '';
    showError(err);
  }
}

// ---- output options ------------------------------------------------------------------------

// shardSize returns the shard size field in bytes (0: the default), or null when it is not a
// size; the note under the field says which.
function shardSize() {
  try {
    const n = parseSize(ui.shardSize.value);
    ui.shardNote.textContent = n ? `Shards of at most ${n.toLocaleString('en-US')} bytes.` : 'Shards of at most 5B (5,000,000,000) bytes, as the CLI.';
    ui.shardSize.removeAttribute('aria-invalid');
    ui.shardNote.classList.remove('error');
    return n;
  } catch (err) {
    ui.shardNote.textContent = `Shard size: ${err.message}.`;
    ui.shardSize.setAttribute('aria-invalid', 'true');
    ui.shardNote.classList.add('error');
    return null;
  }
}

// options are the CLI's output flags for a plan or a merge request.
function options() {
  return {
    shardSize: shardSize() || 0, copyTokenizer: ui.copyTokenizer.checked, allowNonFinite: ui.allowNonFinite.checked,
  };
}

ui.shardSize.addEventListener('input', validateSoon);

// ---- validation ---------------------------------------------------------------------------

let validateTimer = 0;
function validateSoon() {
  invalidate();
  clearTimeout(validateTimer);
  validateTimer = setTimeout(() => validate(++validation), 250);
}

async function validate(n) {
  ui.error.textContent = '';
  problems = new Map();
  if (models.length === 0) {
    ui.plan.textContent = 'Add a base model and fine-tunes, or try the demo.';
    list.render(models, problems);
    return;
  }
  if (shardSize() === null) {
    ui.plan.textContent = '';
    list.render(models, problems);
    return;
  }
  ui.plan.textContent = 'Checking…';
  try {
    const p = await core().request('plan', {
      config: ui.config.value, seed: ui.seed.value, files: allFiles(), analysis: analysis.payload(), ...options(),
    });
    if (n !== validation) return;
    analysis.warn(p);
    const shards = p.shards.length > 1 ? ` in ${p.shards.length} shards` : '';
    ui.plan.textContent = `Ready: ${p.tensors} tensors, ${(p.outputBytes / 2 ** 20).toFixed(1)} MiB to write${shards}.` +
      (p.warnings?.length ? ` Warnings: ${p.warnings.join('; ')}` : '');
    planned = true;
  } catch (err) {
    if (n !== validation) return;
    ui.plan.textContent = '';
    analysis.warn(null);
    showError(err);
  }
  list.render(models, problems);
  buttons();
}

// showError puts an error next to its cause: the config line, the model, or the run.
function showError(err) {
  ui.error.textContent = err.code === 'nonfinite'
    ? `${err.message.replace(/; merge anyway with --allow-nonfinite$/, '')}. To merge anyway, tick "Merge inputs that hold NaN or Inf" under Output options.`
    : err.message;
  if (err.code === 'config') {
    ui.configError.textContent = err.line ? `line ${err.line}: ${err.message}` : err.message;
    ui.config.classList.add('bad');
    if (err.line) selectLine(err.line);
  } else if (err.model && models.some((m) => m.name === err.model)) {
    problems.set(err.model, err.message);
    list.render(models, problems);
  }
}

function selectLine(line) {
  if (document.activeElement === ui.config) return; // don't move the user's cursor
  const lines = ui.config.value.split('\n');
  const start = lines.slice(0, line - 1).join('\n').length + (line > 1 ? 1 : 0);
  ui.config.setSelectionRange(start, start + (lines[line - 1] || '').length);
}

ui.seed.addEventListener('input', validateSoon);

// ---- merge --------------------------------------------------------------------------------

function buttons() {
  const busy = job !== null;
  ui.merge.disabled = busy || !planned;
  ui.saveFolder.disabled = busy || !planned;
  ui.cancel.disabled = !busy;
}

async function opfs() {
  return navigator.storage.getDirectory();
}

// purge removes earlier outputs (freelunch-*.zip) from OPFS, but not this page's current one
// (a file still locked by a stopped Worker stays until the next purge), and nothing else.
async function purge() {
  try {
    const root = await opfs();
    for await (const [name, h] of root.entries()) {
      if (name === current || h.kind !== 'file' || !/^freelunch-.*\.zip$/.test(name)) continue;
      try {
        await root.removeEntry(name);
      } catch { /* locked for a few seconds after a Worker is stopped */ }
    }
  } catch { /* no OPFS: merging will say so */ }
}

function stamp() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

async function merge(dir) {
  if (job) return;
  if (downloadURL) URL.revokeObjectURL(downloadURL);
  downloadURL = null;
  ui.error.textContent = '';
  await purge();
  const c = jobCore();
  const out = `freelunch-${state.method || 'merge'}-${stamp()}-${Math.random().toString(36).slice(2, 6)}.zip`;
  job = { core: c, id: 0, out };
  current = out;
  buttons();
  run.start('Starting the core…');
  const req = c.request('merge', {
    config: ui.config.value, seed: ui.seed.value, chunkSize: Number(ui.chunk.value) || 0,
    out, files: allFiles(), dir, ...options(),
  }, (p) => run.progress(p));
  job.id = req.id;
  try {
    const res = await req;
    let link = null;
    if (!dir) {
      const file = await (await (await opfs()).getFileHandle(out)).getFile();
      downloadURL = URL.createObjectURL(file); // a disk-backed File, never a Blob in memory
      link = el('a', { href: downloadURL, download: out, 'data-testid': 'download', class: 'button' }, `Download ${out}`);
    } else {
      res.method += ` (written to the folder ${dir.name})`;
    }
    run.done(res, c.memory, link, c.simd);
    link?.focus();
  } catch (err) {
    // The core removes what it wrote to a folder before it answers; a Worker that was
    // stopped (client.js's 'stopped') or died did not.
    const cleaned = err.code !== 'fatal' && err.message !== 'stopped';
    const left = !dir ? '' : cleaned ? ` Nothing was left in ${dir.name}.` : ` ${dir.name} may hold the files finished so far.`;
    run.stop((err.code === 'canceled' ? 'Cancelled.' : 'The merge stopped.') + left);
    if (err.code !== 'canceled') showError(err);
  } finally {
    c.terminate();
    job = null;
    buttons();
    spareCore();
  }
}

ui.merge.addEventListener('click', () => merge());
if (window.showDirectoryPicker) {
  ui.saveFolder.hidden = false;
  ui.saveFolder.addEventListener('click', async () => {
    let dir;
    try {
      dir = await window.showDirectoryPicker({ mode: 'readwrite' });
    } catch {
      return; // the user closed the picker
    }
    for await (const _ of dir.keys()) {
      ui.error.textContent = `The folder ${dir.name} is not empty: choose or create an empty folder.`;
      return;
    }
    merge(dir);
  });
}
ui.cancel.addEventListener('click', () => {
  if (!job) return;
  const j = job;
  run.stop('Cancelling…');
  j.core.cancel(j.id);
  // The core answers within a fraction of a second; if it does not, stop its Worker.
  setTimeout(() => j.core.terminate(), 3000);
});

// ---- demo and start-up ----------------------------------------------------------------------

async function demo() {
  const btn = $('#demo');
  btn.disabled = true;
  try {
    const man = await (await fetch('web/demo/manifest.json')).json();
    for (const m of man.models) {
      const files = await Promise.all(m.files.map(async (name) => {
        const r = await fetch(`web/demo/${m.name}/${name}`);
        if (!r.ok) throw new Error(`demo file ${m.name}/${name}: HTTP ${r.status}`);
        return { path: `${m.name}/${name}`, file: new File([await r.blob()], name) };
      }));
      addModels([{ name: m.name, files }], m.role);
    }
    ui.config.value = man.config;
    ui.config.dispatchEvent(new Event('input'));
  } catch (err) {
    ui.error.textContent = `The demo could not be loaded: ${err.message}`;
  } finally {
    btn.disabled = false;
  }
}

async function start() {
  pick($('#base-input'), 'base');
  pick($('#base-file'), 'base');
  pick($('#models-input'), 'model');
  pick($('#models-file'), 'model');
  zone($('#base-zone'), 'base');
  zone($('#models-zone'), 'model');
  for (const ev of ['dragover', 'drop']) window.addEventListener(ev, (e) => e.preventDefault());
  $('#demo').addEventListener('click', demo);
  shardSize(); // the note under the field
  // A Worker stopped by a reload keeps its file locked for a few seconds: purge twice.
  purge();
  setTimeout(purge, 4000);
  try {
    const { methods } = await core().request('methods');
    form.setMethods(methods);
    state.method = methods.find((m) => m.name === 'dare_ties')?.name || methods[0]?.name || '';
    fitMethod();
    stateChanged(true);
    spareCore(); // after the service core, which the form waits for
  } catch (err) {
    ui.error.textContent = err.message;
  }
}

start();
