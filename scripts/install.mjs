#!/usr/bin/env node
// npm "install" hook: builds the native addon (node-gyp) and, where nvcc exists, the CUDA library.
// Never fails the install: a backend that does not build is reported in one line and the library falls
// back (cuda -> native -> wasm) at run time.
//
//   HOGWILD_SKIP_NATIVE=1   do not build the native addon
//   HOGWILD_SKIP_CUDA=1     do not build the CUDA library
//   HOGWILD_VERBOSE=1       show the full build output instead of one line per backend
// Full logs of each build go to build/native-build.log and build/cuda-build.log.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const verbose = process.env.HOGWILD_VERBOSE === '1';
const isWin = process.platform === 'win32';

const info = (msg) => console.log(`hogwild-kv: ${msg}`);
const warn = (msg) => console.warn(`hogwild-kv: ${msg}`);
const truthy = (v) => v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
const rel = (p) => path.relative(root, p) || '.';

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function onPath(name) {
  const exts = isWin ? (process.env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';') : [''];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    for (const ext of exts) {
      const p = path.join(dir, name + ext);
      if (isFile(p)) return p;
    }
  }
  return undefined;
}

/** Runs a command; returns { ok, status, output }. Output is captured unless verbose. */
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, {
    cwd: root,
    env: opts.env ?? process.env,
    encoding: 'utf8',
    stdio: verbose ? 'inherit' : ['ignore', 'pipe', 'pipe'],
    maxBuffer: 256 * 1024 * 1024,
    shell: isWin && /\.(cmd|bat)$/i.test(cmd),
  });
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.error) return { ok: false, status: -1, output: `${output}\n${r.error.message}`, spawnError: r.error.message };
  return { ok: r.status === 0, status: r.status, output };
}

function writeLog(name, text) {
  try {
    const dir = path.join(root, 'build');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return rel(file);
  } catch {
    return undefined;
  }
}

/** The most telling line of a failed build's output, shortened. */
function shortCause(output, fallback, useLastLine = false) {
  const lines = output.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  const compiler = lines.find((l) => /\b(fatal )?error:/.test(l) && !/^(gyp|make|npm)\b/.test(l));
  const stack = lines.find((l) => /^gyp ERR! stack Error: /.test(l))?.replace(/^gyp ERR! stack Error: /, '');
  const gyp = lines
    .filter((l) => /^gyp ERR! /.test(l))
    .map((l) => l.replace(/^gyp ERR! /, ''))
    .find((l) => !/^(cwd|node -v|node-gyp -v|command|System|not ok|stack|build error|configure error)\b/.test(l));
  const makeLine = lines.find((l) => /^make(\[\d+\])?: \*\*\*/.test(l));
  const obj = makeLine && /obj\.target\/[^/\]]+\/([^\]]+?)\.o\]/.exec(makeLine)?.[1];
  const make = obj ? `compiling ${obj}.cpp failed${process.env.CXX ? ` with CXX=${process.env.CXX}` : ''}` : makeLine;
  const last = useLastLine ? lines[lines.length - 1] : undefined;
  const pick = compiler ?? make ?? stack ?? gyp ?? last ?? fallback;
  const s = pick.replace(/\s+/g, ' ');
  return s.length > 160 ? `${s.slice(0, 157)}...` : s;
}

// ------------------------------------------------------------------------------------------------
// Native addon
// ------------------------------------------------------------------------------------------------
/** How to run node-gyp: npm's own (npm_config_node_gyp), a local/global install via npx, or PATH. */
function nodeGyp() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && isFile(fromNpm)) return { cmd: process.execPath, pre: [fromNpm] };
  const npx = onPath('npx');
  if (npx && run(npx, ['--no-install', 'node-gyp', '--version']).ok) return { cmd: npx, pre: ['--no-install', 'node-gyp'] };
  const bin = onPath('node-gyp');
  if (bin) return { cmd: bin, pre: [] };
  // npm's bundled copy next to this Node.js (when run outside npm).
  const bundled = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (isFile(bundled)) return { cmd: process.execPath, pre: [bundled] };
  return undefined;
}

/** --nodedir for the headers of this very Node.js when they are installed next to it and npm set none. */
function localNodedir() {
  if (process.env.npm_config_nodedir) return undefined;
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  const header = path.join(prefix, 'include', 'node', 'node_version.h');
  try {
    const text = fs.readFileSync(header, 'utf8');
    const v = (k) => new RegExp(`#define NODE_${k}_VERSION (\\d+)`).exec(text)?.[1];
    if (`${v('MAJOR')}.${v('MINOR')}.${v('PATCH')}` === process.versions.node) return prefix;
  } catch {
    // no local headers: node-gyp uses its cache or downloads them
  }
  return undefined;
}

function buildNative() {
  if (truthy(process.env.HOGWILD_SKIP_NATIVE)) {
    info('HOGWILD_SKIP_NATIVE set, native addon not built');
    return;
  }
  const fallback = 'falling back to the WebAssembly backend. See README for requirements.';
  const gyp = nodeGyp();
  if (!gyp) {
    warn(`native addon build failed (node-gyp not found); ${fallback}`);
    return;
  }
  const args = [...gyp.pre, 'rebuild'];
  const nodedir = localNodedir();
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  const env = { ...process.env };
  if (!env.JOBS && !env.npm_config_jobs) env.JOBS = 'max';
  if (!verbose) info('building the native addon (node-gyp rebuild)...');
  const r = run(gyp.cmd, args, { env });
  const log = verbose ? undefined : writeLog('native-build.log', r.output);
  const logNote = log ? `; log: ${log}` : '';
  const addon = path.join(root, 'build', 'Release', 'hwkv.node');
  if (!r.ok || !isFile(addon)) {
    const cause = r.ok ? 'build/Release/hwkv.node was not produced' : shortCause(r.output, `node-gyp exited with code ${r.status}`);
    warn(`native addon build failed (${cause}${logNote}); ${fallback}`);
    return;
  }
  // Load it once in a child process: catches undefined symbols and a wrong architecture now, not later.
  const probe = run(process.execPath, ['-e', 'const a = require(process.argv[1]); if (!a.cpu) throw new Error("no cpu export"); console.log(JSON.parse(a.cpu.buildInfo()).simd ?? "")', addon]);
  if (!probe.ok) {
    const cause = shortCause(probe.output.replace(/^\s*at .*$/gm, ''), 'it does not load');
    warn(`native addon built but does not load (${cause}); ${fallback}`);
    return;
  }
  const simd = probe.output.trim().split(/\r?\n/).pop();
  info(`native addon built (build/Release/hwkv.node${simd ? `, simd: ${simd}` : ''})`);
}

// ------------------------------------------------------------------------------------------------
// CUDA library
// ------------------------------------------------------------------------------------------------
function findNvcc() {
  const onP = onPath('nvcc');
  if (onP) return onP;
  for (const base of [process.env.CUDA_PATH, process.env.CUDA_HOME]) {
    if (!base) continue;
    const p = path.join(base, 'bin', isWin ? 'nvcc.exe' : 'nvcc');
    if (isFile(p)) return p;
  }
  return undefined;
}

function buildCuda() {
  if (truthy(process.env.HOGWILD_SKIP_CUDA)) {
    info('HOGWILD_SKIP_CUDA set, CUDA backend not built');
    return;
  }
  const nvcc = findNvcc();
  if (!nvcc) {
    info('nvcc not found, CUDA backend not built (run npm run build:cuda with nvcc on PATH)');
    return;
  }
  const script = path.join(root, 'scripts', 'build-cuda.sh');
  if (!isFile(script)) {
    info('scripts/build-cuda.sh not present, CUDA backend not built');
    return;
  }
  const env = { ...process.env, PATH: `${path.dirname(nvcc)}${path.delimiter}${process.env.PATH ?? ''}` };
  if (!verbose) info(`building the CUDA backend with ${nvcc}...`);
  const r = run('bash', [script], { env });
  const log = verbose ? undefined : writeLog('cuda-build.log', r.output);
  const logNote = log ? `; log: ${log}` : '';
  if (!r.ok) {
    const cause = shortCause(r.output, r.spawnError ?? `build-cuda.sh exited with code ${r.status}`, true);
    warn(`CUDA backend build failed (${cause}${logNote}); the native and WebAssembly backends are unaffected`);
    return;
  }
  info('CUDA backend built (prebuilds/cuda/libhwkv_cuda.so)');
}

for (const step of [buildNative, buildCuda]) {
  try {
    step();
  } catch (e) {
    warn(`${step === buildNative ? 'native addon' : 'CUDA backend'} build step failed unexpectedly (${e?.message ?? e})`);
  }
}
process.exit(0);
