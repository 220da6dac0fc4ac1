// Shared pieces of the end-to-end tests: the real server on loopback, headless Chromium
// with a persistent (disk-backed OPFS) profile, generated models, a stored-zip reader.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import { chromium } from 'playwright-core';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function tempDir(name) {
  return mkdtempSync(path.join(tmpdir(), `freelunch-e2e-${name}-`));
}

// startServer runs bin/freelunch-server on a free loopback port and returns {url, stop}.
export async function startServer() {
  const proc = spawn(path.join(root, 'bin/freelunch-server'), ['-addr', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /http:\/\/127\.0\.0\.1:\d+\//.exec(out);
      if (m) resolve(m[0]);
    });
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}: ${err}`)));
  });
  return { url, stop: () => proc.kill('SIGTERM') };
}

// launch opens headless Chromium with a persistent context: a private context keeps OPFS
// in memory (design.md §10). A browser that dies while starting, before any page exists (it
// happened once here: SIGSEGV in launchPersistentContext, 2026-11-29), is started once
// more with a new profile; anything after start-up fails the test as before.
export async function launch(retry = true) {
  const profile = tempDir('profile');
  let ctx;
  try {
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      acceptDownloads: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
    });
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    if (!retry) throw err;
    console.error(`launch: Chromium did not start (${err.message.split('\n')[0]}); starting it once more`);
    return launch(false);
  }
  return {
    ctx,
    close: async () => {
      await ctx.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

// pickFiles adds a file input with id to the page and picks the files at paths in it, so
// that the page's scripts can read them as a user's files (document.getElementById(id).files).
export async function pickFiles(page, id, paths) {
  await page.evaluate((id) => {
    const input = document.createElement('input');
    input.type = 'file';
    input.multiple = true;
    input.id = id;
    document.body.append(input);
  }, id);
  await page.setInputFiles(`#${id}`, paths);
}

// models writes a base and two fine-tunes (demo-base, demo-math, demo-code) into a new folder.
export function models(name, ...flags) {
  const dir = tempDir(name);
  execFileSync('go', ['run', './cmd/demomodels', ...flags, dir], { cwd: root, stdio: 'inherit' });
  return dir;
}

// cliMerge runs bin/freelunch merge in dir (model paths in config are relative to it)
// into the folder dir/name.
export function cliMerge(dir, config, seed, name = 'cli-out') {
  const cfg = path.join(dir, `${name}.yml`);
  execFileSync('sh', ['-c', 'cat > "$0"', cfg], { input: config });
  const out = path.join(dir, name);
  execFileSync(path.join(root, 'bin/freelunch'), ['merge', '--quiet', '--random-seed', String(seed), cfg, out], { cwd: dir, stdio: 'inherit' });
  return out;
}

// unzip returns the files of a zip as a Map name → Buffer. It reads the central directory
// (zip64 included), supports the stored method only, which is what the page writes, and
// checks each file's CRC-32.
export function unzip(buf) {
  let eocd = buf.length - 22;
  while (eocd >= 0 && buf.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  if (eocd < 0) throw new Error('zip: no end of central directory');
  let count = buf.readUInt16LE(eocd + 10);
  let cd = buf.readUInt32LE(eocd + 16);
  if (cd === 0xffffffff || count === 0xffff) {
    const loc = buf.readUInt32LE(eocd - 20) === 0x07064b50 ? Number(buf.readBigUInt64LE(eocd - 12)) : -1;
    if (loc < 0) throw new Error('zip: zip64 locator missing');
    count = Number(buf.readBigUInt64LE(loc + 32));
    cd = Number(buf.readBigUInt64LE(loc + 48));
  }
  const files = new Map();
  for (let i = 0; i < count; i++) {
    if (buf.readUInt32LE(cd) !== 0x02014b50) throw new Error('zip: bad central directory');
    const method = buf.readUInt16LE(cd + 10);
    const crc = buf.readUInt32LE(cd + 16);
    let size = buf.readUInt32LE(cd + 24);
    const nameLen = buf.readUInt16LE(cd + 28);
    const extraLen = buf.readUInt16LE(cd + 30);
    const commentLen = buf.readUInt16LE(cd + 32);
    let local = buf.readUInt32LE(cd + 42);
    const name = buf.toString('utf8', cd + 46, cd + 46 + nameLen);
    // zip64 extra field: sizes and offset that did not fit.
    for (let e = cd + 46 + nameLen; e < cd + 46 + nameLen + extraLen;) {
      const id = buf.readUInt16LE(e);
      const len = buf.readUInt16LE(e + 2);
      if (id === 1) {
        let p = e + 4;
        if (buf.readUInt32LE(cd + 24) === 0xffffffff) { size = Number(buf.readBigUInt64LE(p)); p += 16; } // uncompressed, compressed
        if (local === 0xffffffff) local = Number(buf.readBigUInt64LE(p));
      }
      e += 4 + len;
    }
    if (method !== 0) throw new Error(`zip: ${name} is compressed (method ${method}), want stored`);
    const data = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const bytes = buf.subarray(data, data + size);
    if (crc32(bytes) !== crc) throw new Error(`zip: ${name}: CRC-32 ${crc32(bytes).toString(16)}, the zip says ${crc.toString(16)}`);
    files.set(name, bytes);
    cd += 46 + nameLen + extraLen + commentLen;
  }
  return files;
}

export function readBytes(p) {
  return readFileSync(p);
}
