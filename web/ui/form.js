// The method form, generated from the core's registry (names, kinds, scopes, defaults,
// ranges and docs of every parameter): nothing about methods is repeated here.
import { el } from './format.js';

// display writes a parameter value into a text field.
function display(v) {
  if (v === undefined || v === null) return '';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

// read parses a text field: '' is unset, JSON lists and objects are gradients and filter
// lists, numbers are numbers; anything else is passed on as text for the core to judge.
export function read(s) {
  s = s.trim();
  if (s === '') return undefined;
  if (/^[[{]/.test(s)) {
    try {
      return JSON.parse(s);
    } catch {
      return s;
    }
  }
  const n = Number(s);
  return Number.isFinite(n) ? n : s;
}

function field(param, value, onChange, label) {
  const lab = el('label', { title: param.doc || '' });
  lab.append(label);
  let input;
  if (param.kind === 'float') {
    const range = [param.min, param.max].some((x) => x !== null && x !== undefined)
      ? ` (${param.min ?? '-∞'}${param.minOpen ? ' exclusive' : ''} to ${param.max ?? '∞'})` : '';
    input = el('input', {
      type: 'text', inputmode: 'decimal', 'data-param': param.name,
      placeholder: param.required ? 'required' : `default ${display(param.default)}`,
      title: `${param.doc || param.name}${range}; a number, a gradient [a, b, …] or a filter list`,
    });
    input.value = display(value);
    input.addEventListener('input', () => onChange(read(input.value)));
  } else {
    input = el('select', { 'data-param': param.name });
    const opts = param.kind === 'bool' ? ['true', 'false'] : param.enum || [];
    input.append(el('option', { value: '' }, `default (${display(param.default)})`));
    for (const o of opts) input.append(el('option', { value: o }, o));
    input.value = value === undefined ? '' : String(value);
    input.addEventListener('change', () => {
      const v = input.value;
      onChange(v === '' ? undefined : param.kind === 'bool' ? v === 'true' : v);
    });
  }
  lab.append(input);
  return lab;
}

export class MethodForm {
  constructor(onChange) {
    this.select = document.querySelector('#method');
    this.doc = document.querySelector('#method-doc');
    this.global = document.querySelector('#global-params');
    this.perModel = document.querySelector('#model-params');
    this.dtype = document.querySelector('#dtype');
    this.onChange = onChange;
    this.methods = [];
    this.select.addEventListener('change', () => onChange((s) => { s.method = this.select.value; }, true));
    this.dtype.addEventListener('change', () => onChange((s) => { s.dtype = this.dtype.value; }));
  }

  setMethods(methods) {
    this.methods = methods;
    this.select.replaceChildren(...methods.map((m) => el('option', { value: m.name }, m.name)));
  }

  method(name) {
    return this.methods.find((m) => m.name === name);
  }

  // render shows state's values; fields for parameters the method does not declare are
  // not shown (the YAML keeps them, and the core names them in its error).
  render(state) {
    const m = this.method(state.method);
    if (m && this.select.value !== m.name) this.select.value = m.name;
    if (!m && state.method) {
      if (![...this.select.options].some((o) => o.value === state.method)) {
        this.select.append(el('option', { value: state.method }, `${state.method} (unknown)`));
      }
      this.select.value = state.method;
    }
    this.dtype.value = ['bfloat16', 'float16', 'float32'].includes(state.dtype) ? state.dtype : '';
    const legend = (t) => el('legend', {}, t);
    this.global.replaceChildren(legend('Parameters'));
    this.perModel.replaceChildren(legend('Per model'));
    if (!m) {
      this.doc.textContent = this.methods.length ? '' : 'The core has no merge methods registered.';
      return;
    }
    const base = m.inputs.base ? 'needs a base model' : m.inputs.baseIsInput ? 'the base, if any, is merged like the other models' : 'base model optional';
    const max = m.inputs.maxModels ? `at most ${m.inputs.maxModels}` : '';
    this.doc.textContent = `${m.name}: ${base}; at least ${m.inputs.minModels} other model${m.inputs.minModels === 1 ? '' : 's'}${max ? ', ' + max : ''}.`;
    for (const p of m.params.filter((p) => p.scope === 'global')) {
      this.global.append(field(p, state.params[p.name], (v) => this.onChange((s) => { s.params[p.name] = v; }), p.name));
    }
    const per = m.params.filter((p) => p.scope === 'model');
    for (const [i, entry] of state.models.entries()) {
      const row = el('div', { class: 'model', 'data-model': entry.model });
      row.append(el('span', {}, entry.model));
      for (const p of per) {
        row.append(field(p, entry.params?.[p.name], (v) => this.onChange((s) => {
          s.models[i].params = s.models[i].params || {};
          s.models[i].params[p.name] = v;
        }), p.name));
      }
      this.perModel.append(row);
    }
    this.perModel.hidden = state.models.length === 0 || per.length === 0;
  }
}
