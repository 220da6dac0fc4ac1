// Starting Go's WebAssembly with the SIMD kernels of kernels.wasm (kernels.wat), shared by
// worker.js (the page) and tools/wasm_exec_node.cjs (the Go tests under Node); a classic
// script, so that importScripts and require both load it.
//
// freelunchInstantiate instantiates Go's module main for go (wasm_exec.js's Go) and then,
// on its memory, the kernels that loadKernels(memory) returns (an instance's exports); it
// returns Go's instance, ready for go.run. Go imports the kernels as module "freelunch"
// (wasm/kernels.go): a call into the kernels instance for each name, and kernelsLoaded,
// 0 when loadKernels failed (no WebAssembly SIMD), and Go then runs its portable loops.
globalThis.freelunchInstantiate = async (go, main, loadKernels) => {
  let kernels = null;
  const imports = {};
  for (const { module, name } of WebAssembly.Module.imports(main)) {
    if (module !== 'freelunch') continue;
    imports[name] = name === 'kernelsLoaded' ? () => (kernels ? 1 : 0) : (p) => kernels[name](p);
  }
  go.importObject.freelunch = imports;
  const instance = await WebAssembly.instantiate(main, go.importObject);
  try {
    kernels = await loadKernels(instance.exports.mem);
  } catch (err) {
    console.warn(`freelunch: SIMD kernels not loaded, using the portable loops: ${err}`);
  }
  return instance;
};
