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

// File reads for wasm/blob.go. FileReaderSync costs a round trip to the browser's file
// reader per call besides the bytes (measured in a Worker, Chromium 148: 2 MiB reads ran
// at 60 MB/s, 32 MiB reads at 150 MB/s), and the engine reads one chunk (2 MiB of BF16) of
// a tensor at a time, in order. So a read of at least SMALL bytes not already held fetches
// a window of WINDOW bytes from its offset, and the next chunks of the tensor (and a
// statistics pass's re-read of a tensor that fits) are copies from it. Two windows are kept
// per file, so a chunk may straddle them; they live here, outside the WebAssembly memory.
// Smaller reads (headers, side files) go straight to the file.
const WINDOW = 16 << 20;
const SMALL = 64 << 10;
const reader = typeof FileReaderSync === 'function' ? new FileReaderSync() : null;
const windows = new WeakMap(); // File → [{off, bytes}], the most recently fetched first

function readRange(file, off, end) {
  if (!reader) throw new Error('FileReaderSync (a Worker-only API) is missing');
  const bytes = new Uint8Array(reader.readAsArrayBuffer(file.slice(off, end)));
  if (bytes.length !== end - off) throw new Error(`got ${bytes.length} bytes at ${off}, want ${end - off}`);
  return bytes;
}

// __freelunchRead copies bytes [off, end) of file into the WebAssembly memory at ptr and
// returns their count; wasm/blob.go checks 0 <= off < end <= file.size.
globalThis.__freelunchRead = (file, off, end, ptr) => {
  const dst = new Uint8Array(memory.buffer, ptr, end - off);
  let wins = windows.get(file);
  if (!wins) windows.set(file, (wins = []));
  const find = (at) => wins.find((w) => at >= w.off && at < w.off + w.bytes.length);
  const first = find(off);
  if (end - off < SMALL && !(first && end <= first.off + first.bytes.length)) {
    dst.set(readRange(file, off, end));
    return end - off;
  }
  for (let at = off; at < end;) {
    let w = find(at);
    if (!w) {
      w = { off: at, bytes: readRange(file, at, Math.min(file.size, at + Math.max(WINDOW, end - at))) };
      wins.unshift(w);
      wins.length = Math.min(wins.length, 2);
    }
    const n = Math.min(end - at, w.off + w.bytes.length - at);
    dst.set(w.bytes.subarray(at - w.off, at - w.off + n), at - off);
    at += n;
  }
  return end - off;
};

globalThis.__freelunchRelease = (file) => {
  windows.delete(file);
};

// __freelunchWrite writes n bytes of the WebAssembly memory at ptr through the
// FileSystemSyncAccessHandle h at byte at, and returns the count written (wasm/output.go).
globalThis.__freelunchWrite = (h, ptr, n, at) => h.write(new Uint8Array(memory.buffer, ptr, n), { at });

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
