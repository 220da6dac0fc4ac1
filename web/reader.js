// A helper Worker of worker.js: it reads byte ranges of Files with FileReaderSync on its
// own thread while the Go core computes on the other, and hands each range over as a
// transferred ArrayBuffer (not copied). Requests {id, file, off, end}; replies {id, buf}
// or {id, error}, in order.
const reader = new FileReaderSync();

self.onmessage = ({ data: { id, file, off, end } }) => {
  try {
    const buf = reader.readAsArrayBuffer(file.slice(off, end));
    if (buf.byteLength !== end - off) throw new Error(`got ${buf.byteLength} bytes at ${off}, want ${end - off}`);
    self.postMessage({ id, buf }, [buf]);
  } catch (err) {
    self.postMessage({ id, error: `${err.name}: ${err.message}` });
  }
};
