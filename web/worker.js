// The Worker that hosts freelunch's Go core (wasm/): the only file that knows Go.
// Messages from the page are {type, id, ...}; a `files` array of {path, file} and a `dir`
// folder handle travel beside the JSON part. Every reply carries `memory`, the size of the
// WebAssembly memory (it never shrinks, so the last figure is the peak).
importScripts('wasm_exec.js', 'kernels.js');

const queue = [];
let handle = null;
let memory = null;

function dispatch(msg) {
  const { files, dir, ...rest } = msg;
  handle(JSON.stringify(rest), files || [], dir);
}

self.onmessage = (e) => {
  if (e.data.type === 'helper') startHelper(); // a job's Worker, started ahead: client.js
  else if (handle) dispatch(e.data);
  else queue.push(e.data);
};

globalThis.__freelunchPost = (json) => {
  const msg = JSON.parse(json);
  if (memory) msg.memory = memory.buffer.byteLength;
  self.postMessage(msg);
};

// File reads for wasm/blob.go. FileReaderSync costs a round trip to the browser's file
// reader per call besides the bytes (measured in a Worker, Chromium 148: 2 MiB reads ran
// at 60 MB/s, 16 to 32 MiB reads at 150 to 190 MB/s), and the engine reads one chunk
// (2 MiB of BF16) of a tensor at a time, in order. So a read of at least SMALL bytes that
// is not already held fetches a window from its offset, and the next chunks of the tensor
// (and a statistics pass's re-read of a tensor that fits) are copies from it. The windows
// live here, outside the WebAssembly memory: at most keep per file and total in all, the
// least recently used dropped first (so the windows of a shard no longer read go before
// those of the files being read). Smaller reads (headers, side files) go straight to the
// file.
//
// The windows are read by a helper Worker (reader.js, every file at once) when it starts,
// so the file reader works on other threads while Go computes: using a window asks for
// the one after it, and a dropped window's buffer goes back to the helper to be read into
// again (reader.js says why both matter). A read whose window has not arrived returns -1
// and calls wake when it has; Go waits (the JS event loop runs meanwhile) and asks again.
// Without the helper, windows are read here, synchronously, larger and fewer.
const SMALL = 64 << 10;
const reader = typeof FileReaderSync === 'function' ? new FileReaderSync() : null;
const windows = new WeakMap(); // File → [{off, n, bytes, error, waiters, used}]
const held = []; // every file's windows: [{file, w}]
// The helper, or null when there is none. One for all files was faster than one per file:
// 1G task_arithmetic 5.64 against 5.80 s and dare_ties 7.3 against 7.8 s, means of seven
// runs alternating (BENCHMARKS.md, tenth session).
let helper;
const keyOf = new WeakMap(); // File → the number that names it to the helper
let nextKey = 0;
// Windows without a helper (read here, synchronously): larger and fewer.
const ALONE = [16 << 20, 2, 6]; // [windowSize, keep, total]
let [windowSize, keep, total] = ALONE;
let clock = 0;
let nextRequest = 1;
const requests = new Map(); // request id → its window

function startHelper() {
  if (helper !== undefined) return;
  helper = null;
  if (typeof Worker !== 'function') return;
  let h;
  try {
    h = new Worker('reader.js');
  } catch {
    return;
  }
  helper = h;
  // ties reads each tensor twice: with four windows per file, the 22 MiB tensors of the 1G
  // benchmark's models (four windows where they start mid-window, and one read ahead) were
  // read twice from the files, ties taking 17.3 and 17.4 s in the page; 12.2 and 13.1 s
  // with six.
  [windowSize, keep, total] = [8 << 20, 6, 24];
  h.onmessage = ({ data }) => {
    const w = requests.get(data.id);
    if (!w) return;
    requests.delete(data.id);
    if (data.error) w.error = data.error;
    else w.bytes = new Uint8Array(data.buf, 0, data.n);
    for (const wake of w.waiters.splice(0)) wake();
  };
  // A helper that fails (it could not load): the windows are read here instead.
  h.onerror = () => {
    h.terminate();
    if (!helper) return; // an error event after the first
    helper = null;
    [windowSize, keep, total] = ALONE;
    for (const w of requests.values()) {
      w.error = 'retry';
      for (const wake of w.waiters.splice(0)) wake();
    }
    requests.clear();
  };
}

// keyFor returns the number that names file to the helper (every message brings a new
// File object).
function keyFor(file) {
  if (!keyOf.has(file)) keyOf.set(file, nextKey++);
  return keyOf.get(file);
}

function readRange(file, off, end) {
  if (!reader) throw new Error('FileReaderSync (a Worker-only API) is missing');
  const bytes = new Uint8Array(reader.readAsArrayBuffer(file.slice(off, end)));
  if (bytes.length !== end - off) throw new Error(`got ${bytes.length} bytes at ${off}, want ${end - off}`);
  return bytes;
}

// fetchWindow starts reading bytes [at, at+size) of file (to its end) into a new window.
function fetchWindow(file, wins, at, size) {
  const w = { off: at, n: Math.min(file.size - at, size), bytes: null, error: null, waiters: [], used: ++clock };
  if (helper) {
    const id = nextRequest++;
    requests.set(id, w);
    helper.postMessage({ id, key: keyFor(file), file, off: at, end: at + w.n });
  } else {
    w.bytes = readRange(file, at, at + w.n);
  }
  wins.push(w);
  held.push({ file, w });
  // Drop the least recently used windows that have arrived beyond keep of this file, then
  // beyond total of all files.
  for (;;) {
    const own = wins.length > keep;
    if (!own && held.length <= total) break;
    let old = null;
    for (const h of held) {
      if (h.w.bytes && h.w !== w && (!own || h.file === file) && (!old || h.w.used < old.w.used)) old = h;
    }
    if (!old) break;
    forget(old.file, old.w);
  }
  return w;
}

// forget drops window w of file, giving its buffer back to the helper to read into again.
function forget(file, w) {
  const wins = windows.get(file);
  wins.splice(wins.indexOf(w), 1);
  held.splice(held.findIndex((h) => h.w === w), 1);
  if (helper && w.bytes) helper.postMessage({ recycle: w.bytes.buffer }, [w.bytes.buffer]);
}

// __freelunchRead copies bytes [off, end) of file into the WebAssembly memory at ptr and
// returns their count, or returns -1 and calls wake once a window it needs has arrived;
// wasm/blob.go checks 0 <= off < end <= file.size.
globalThis.__freelunchRead = (file, off, end, ptr, wake) => {
  let wins = windows.get(file);
  if (!wins) windows.set(file, (wins = []));
  const find = (at) => wins.find((w) => at >= w.off && at < w.off + w.n);
  const first = find(off);
  if (end - off < SMALL && !(first && first.bytes && end <= first.off + first.n)) {
    new Uint8Array(memory.buffer, ptr, end - off).set(readRange(file, off, end));
    return end - off;
  }
  startHelper();
  for (let at = off; at < end;) {
    const w = find(at) || fetchWindow(file, wins, at, Math.max(windowSize, end - at));
    if (w.error) {
      forget(file, w);
      if (w.error === 'retry') return globalThis.__freelunchRead(file, off, end, ptr, wake);
      throw new Error(w.error);
    }
    if (!w.bytes) {
      w.waiters.push(wake);
      return -1;
    }
    w.used = ++clock; // not the one dropped for the next
    at = w.off + w.n;
  }
  const dst = new Uint8Array(memory.buffer, ptr, end - off);
  let last = null;
  for (let at = off; at < end;) {
    const w = find(at);
    const n = Math.min(end - at, w.off + w.n - at);
    dst.set(w.bytes.subarray(at - w.off, at - w.off + n), at - off);
    w.used = ++clock;
    at += n;
    last = w;
  }
  const next = last.off + last.n;
  if (helper && next < file.size && !find(next)) fetchWindow(file, wins, next, windowSize);
  return end - off;
};

globalThis.__freelunchRelease = (file) => {
  for (const w of [...(windows.get(file) || [])]) forget(file, w);
  windows.delete(file);
};

// __freelunchWrite writes n bytes of the WebAssembly memory at ptr through the
// FileSystemSyncAccessHandle h at byte at, and returns the count written (wasm/output.go).
globalThis.__freelunchWrite = (h, ptr, n, at) => h.write(new Uint8Array(memory.buffer, ptr, n), { at });

globalThis.__freelunchReady = (fn) => {
  handle = fn;
  // simd: whether the SIMD kernels loaded (kernels.js), for the page's summary.
  self.postMessage({ type: 'ready', memory: memory.buffer.byteLength, simd: go.importObject.freelunch?.kernelsLoaded?.() === 1 });
  for (const msg of queue.splice(0)) dispatch(msg);
};

const go = new Go();
go.argv = ['freelunch'];
// The Go runtime reads GOGC/GOMEMLIMIT from here (design.md §10): a soft limit keeps the
// heap, and so the WebAssembly memory, near chunk size × inputs.
go.env = { GOGC: '50', GOMEMLIMIT: '160MiB' };

// The SIMD kernels (kernels.js) work on Go's memory, so they are instantiated after Go's
// module and before go.run.
WebAssembly.compileStreaming(fetch('main.wasm'))
  .then((main) => freelunchInstantiate(go, main, async (mem) =>
    (await WebAssembly.instantiateStreaming(fetch('kernels.wasm'), { env: { mem } })).instance.exports))
  .then((instance) => {
    memory = instance.exports.mem;
    return go.run(instance);
  })
  .then(() => {
    self.postMessage({ type: 'fatal', message: 'the WebAssembly core stopped (out of memory?); reload the page' });
  })
  .catch((err) => {
    self.postMessage({ type: 'fatal', message: `the WebAssembly core did not start: ${err}` });
  });
