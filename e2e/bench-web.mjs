// Run by `make bench-web` (not a test: `node --test e2e/` runs only *.test.mjs and
// `make test-e2e-big` names its file). For task_arithmetic, ties and dare_ties on the
// generated bench models of `make bench` (3 × 1.08 GB BF16 at 1G), it times the merge in
// headless Chromium through the real page and Worker, from the click on Merge to the
// download link (timed in the page), then `freelunch merge --threads 1` of the same
// config, back to back (and `bin/freelunch-portable`, a build without the vector loops,
// when it exists), and prints one table row per method. The page's zip is not checked
// here (the e2e tests do that on small models); the page's summary gives the peak
// WebAssembly memory. On Linux it also gives the CPU time of all of Chromium's processes
// during each page run. First, the page's read floor: every input byte read in the page by
// web/reader.js, as a merge reads them (one helper Worker, 8 MiB ranges, buffers given
// back), and nothing else.
//
//   node e2e/bench-web.mjs [--dir .cache/bench/1G] [--size 1G] [--methods a,b] [--runs 3]
//                          [--no-native] [--no-browser] [--cpuprofile DIR]
//
// Each measurement is taken --runs times (the read floor, then per method the page, the
// native build and the portable one in turn) and the table gives the median, as make
// bench does: on the development VM one page run of the same merge varies by a second.
// --cpuprofile writes the merge Worker's V8 CPU profile of each method's first run (Chrome
// DevTools Protocol, Profiler domain on the auto-attached dedicated Workers) into DIR, as
// METHOD.cpuprofile, and prints its top functions by self time.
import { execFileSync, spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launch, pickFiles, root, startServer, tempDir } from './helpers.mjs';

function args(argv) {
  const a = { size: '1G', dir: '', methods: 'task_arithmetic,ties,dare_ties', native: true, browser: true, cpuprofile: '', runs: '3' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--no-native') a.native = false;
    else if (k === '--no-browser') a.browser = false;
    else if (['--dir', '--size', '--methods', '--cpuprofile', '--runs'].includes(k) && i + 1 < argv.length) a[k.slice(2)] = argv[++i];
    else throw new Error(`bench-web: unknown argument ${k}`);
  }
  if (!/^[1-9]\d*$/.test(a.runs)) throw new Error(`bench-web: --runs ${a.runs}: want a whole number of at least 1`);
  a.runs = Number(a.runs);
  a.dir = path.resolve(a.dir || path.join(root, '.cache', 'bench', a.size));
  return a;
}

const opts = args(process.argv.slice(2));
const families = ['base', 'ft1', 'ft2'];

function shards(model) {
  const d = path.join(opts.dir, model);
  return readdirSync(d).filter((f) => f.endsWith('.safetensors')).map((f) => path.join(d, f));
}

const missing = !existsSync(path.join(opts.dir, 'complete')) ||
  families.some((m) => !existsSync(path.join(opts.dir, m)) || shards(m).length === 0) ||
  opts.methods.split(',').some((m) => !existsSync(path.join(opts.dir, `${m}.yml`)));
if (missing) {
  console.error(`bench-web: no generated models in ${opts.dir}; run \`make bench BENCH_SIZE=${opts.size}\` first (it generates them), or point CACHE= at a folder holding ${opts.size}/{base,ft1,ft2}`);
  process.exit(2);
}

const files = families.flatMap(shards);
const inputBytes = files.reduce((n, f) => n + statSync(f).size, 0);

// Both sides read from a warm page cache: read every input byte once first.
async function warm() {
  for (const f of files) {
    await new Promise((resolve, reject) => {
      const s = createReadStream(f, { highWaterMark: 8 << 20 });
      s.on('data', () => {});
      s.on('end', resolve);
      s.on('error', reject);
    });
  }
}

// chromiumCPU returns the CPU seconds (user + system) used so far by the Chromium
// processes among this process's descendants, or NaN where /proc is missing. A process
// that exits during a run takes its time with it; the page's renderer and the browser,
// which do the work, live through all runs.
function chromiumCPU() {
  let procs;
  try {
    procs = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return NaN;
  }
  const stat = new Map(); // pid → [ppid, ticks, Chromium's]
  for (const pid of procs) {
    try {
      const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' '); // from field 3, the state
      stat.set(Number(pid), [Number(f[1]), Number(f[11]) + Number(f[12]), /chrom/i.test(st.slice(st.indexOf('(')))]);
    } catch {}
  }
  let ticks = 0;
  for (const [pid, [, t, chromium]] of stat) {
    if (!chromium) continue; // the server is a child too
    for (let p = pid; p > 1 && stat.has(p); p = stat.get(p)[0]) {
      if (stat.get(p)[0] === process.pid) {
        ticks += t;
        break;
      }
    }
  }
  return ticks / 100; // USER_HZ
}

// The page names a folder model by its folder: the configs' absolute paths become names.
function browserConfig(method) {
  let cfg = readFileSync(path.join(opts.dir, `${method}.yml`), 'utf8');
  for (const m of families) cfg = cfg.split(path.join(opts.dir, m)).join(m);
  return cfg;
}

// profileWorker attaches to the page's dedicated Workers as they start and starts V8's
// sampling profiler in each; stop() returns the profile of the busiest (most samples not
// idle): the merge's, not the page's service Worker or the next job's, started ahead.
async function profileWorker(ctx, page) {
  const cdp = await ctx.newCDPSession(page);
  let next = 1;
  const waiting = new Map();
  const workers = [];
  cdp.on('Target.receivedMessageFromTarget', ({ sessionId, message }) => {
    const m = JSON.parse(message);
    const w = waiting.get(`${sessionId}/${m.id}`);
    if (w) {
      waiting.delete(`${sessionId}/${m.id}`);
      if (m.error) w.reject(new Error(m.error.message));
      else w.resolve(m.result);
    }
  });
  const send = (sessionId, method, params = {}) => new Promise((resolve, reject) => {
    const id = next++;
    waiting.set(`${sessionId}/${id}`, { resolve, reject });
    cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params }) }).catch(reject);
  });
  cdp.on('Target.attachedToTarget', async ({ sessionId, targetInfo }) => {
    if (targetInfo.type !== 'worker') return;
    workers.push(sessionId);
    await send(sessionId, 'Profiler.enable');
    await send(sessionId, 'Profiler.setSamplingInterval', { interval: 1000 });
    await send(sessionId, 'Profiler.start');
    await send(sessionId, 'Runtime.runIfWaitingForDebugger');
  });
  await cdp.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: true, flatten: false });
  return {
    async stop() {
      let best = null;
      let most = -1;
      for (const s of workers) {
        const profile = await send(s, 'Profiler.stop').then((r) => r.profile, () => null);
        const t = profile ? busy(profile) : -1;
        if (t > most) [best, most] = [profile, t];
      }
      if (!best) throw new Error('bench-web: no Worker was profiled');
      return best;
    },
  };
}

// busy returns the seconds of a V8 CPU profile's samples that are not idle.
function busy(profile) {
  const idle = new Set(profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  let t = 0;
  for (let i = 0; i < profile.samples.length; i++) if (!idle.has(profile.samples[i])) t += (profile.timeDeltas[i + 1] ?? 0) / 1e6;
  return t;
}

// top sums a V8 CPU profile's samples by function (self time) and returns the n largest.
function top(profile, n) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map();
  const dt = profile.timeDeltas;
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]);
    const f = node.callFrame;
    const name = `${f.functionName || '(anonymous)'} ${f.url ? path.basename(f.url) : ''}`.trim();
    const t = (dt[i + 1] ?? 0) / 1e6;
    self.set(name, (self.get(name) || 0) + t);
    total += t;
  }
  return { total, rows: [...self].sort((a, b) => b[1] - a[1]).slice(0, n) };
}

// browserRun times one merge in a new page; with profile (and --cpuprofile), it writes and
// prints the merge Worker's CPU profile.
async function browserRun(browser, url, method, profile) {
  const page = await browser.ctx.newPage();
  try {
    const prof = opts.cpuprofile && profile ? await profileWorker(browser.ctx, page) : null;
    // The page terminates the merge's Worker when it is done, and a profile can only be
    // taken from a live one: when profiling, terminate() is kept from the page.
    if (prof) await page.addInitScript(() => { Worker.prototype.terminate = function () {}; });
    await page.goto(url);
    await page.waitForFunction(() => document.querySelector('#method').options.length > 0);
    await page.setInputFiles('[data-testid=base-input]', path.join(opts.dir, 'base'));
    await page.setInputFiles('[data-testid=models-input]', path.join(opts.dir, 'ft1'));
    await page.setInputFiles('[data-testid=models-input]', path.join(opts.dir, 'ft2'));
    await page.fill('[data-testid=config]', browserConfig(method));
    await page.waitForSelector('[data-testid=merge]:enabled', { timeout: 60000 });
    // The time is taken in the page, from the click's pointerdown to the moment the
    // download link (or an error) is in the document: Playwright's click and its polling
    // for the link added 0.25 s to each run, timed from here (tenth session).
    await page.evaluate(() => {
      const t = (window.benchTimes = {});
      document.addEventListener('pointerdown', () => { t.start ??= performance.now(); }, true);
      new MutationObserver(() => {
        if (document.querySelector('[data-testid=download], [data-testid=error]:not(:empty)')) t.end ??= performance.now();
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    const cpu0 = chromiumCPU();
    await page.click('[data-testid=merge]');
    await page.waitForSelector('[data-testid=download], [data-testid=error]:not(:empty)', { timeout: 3600000 });
    const cpu = chromiumCPU() - cpu0;
    const t = await page.evaluate(() => window.benchTimes);
    const seconds = (t.end - t.start) / 1000;
    const error = await page.textContent('[data-testid=error]');
    if (error) throw new Error(`bench-web: ${method} in the browser: ${error}`);
    const memory = await page.textContent('[data-key="peak WebAssembly memory"]');
    if (prof) {
      mkdirSync(opts.cpuprofile, { recursive: true });
      const profile = await prof.stop();
      const file = path.join(opts.cpuprofile, `${method}.cpuprofile`);
      writeFileSync(file, JSON.stringify(profile));
      const t = top(profile, 25);
      console.log(`# ${method}: Worker CPU profile ${file}, ${t.total.toFixed(1)} s sampled; top self time:`);
      for (const [name, s] of t.rows) console.log(`#   ${s.toFixed(2).padStart(8)} s ${(100 * s / t.total).toFixed(1).padStart(5)}%  ${name}`);
    }
    return { seconds, memory, cpu };
  } finally {
    await page.close();
  }
}

// readFloor reads every input file in the page through web/reader.js as worker.js has it
// do for a merge (one helper for all files, 8 MiB ranges in order, each buffer given back
// when it arrives) and returns the time from the first request to the last byte.
async function readFloor(browser, url) {
  const page = await browser.ctx.newPage();
  try {
    await page.goto(url);
    await pickFiles(page, 'bench-files', files);
    const cpu0 = chromiumCPU();
    const r = await page.evaluate(() => new Promise((resolve, reject) => {
      const files = [...document.getElementById('bench-files').files];
      const h = new Worker('web/reader.js');
      const start = performance.now();
      let left = 0;
      let bytes = 0;
      files.forEach((file, key) => {
        for (let off = 0; off < file.size; off += 8 << 20) {
          h.postMessage({ id: left++, key, file, off, end: Math.min(file.size, off + (8 << 20)) });
        }
      });
      h.onmessage = ({ data }) => {
        if (data.error) return reject(new Error(data.error));
        bytes += data.n;
        h.postMessage({ recycle: data.buf }, [data.buf]);
        if (--left === 0) {
          h.terminate();
          resolve({ seconds: (performance.now() - start) / 1000, bytes });
        }
      };
    }));
    if (r.bytes !== inputBytes) throw new Error(`bench-web: the read floor read ${r.bytes} bytes, want ${inputBytes}`);
    return { seconds: r.seconds, cpu: chromiumCPU() - cpu0 };
  } finally {
    await page.close();
  }
}

// nativeRun times `name merge --threads 1` of cfg: bin/freelunch (built with the vector
// loops) or bin/freelunch-portable (a plain go build: the loops WebAssembly runs too).
function nativeRun(cfg, name = 'freelunch') {
  const out = tempDir('bench-native');
  const bin = path.join(root, 'bin', name);
  const argv = ['merge', '--threads', '1', '--quiet', '--overwrite', cfg, out];
  const start = performance.now();
  const r = spawnSync(bin, argv, { stdio: 'inherit' });
  const seconds = (performance.now() - start) / 1000;
  rmSync(out, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`bench-web: ${bin} ${argv.join(' ')} failed (${r.status ?? r.signal})`);
  return { seconds, command: `${bin} ${argv.slice(0, -1).join(' ')} OUT_DIR` };
}

const gbs = (s) => (s ? inputBytes / 1e9 / s : 0);

// median returns the run of median time (the upper one of an even count), as make bench
// does, or undefined for none; the peak WebAssembly memory is the largest of all runs.
function median(runs) {
  if (runs.length === 0) return undefined;
  const m = { ...[...runs].sort((a, b) => a.seconds - b.seconds)[runs.length >> 1] };
  const mem = runs.map((r) => r.memory).filter(Boolean);
  if (mem.length) m.memory = mem.reduce((a, b) => (parseFloat(b) > parseFloat(a) ? b : a));
  return m;
}

const times = (runs) => (runs.length ? runs.map((r) => `${r.seconds.toFixed(1)} s`).join(', ') : '-');
const cell = (v, w) => String(v).padStart(w);

console.log(`# machine: ${os.cpus().length} cores (${os.cpus()[0]?.model || '?'}), load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log(`# chromium: ${process.env.CHROMIUM || '/usr/bin/chromium'} ${execFileSync(process.env.CHROMIUM || '/usr/bin/chromium', ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim()}`);
console.log(`# inputs: ${files.length} files, ${inputBytes} bytes in ${opts.dir} (page cache warmed first)`);
await warm();

const server = opts.browser ? await startServer() : null;
const browser = opts.browser ? await launch() : null;
const rows = [];
const commands = [];
try {
  if (browser) {
    const r = [];
    for (let i = 0; i < opts.runs; i++) r.push(await readFloor(browser, server.url));
    rows.push({ method: 'read floor', browser: median(r) });
    commands.push(`read floor: ${server.url}, the input files through web/reader.js in the page, nothing else`);
    console.log(`# read floor: browser ${times(r)} (load ${os.loadavg()[0].toFixed(2)})`);
  }
  for (const method of opts.methods.split(',')) {
    const cfg = path.join(opts.dir, `${method}.yml`);
    const row = { method };
    const b = [], n = [], p = [];
    const portable = opts.native && existsSync(path.join(root, 'bin', 'freelunch-portable'));
    for (let i = 0; i < opts.runs; i++) {
      if (browser) b.push(await browserRun(browser, server.url, method, i === 0));
      if (opts.native) n.push(nativeRun(cfg));
      if (portable) p.push(nativeRun(cfg, 'freelunch-portable'));
    }
    if (browser) {
      commands.push(`browser: ${server.url} (bin/freelunch-server), models ${families.map((m) => path.join(opts.dir, m)).join(' ')}, config ${cfg} with the folder names, Merge clicked, timed in the page from its pointerdown to the download link`);
      row.browser = median(b);
    }
    if (opts.native) {
      row.native = median(n);
      commands.push(`native: ${row.native.command}`);
    }
    if (portable) {
      row.portable = median(p);
      commands.push(`native portable: ${row.portable.command}`);
    }
    rows.push(row);
    console.log(`# ${method}: browser ${times(b)}, native ${times(n)}, portable ${times(p)} (load ${os.loadavg()[0].toFixed(2)})`);
  }
} finally {
  await browser?.close();
  server?.stop();
}

console.log();
console.log(['method', 'size', 'browser', 'browser GB/s', 'browser CPU', 'peak wasm mem', 'native 1T', 'native GB/s', 'browser/native', 'portable 1T', 'browser/port.'].map((h, i) => i ? cell(h, 15) : h.padEnd(16)).join(''));
for (const r of rows) {
  const b = r.browser?.seconds;
  const n = r.native?.seconds;
  const p = r.portable?.seconds;
  console.log([
    r.method.padEnd(16),
    cell(opts.size, 15),
    cell(b ? `${b.toFixed(1)} s` : '-', 15),
    cell(b ? gbs(b).toFixed(3) : '-', 15),
    cell(r.browser?.cpu >= 0 ? `${r.browser.cpu.toFixed(1)} s` : '-', 15),
    cell(r.browser?.memory || '-', 15),
    cell(n ? `${n.toFixed(1)} s` : '-', 15),
    cell(n ? gbs(n).toFixed(3) : '-', 15),
    cell(b && n ? `${(100 * n / b).toFixed(1)}%` : '-', 15),
    cell(p ? `${p.toFixed(1)} s` : '-', 15),
    cell(b && p ? `${(100 * p / b).toFixed(1)}%` : '-', 15),
  ].join(''));
}
console.log();
console.log(`# median of ${opts.runs} run${opts.runs > 1 ? 's' : ''} each (all times above); GB/s = input bytes (${inputBytes}) / time; browser CPU = user + system time of all Chromium's processes during the page run; load at the end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
for (const c of commands) console.log(`# ${c}`);
