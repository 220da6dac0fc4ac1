// Writing the form's state as a mergekit YAML config. Reading YAML is the core's job (the
// page asks the Worker to parse): there is one YAML parser, and it is the one that merges.
//
// State: {method, base, models: [{model, params}], params, dtype, outDtype, tokenizerSource}.
// A parameter value is a number, a boolean, a string, or a gradient / filter list, which is
// written as JSON (JSON is YAML).

const plain = /^[A-Za-z0-9_][A-Za-z0-9_.\/+@-]*$/;
const reserved = /^(true|false|yes|no|on|off|null|~|[-+]?(\d|\.\d|\.inf|\.nan))/i;

// scalar writes a string so that YAML reads it back as that string.
export function str(s) {
  return plain.test(s) && !reserved.test(s) ? s : JSON.stringify(s);
}

export function value(v) {
  if (typeof v === 'string') return str(v);
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : JSON.stringify(String(v));
  return JSON.stringify(v);
}

function params(obj, indent) {
  const keys = Object.keys(obj || {}).filter((k) => obj[k] !== undefined && obj[k] !== null && obj[k] !== '');
  if (keys.length === 0) return '';
  return `${indent}parameters:\n` + keys.map((k) => `${indent}  ${k}: ${value(obj[k])}\n`).join('');
}

export function toYAML(state) {
  let out = `merge_method: ${str(state.method || '')}\n`;
  if (state.base) out += `base_model: ${str(state.base)}\n`;
  out += 'models:\n';
  if (!state.models || state.models.length === 0) out = out.replace(/models:\n$/, 'models: []\n');
  for (const m of state.models || []) {
    out += `  - model: ${str(m.model)}\n` + params(m.params, '    ');
  }
  out += params(state.params, '');
  if (state.dtype) out += `dtype: ${str(state.dtype)}\n`;
  if (state.outDtype) out += `out_dtype: ${str(state.outDtype)}\n`;
  if (state.tokenizerSource) out += `tokenizer_source: ${str(state.tokenizerSource)}\n`;
  return out;
}
