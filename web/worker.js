// The Worker that hosts freelunch's Go core (wasm/): the only file that knows Go.
// Messages from the page are {type, id, ...}; a `files` array of {path, file} and a `dir`
// folder handle travel beside the JSON part. Every reply carries `memory`, the size of the
// WebAssembly memory (it never shrinks, so the last figure is the peak).
importScripts('wasm_exec.js');

const queue = [];
let handle = null;
let memory = null;

function dispatch(msg) {
  const { files, dir, ...rest } = msg;
  handle(JSON.stringify(rest), files || [], dir);
}

self.onmessage = (e) => {
  if (handle) dispatch(e.data);
  else queue.push(e.data);
};

globalThis.__freelunchPost = (json) => {
  const msg = JSON.parse(json);
  if (memory) msg.memory = memory.buffer.byteLength;
  self.postMessage(msg);
};

globalThis.__freelunchReady = (fn) => {
  handle = fn;
  self.postMessage({ type: 'ready', memory: memory.buffer.byteLength });
  for (const msg of queue.splice(0)) dispatch(msg);
};

const go = new Go();
go.argv = ['freelunch'];
// The Go runtime reads GOGC/GOMEMLIMIT from here (design.md §10): a soft limit keeps the
// heap, and so the WebAssembly memory, near chunk size × inputs.
go.env = { GOGC: '50', GOMEMLIMIT: '160MiB' };

WebAssembly.instantiateStreaming(fetch('main.wasm'), go.importObject)
  .then(({ instance }) => {
    memory = instance.exports.mem;
    return go.run(instance);
  })
  .then(() => {
    self.postMessage({ type: 'fatal', message: 'the WebAssembly core stopped (out of memory?); reload the page' });
  })
  .catch((err) => {
    self.postMessage({ type: 'fatal', message: `the WebAssembly core did not start: ${err}` });
  });
