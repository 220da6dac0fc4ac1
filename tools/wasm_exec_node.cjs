// Runs a GOOS=js GOARCH=wasm binary (a Go test) under Node, as Go's go_js_wasm_exec does
// (with GOROOT's wasm_exec.js), but started as web/worker.js starts it in the page
// (web/kernels.js): with the SIMD kernels of web/kernels.wasm on the binary's memory, so
// that wasm/'s tests reach them. (The core's test binaries import nothing from
// "freelunch"; they run here as under Go's runner.)
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

require(path.join(__dirname, '..', 'web', 'kernels.js'));

const go = new Go();
go.argv = process.argv.slice(2);
go.env = Object.assign({ TMPDIR: require('node:os').tmpdir() }, process.env);
go.exit = process.exit;

(async () => {
  const main = await WebAssembly.compile(fs.readFileSync(process.argv[2]));
  const kernels = fs.readFileSync(path.join(__dirname, '..', 'web', 'kernels.wasm'));
  const instance = await freelunchInstantiate(go, main, async (mem) =>
    (await WebAssembly.instantiate(kernels, { env: { mem } })).instance.exports);
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
