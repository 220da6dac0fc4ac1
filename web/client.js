// Client for one Worker running the Go core: requests are {type, id, ...}; replies are
// matched by id. Messages from a terminated Worker are dropped.

export class CoreError extends Error {
  constructor(msg) {
    super(msg.message);
    this.code = msg.code || 'error';
    this.line = msg.line || 0;
    this.key = msg.key || '';
    this.model = msg.model || '';
  }
}

export class Core {
  constructor(url = new URL('worker.js', import.meta.url)) {
    this.worker = new Worker(url);
    this.next = 1;
    this.pending = new Map(); // id → {resolve, reject, onProgress}
    this.memory = 0; // largest WebAssembly memory seen, bytes
    this.simd = false; // whether the Worker runs the WebAssembly SIMD kernels
    this.dead = null;
    this.ready = new Promise((resolve, reject) => {
      this.readyResolve = resolve;
      this.readyReject = reject;
    });
    this.ready.catch(() => {});
    this.worker.onmessage = (e) => this.receive(e.data);
    this.worker.onerror = (e) => this.fail(`the core's Worker failed: ${e.message || 'unknown error'}`);
  }

  receive(msg) {
    if (this.dead) return;
    if (msg.memory) this.memory = Math.max(this.memory, msg.memory);
    if (msg.type === 'ready') {
      this.simd = msg.simd === true;
      return this.readyResolve();
    }
    if (msg.type === 'fatal') return this.fail(msg.message);
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.type === 'progress') {
      p.onProgress?.(msg);
      return;
    }
    this.pending.delete(msg.id);
    if (msg.type === 'result') p.resolve(msg);
    else p.reject(new CoreError(msg));
  }

  fail(message) {
    const err = new CoreError({ message, code: 'fatal' });
    this.readyReject(err);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.terminate(err);
  }

  // request sends {type, ...fields} and resolves with the result message.
  request(type, fields = {}, onProgress = null) {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.next++;
    const promise = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject, onProgress }));
    this.worker.postMessage({ type, id, ...fields });
    promise.id = id;
    return promise;
  }

  cancel(id) {
    if (!this.dead) this.worker.postMessage({ type: 'cancel', id });
  }

  terminate(reason = new CoreError({ message: 'stopped', code: 'canceled' })) {
    if (this.dead) return;
    this.dead = reason;
    this.worker.terminate();
    for (const p of this.pending.values()) p.reject(reason);
    this.pending.clear();
  }
}

// A job (a merge, an analysis) runs in a Worker of its own, stopped when it ends: its
// WebAssembly memory never shrinks, and stopping is how a job that does not answer a
// cancel is ended. A new Worker must load the Go core before its job can begin, so one is
// started ahead, with its file-reading helper: jobCore takes it, and spareCore, called
// when the page is idle again, starts the next (the demo merge, click to download:
// 0.61-0.77 s before, 0.23-0.46 s after; BENCHMARKS.md).
let spare = null;

// jobCore returns a Core for one job: the one started ahead if it is alive, else a new one.
export function jobCore() {
  const c = spare && !spare.dead ? spare : newJobCore();
  spare = null;
  return c;
}

// spareCore starts the Core the next job will take, unless one is waiting.
export function spareCore() {
  if (!spare || spare.dead) spare = newJobCore();
}

// newJobCore starts a Core and, while its Go core loads, the helper Worker that will read
// its job's files (worker.js starts it at the first large read otherwise).
function newJobCore() {
  const c = new Core();
  c.worker.postMessage({ type: 'helper' });
  return c;
}
