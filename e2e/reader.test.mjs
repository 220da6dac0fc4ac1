// End-to-end tests of web/reader.js, the helper Worker that reads the page's input files:
// real files on disk picked through a file input, read in ranges by the Worker as
// worker.js asks for them (in order, backwards, skipping ahead, several files in turn, into
// buffers given back), every range compared with the same bytes read by Blob.arrayBuffer;
// then the same through FileReaderSync, as in a browser whose streams have no BYOB reader.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { launch, pickFiles, startServer, tempDir } from './helpers.mjs';

const SIZES = [3 << 20, 1 << 20, 777_777, 100_000, 65_536, 5_000];
let server, browser, page, dir;

before(async () => {
  dir = tempDir('reader');
  SIZES.forEach((n, i) => writeFileSync(path.join(dir, `f${i}.bin`), randomBytes(n)));
  writeFileSync(path.join(dir, 'changed.bin'), randomBytes(100_000)); // file SIZES.length
  server = await startServer();
  browser = await launch();
  page = browser.ctx.pages()[0] || (await browser.ctx.newPage());
  page.on('pageerror', (e) => console.error('page error:', e.message));
  // reader.js in a Worker whose streams have no BYOB reader (the page's CSP allows Workers
  // of its own origin only, so this one is served at a URL of it).
  await page.route('**/web/reader-no-byob.js', (route) => route.fulfill({
    contentType: 'text/javascript',
    body: `const getReader = ReadableStream.prototype.getReader;
      ReadableStream.prototype.getReader = function (o) {
        if (o && o.mode === 'byob') throw new TypeError('no BYOB reader here');
        return getReader.call(this, o);
      };
      importScripts('reader.js');`,
  }));
  await page.goto(server.url);
  await pickFiles(page, 'reader-files', [...SIZES.map((_, i) => path.join(dir, `f${i}.bin`)), path.join(dir, 'changed.bin')]);
});

after(async () => {
  await browser?.close();
  server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// run sends the requests [key, off, end] of files (indexes into SIZES) to a reader Worker
// all at once, giving back each buffer received (so that later ranges are read into it),
// and returns for each request its reply checked against Blob.arrayBuffer (ok, the reply's
// id, or its error), the ids in the order the replies came, and how many replies came in a
// buffer larger than their range (one given back: the stream path). It fails when a
// file's replies come out of the order asked. noBYOB hides the streams' BYOB reader from
// the Worker.
function run(requests, noBYOB = false) {
  return page.evaluate(async ({ requests, noBYOB }) => {
    const files = [...document.getElementById('reader-files').files];
    const w = new Worker(noBYOB ? 'web/reader-no-byob.js' : 'web/reader.js');
    const replies = [];
    await new Promise((resolve, reject) => {
      w.onerror = (e) => reject(new Error(`reader.js: ${e.message}`));
      w.onmessage = ({ data: { id, buf, n, error } }) => {
        // The bytes are copied before their buffer goes back to be read into again.
        replies.push(buf ? { id, n, len: buf.byteLength, bytes: new Uint8Array(buf, 0, n).slice() } : { id, error });
        if (buf) w.postMessage({ recycle: buf }, [buf]);
        if (replies.length === requests.length) resolve();
      };
      requests.forEach(([key, off, end], id) => w.postMessage({ id, key, file: files[key], off, end }));
    });
    w.terminate();
    const out = [];
    const last = new Map(); // key → the id of its last reply so far
    for (const { id } of replies) {
      const key = requests[id][0];
      if (last.get(key) > id) throw new Error(`file ${key}: reply ${id} came after ${last.get(key)}`);
      last.set(key, id);
    }
    const byId = new Map(replies.map((r) => [r.id, r]));
    for (let i = 0; i < requests.length; i++) {
      const [key, off, end] = requests[i];
      const r = byId.get(i);
      if (r.error) {
        out.push({ id: r.id, error: r.error });
        continue;
      }
      const want = new Uint8Array(await files[key].slice(off, end).arrayBuffer());
      let ok = r.id === i && r.n === want.length && r.len >= r.n && r.bytes.length === want.length;
      for (let j = 0; ok && j < want.length; j++) ok = r.bytes[j] === want[j];
      out.push({ id: r.id, ok });
    }
    return { out, order: replies.map((r) => r.id), larger: replies.filter((r) => r.len > r.n).length };
  }, { requests, noBYOB });
}

// ranges returns requests covering file key from off to end in steps of step bytes.
function ranges(key, off, end, step) {
  const rs = [];
  for (let at = off; at < end; at += step) rs.push([key, at, Math.min(end, at + step)]);
  return rs;
}

for (const noBYOB of [false, true]) {
  describe(noBYOB ? 'reader.js through FileReaderSync' : 'reader.js through streams', () => {
    test('ranges in order, backwards, skipping ahead, and of several files in turn', async () => {
      const requests = [
        ...ranges(0, 0, SIZES[0], 1 << 20), // the whole file, window after window
        ...ranges(0, 1000, 400_000, 131_071), // back to near its start: odd sizes
        [0, 2_500_000, 2_600_000], // skipping ahead
        [0, 2_600_000, SIZES[0]], // on from there to the end
        [0, 17, 18], // one byte
      ];
      // Six files in turn, more than the streams kept open: each read on from where it was.
      for (let at = 0; at < SIZES[0]; at += 300_000) {
        for (let key = 0; key < SIZES.length; key++) {
          if (at < SIZES[key]) requests.push([key, at, Math.min(SIZES[key], at + 300_000)]);
        }
      }
      requests.push([1, 0, SIZES[1]]); // a larger range than most buffers given back
      const { out, larger } = await run(requests, noBYOB);
      assert.equal(out.length, requests.length);
      out.forEach((r, i) => assert.deepEqual(r, { id: i, ok: true }, `request ${i}: ${JSON.stringify(requests[i])}`));
      // Streams read into the buffers given back, FileReaderSync into new ones of the size.
      if (noBYOB) assert.equal(larger, 0);
      else assert.ok(larger > 0, 'no range was read into a buffer given back');
    });

    // Streams only: FileReaderSync reads one range at a time, in the order asked.
    if (!noBYOB) {
      test('files are read at once: one range of a file comes before a long run of another\'s ends', async () => {
        const requests = [];
        for (let i = 0; i < 4; i++) requests.push(...ranges(0, 0, SIZES[0], 64 << 10)); // a new stream each time
        requests.push([5, 0, SIZES[5]]);
        const { out, order } = await run(requests);
        out.forEach((r, i) => assert.deepEqual(r, { id: i, ok: true }, `request ${i}: ${JSON.stringify(requests[i])}`));
        const small = requests.length - 1;
        assert.ok(order.indexOf(small) < small, `the range of file 5 came after all ${small} of file 0`);
      });
    }

    test('a range past the end of its file (a file that shrank): an error naming the offset, then reads go on', async () => {
      const n = SIZES[2];
      const { out } = await run([[2, 0, 100_000], [2, n - 10, n + 10], [2, 100_000, 200_000], [2, n - 10, n]], noBYOB);
      assert.deepEqual(out[0], { id: 0, ok: true });
      assert.equal(out[1].id, 1);
      assert.match(out[1].error ?? '', new RegExp(`got 10 bytes at ${n - 10}, want 20`));
      assert.deepEqual(out.slice(2), [{ id: 2, ok: true }, { id: 3, ok: true }]);
    });

    // wasm/blob.go turns a NotReadableError into "… changed on disk after it was added";
    // a stream says only "network error", so reader.js asks FileReaderSync why.
    test('a file changed on disk after it was picked: NotReadableError', async () => {
      const key = SIZES.length;
      writeFileSync(path.join(dir, 'changed.bin'), randomBytes(100_000));
      const { out } = await run([[key, 0, 70_000], [key, 70_000, 100_000]], noBYOB);
      for (const r of out) assert.match(r.error ?? '', /^NotReadableError: /, JSON.stringify(r));
    });
  });
}

