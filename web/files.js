// Turning picked and dropped files into models (design.md §2): a folder is one model named
// by the folder; a single .safetensors file is one model named by the file.

// groupFiles groups File objects by their top folder (webkitRelativePath, or the path an
// entry walk gave them in `relPath`). Files without a folder must be .safetensors files and
// become one model each. It returns {models: [{name, files: [{path, file}]}], skipped}.
export function groupFiles(files) {
  const byName = new Map();
  const skipped = [];
  for (const file of files) {
    const rel = file.relPath || file.webkitRelativePath || '';
    const parts = rel.split('/').filter(Boolean);
    if (parts.length >= 2) {
      const name = parts[0];
      if (!byName.has(name)) byName.set(name, []);
      byName.get(name).push({ path: parts.join('/'), file });
    } else if (file.name.endsWith('.safetensors')) {
      byName.set(file.name, [{ path: file.name, file }]);
    } else {
      skipped.push(file.name);
    }
  }
  return { models: [...byName].map(([name, files]) => ({ name, files })), skipped };
}

// readEntries lists a directory entry, calling readEntries until it returns an empty
// batch (Chromium gives at most 100 per call).
function readAll(dir) {
  const reader = dir.createReader();
  const out = [];
  return new Promise((resolve, reject) => {
    const step = () =>
      reader.readEntries((batch) => {
        if (batch.length === 0) return resolve(out);
        out.push(...batch);
        step();
      }, reject);
    step();
  });
}

function entryFile(entry) {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

async function walk(entry, prefix, out) {
  const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
  if (entry.isFile) {
    const file = await entryFile(entry);
    if (prefix) file.relPath = rel;
    out.push(file);
  } else if (entry.isDirectory) {
    for (const child of await readAll(entry)) await walk(child, rel, out);
  }
}

// droppedFiles collects the files of a drop event. Entries must be taken synchronously in
// the handler; a synthetic drop (tests) has no entries, so getAsFile is the fallback.
export function droppedFiles(dataTransfer) {
  const entries = [];
  const plain = [];
  for (const item of dataTransfer.items || []) {
    if (item.kind !== 'file') continue;
    const entry = item.webkitGetAsEntry?.();
    if (entry) entries.push(entry);
    else {
      const f = item.getAsFile();
      if (f) plain.push(f);
    }
  }
  if (entries.length === 0 && plain.length === 0) plain.push(...(dataTransfer.files || []));
  return (async () => {
    const out = [...plain];
    for (const e of entries) await walk(e, '', out);
    return out;
  })();
}
