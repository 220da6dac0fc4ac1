// A helper Worker of worker.js: it reads byte ranges of Files on its own thread while the
// Go core computes on the other, and hands each range over as a transferred ArrayBuffer
// (not copied). Requests {id, key, file, off, end} (key: a number naming the file, since
// every message brings a new File object) are answered with {id, buf, n}, the range being
// buf's first n bytes, or {id, error}: a file's in the order asked, different files' at
// once, each read from its own stream, as they come. {recycle: buf} gives back a buffer
// worker.js has done with.
//
// worker.js asks for a file's windows mostly in order, so a range is read from a stream of
// the file left open where the last range ended (a new one otherwise), into a buffer that
// came back (BYOB reads fill a buffer given to them). Both matter in Chromium 148, three
// helpers reading three 1 GB files in 8 MiB ranges: FileReaderSync 0.16-0.26 GB/s; a new
// stream per range 0.26 GB/s into new buffers (their page faults), 0.48 GB/s into reused
// ones; one stream per file into reused buffers 0.80-0.91 GB/s (BENCHMARKS.md, eighth
// session). More streams at once in one Worker cost less per byte: one Worker reading the
// three files at once took 5.0 s of Chromium's CPU, three Workers one file each 5.2-7.8 s
// (tenth session). Where streams have no BYOB reader, FileReaderSync; and where a stream
// fails, FileReaderSync again, whose error says why (a stream says "network error" where
// it says NotReadableError: the file changed on disk).
const byob = (() => {
  try {
    new Blob([]).stream().getReader({ mode: 'byob' }).releaseLock();
    return true;
  } catch {
    return false;
  }
})();
const reader = new FileReaderSync();
const OPEN = 4; // streams kept open, the least recently used cancelled first
const POOL = 8; // buffers kept for reuse
const streams = new Map(); // key → {pos, rd}, in order of use
const pool = [];
const queues = new Map(); // key → the file's last request, served after those before it

self.onmessage = ({ data }) => {
  if (data.recycle) {
    if (pool.length < POOL) pool.push(data.recycle);
    return;
  }
  const { key } = data;
  const q = (queues.get(key) || Promise.resolve()).then(() => serve(data));
  queues.set(key, q);
  q.then(() => queues.get(key) === q && queues.delete(key));
};

async function serve({ id, key, file, off, end }) {
  try {
    const buf = (byob && (await readStream(key, file, off, end - off).catch(() => null))) ||
      reader.readAsArrayBuffer(file.slice(off, end));
    if (buf.byteLength < end - off) throw new Error(`got ${buf.byteLength} bytes at ${off}, want ${end - off}`);
    self.postMessage({ id, buf, n: end - off }, [buf]);
  } catch (err) {
    self.postMessage({ id, error: `${err.name}: ${err.message}` });
  }
}

// readStream reads n bytes of file at off into a buffer of at least n bytes.
async function readStream(key, file, off, n) {
  let s = streams.get(key);
  streams.delete(key);
  if (s && s.pos !== off) {
    s.rd.cancel().catch(() => {});
    s = null;
  }
  s ||= { pos: off, rd: file.slice(off).stream().getReader({ mode: 'byob' }) };
  const i = pool.findIndex((b) => b.byteLength >= n);
  let buf = i >= 0 ? pool.splice(i, 1)[0] : new ArrayBuffer(n);
  let got = 0;
  try {
    while (got < n) {
      const { done, value } = await s.rd.read(new Uint8Array(buf, got, n - got));
      if (done) throw new Error(`got ${got} bytes at ${off}, want ${n}`);
      buf = value.buffer;
      got += value.byteLength;
    }
  } catch (err) {
    s.rd.cancel().catch(() => {});
    throw err;
  }
  s.pos += n;
  if (s.pos < file.size) streams.set(key, s);
  else s.rd.cancel().catch(() => {});
  for (const [k, old] of streams) {
    if (streams.size <= OPEN) break;
    old.rd.cancel().catch(() => {});
    streams.delete(k);
  }
  return buf;
}
