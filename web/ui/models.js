// The model list: name, role, tensor count, dtypes, size, and header problems at once.
import { bytes, count, el } from './format.js';

export class ModelList {
  constructor(root, onRemove) {
    this.root = root;
    this.onRemove = onRemove;
  }

  // render shows models ({name, role, info, error, pending}); problems maps a model name
  // to the error of the last validation that pointed at it.
  render(models, problems = new Map()) {
    this.root.replaceChildren();
    for (const m of models) {
      const li = el('li', { 'data-model': m.name, 'data-testid': 'model' });
      const name = el('span', { class: 'name' }, m.name);
      name.append(el('span', { class: 'role' }, m.role === 'base' ? 'base model' : 'fine-tune'));
      li.append(name);
      if (m.pending) li.append(el('p', { class: 'info' }, 'reading headers…'));
      if (m.info) {
        const dt = Object.entries(m.info.dtypes).map(([d, n]) => `${d} ×${n}`).join(', ');
        const shards = m.info.shards.length > 1 ? `, ${m.info.shards.length} shards` : '';
        li.append(el('p', { class: 'info' },
          `${m.info.tensors} tensors, ${dt}, ${bytes(m.info.bytes)} (${count(m.info.params)} parameters)${shards}`));
        for (const n of m.info.notes || []) li.append(el('p', { class: 'note' }, n));
      }
      const problem = m.error || problems.get(m.name);
      if (problem) {
        li.classList.add('bad');
        li.append(el('p', { class: 'error', 'data-testid': 'model-error', role: 'alert' }, problem));
      }
      const rm = el('button', { type: 'button', 'aria-label': `Remove ${m.name}` }, 'Remove');
      rm.addEventListener('click', () => this.onRemove(m.name));
      li.append(rm);
      this.root.append(li);
    }
  }
}
