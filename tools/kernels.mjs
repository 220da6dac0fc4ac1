// Assembles web/kernels.wat into web/kernels.wasm with npm's wabt (make builds it with the
// page's other WebAssembly).
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';

const web = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'web');

export async function assemble() {
  const wabt = await wabtInit();
  const src = path.join(web, 'kernels.wat');
  const mod = wabt.parseWat(src, readFileSync(src, 'utf8'), { simd: true });
  try {
    mod.validate();
    return Buffer.from(mod.toBinary({}).buffer);
  } finally {
    mod.destroy();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const bin = await assemble();
  const out = path.join(web, 'kernels.wasm');
  writeFileSync(out, bin);
  console.log(`wrote ${out} (${bin.length} bytes)`);
}
