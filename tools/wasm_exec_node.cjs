// Runs a GOOS=js GOARCH=wasm binary (a Go test) under Node, as Go's go_js_wasm_exec does
// (with GOROOT's wasm_exec.js), and also provides the imports of module "freelunch" that
// web/worker.js provides in the page: before Go starts it instantiates web/kernels.wasm on
// the binary's memory, so that wasm/'s tests reach the SIMD kernels. (The core's test
// binaries import nothing from "freelunch"; they run here as under Go's runner.)
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

if (process.argv.length < 3) {
  console.error('usage: go_js_wasm_exec [wasm binary] [arguments]');
  process.exit(1);
}

Object.assign(globalThis, { require, fs, path, TextEncoder: require('node:util').TextEncoder, TextDecoder: require('node:util').TextDecoder });
globalThis.performance ??= require('node:perf_hooks').performance;
globalThis.crypto ??= require('node:crypto');

const goroot = process.env.GOROOT || execFileSync('go', ['env', 'GOROOT'], { encoding: 'utf8' }).trim();
require(path.join(goroot, 'lib', 'wasm', 'wasm_exec.js'));

const go = new Go();
let kernels = null;
go.importObject.freelunch = {
  kernelsLoaded: () => (kernels ? 1 : 0),
  consensus2: (p) => kernels.consensus2(p),
  dareMask: (p) => kernels.dareMask(p),
  topKMask: (p) => kernels.topKMask(p),
  countWindow: (p) => kernels.countWindow(p),
  decodeBF16: (p) => kernels.decodeBF16(p),
  encodeBF16: (p) => kernels.encodeBF16(p),
};
go.argv = process.argv.slice(2);
go.env = Object.assign({ TMPDIR: require('node:os').tmpdir() }, process.env);
go.exit = process.exit;

(async () => {
  const { instance } = await WebAssembly.instantiate(fs.readFileSync(process.argv[2]), go.importObject);
  const wasm = fs.readFileSync(path.join(__dirname, '..', 'web', 'kernels.wasm'));
  kernels = (await WebAssembly.instantiate(wasm, { env: { mem: instance.exports.mem } })).instance.exports;
  process.on('exit', (code) => { // Node exits when nothing is pending: let Go report a deadlock
    if (code === 0 && !go.exited) {
      go._pendingEvent = { id: 0 };
      go._resume();
    }
  });
  await go.run(instance);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
