/**
 * Model-engine throughput against llama.cpp (`npm run bench:engine`; `-- --json` for JSON only).
 *
 * Writes (once, cached in os.tmpdir()/hogwild-bench/) a random-weight llama GGUF of realistic shape — dim 768,
 * 12 layers, 12 heads, 4 KV heads, ffn 2048, a 32000-token SentencePiece vocabulary — in f32 and in f16, and
 * runs on each: our native addon (T threads), our WASM module (1 thread) and node-llama-cpp 3.21.1 on the CPU
 * (T threads, a child process running bench/peer/run-llama.mjs). Same file, same prompt token ids, greedy.
 *
 *   prefill tok/s = prompt tokens / time to evaluate the whole prompt (one batch) and pick the first token
 *   decode tok/s  = (M - 1) / time of the M - 1 following single-token steps (each: forward + greedy pick)
 *
 * Each (backend, type) pair: load, 1 warm-up generation, `runs` timed generations; the whole sequence is
 * repeated `rounds` times (models reloaded). The CPU time other processes take meanwhile is measured per
 * round (/proc); a round is clean when they used ≤ `clean` cores. Cells lacking a clean round get extra
 * rounds (up to `max-rounds`); cells are medians over the runs of clean rounds (all rounds when none was
 * clean). See bench/README.md.
 *
 * Options: --json, --quick, --types=f32,f16, --threads=N (default: all cores), --prompt=N (128), --decode=M (64),
 * --runs=R (3), --rounds=K (2), --max-rounds=K (rounds + 3), --clean=C (0.15), --no-peer (or HOGWILD_BENCH_NO_PEER=1), --no-wasm, --no-native.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../ts/index.ts';
import { ensureRandomLlama, DEFAULT_LLAMA } from './gguf-writer.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PEER_DIR = path.join(HERE, 'peer');
const PEER_VERSION = '3.21.1';

// ---------------------------------------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const opt = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const JSON_ONLY = flag('json');
const QUICK = flag('quick');
const TYPES = (opt('types') ?? 'f32,f16').split(',') as ('f32' | 'f16')[];
const THREADS = Number(opt('threads') ?? os.cpus().length);
const N_PROMPT = Number(opt('prompt') ?? 128);
const N_DECODE = Number(opt('decode') ?? (QUICK ? 32 : 64));
const RUNS = Number(opt('runs') ?? (QUICK ? 2 : 3));
const ROUNDS = Number(opt('rounds') ?? (QUICK ? 1 : 2));
/** Extra rounds, only for cells that have no clean round yet. */
const MAX_ROUNDS = Number(opt('max-rounds') ?? (QUICK ? ROUNDS : ROUNDS + 3));
/** A round is clean when other processes used at most this many cores meanwhile. */
const CLEAN = Number(opt('clean') ?? 0.15);
const NO_PEER = flag('no-peer') || process.env.HOGWILD_BENCH_NO_PEER === '1';
const NO_WASM = flag('no-wasm');
const NO_NATIVE = flag('no-native');
for (const t of TYPES) if (t !== 'f32' && t !== 'f16') throw new Error(`--types: unknown type ${t} (f32, f16)`);
if (N_DECODE < 2) throw new Error('--decode must be at least 2');

const log = (s: string) => {
  if (!JSON_ONLY) console.log(s);
};
// progress goes to stderr so that `--json > file` stays clean
const progress = (s: string) => process.stderr.write(`${s}\n`);

// ---------------------------------------------------------------------------------------------------------
// Prompt: BOS then deterministic ids spread over the word pieces (259.. are past <unk>, <s>, </s>, bytes)

const PROMPT: number[] = [1];
for (let i = 1; i < N_PROMPT; i++) PROMPT.push(259 + ((i * 7919) % (DEFAULT_LLAMA.nVocab - 259)));

// ---------------------------------------------------------------------------------------------------------
// Measurement

interface Run {
  prefillMs: number;
  decodeMs: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  tokens: number[];
}
type BackendName = 'native' | 'wasm' | 'node-llama-cpp';
interface Cell {
  backend: BackendName;
  type: 'f32' | 'f16';
  threads: number;
  runs: Run[];
  loadMs: number[];
  /** Round of each run. */
  roundOf: number[];
  /** Average number of cores used by other processes while this cell ran (load, warm-up, runs), by round. */
  otherCores: Map<number, number>;
  details?: Record<string, unknown>;
  error?: string;
}

/**
 * CPU time of the whole machine and of this process (children waited for included), in clock ticks, from
 * /proc (Linux; null elsewhere). The difference over a cell = CPU used by other processes meanwhile.
 */
function cpuTicks(): { total: number; busy: number; ours: number } | null {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
    const busy = total - cpu[3]! - cpu[4]!; // minus idle and iowait
    const self = readFileSync('/proc/self/stat', 'utf8');
    const f = self.slice(self.lastIndexOf(')') + 2).split(' ').map(Number); // fields from 3 (state) on
    const ours = f[11]! + f[12]! + f[13]! + f[14]!; // utime stime cutime cstime (fields 14-17)
    return { total, busy, ours };
  } catch {
    return null;
  }
}

const median = (xs: number[]) => {
  const s = xs.slice().sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
};

async function measureOurs(backend: 'native' | 'wasm', file: string, threads: number, cell: Cell): Promise<void> {
  const t0 = performance.now();
  const model = await loadModel(file, { backend, threads });
  cell.loadMs.push(performance.now() - t0);
  try {
    const info = model.info();
    cell.details = { threads: info.threads, mapped: info.mapped, simd: (model.backend as { details?: { simd?: string } }).details?.simd };
    const once = async (): Promise<Run> => {
      const r = await model.generate(PROMPT, { maxTokens: N_DECODE, temperature: 0, stopOnEog: false, prefillChunk: PROMPT.length }).result;
      if (r.promptTokens !== PROMPT.length) throw new Error(`prompt became ${r.promptTokens} tokens`);
      return { ...r.timings, tokens: r.tokens };
    };
    await once(); // warm-up
    for (let i = 0; i < RUNS; i++) cell.runs.push(await once());
  } finally {
    model.dispose();
  }
}

function measurePeer(file: string, threads: number, cell: Cell): void {
  const script = path.join(PEER_DIR, 'run-llama.mjs');
  const r = spawnSync(
    process.execPath,
    [script, `--model=${file}`, `--threads=${threads}`, `--prompt=${PROMPT.join(',')}`, `--decode=${N_DECODE}`, `--runs=${RUNS}`, '--warmup=1'],
    { encoding: 'utf8', timeout: 10 * 60_000, maxBuffer: 64 << 20 },
  );
  if (r.status !== 0) throw new Error(`run-llama.mjs exited with ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim().slice(-2000)}`);
  const line = r.stdout.trim().split('\n').pop()!;
  const out = JSON.parse(line) as { runs: Run[]; loadMs: number } & Record<string, unknown>;
  cell.runs.push(...out.runs);
  cell.loadMs.push(out.loadMs);
  const { runs: _r, loadMs: _l, ...details } = out;
  cell.details = details;
}

// ---------------------------------------------------------------------------------------------------------
// Peer install (on demand)

function peerInstalled(): boolean {
  const pj = path.join(PEER_DIR, 'node_modules', 'node-llama-cpp', 'package.json');
  if (!existsSync(pj)) return false;
  const v = (JSON.parse(readFileSync(pj, 'utf8')) as { version: string }).version;
  if (v !== PEER_VERSION) {
    progress(`bench/peer has node-llama-cpp ${v}, expected ${PEER_VERSION}: reinstalling`);
    return false;
  }
  return true;
}

/** Installs bench/peer when needed; returns why the peer is skipped, or null when it can run. */
function ensurePeer(): string | null {
  if (NO_PEER) return 'skipped on request (--no-peer / HOGWILD_BENCH_NO_PEER=1)';
  if (peerInstalled()) return null;
  const cmd = ['install', '--prefix', path.relative(process.cwd(), PEER_DIR) || '.', '--no-audit', '--no-fund'];
  progress(`node-llama-cpp ${PEER_VERSION} is not installed in bench/peer (it is only needed for this benchmark).`);
  progress(`running: npm ${cmd.join(' ')}   (~700 MB of prebuilt binaries; set HOGWILD_BENCH_NO_PEER=1 to skip)`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, cmd, { stdio: ['ignore', 'inherit', 'inherit'], timeout: 20 * 60_000, shell: process.platform === 'win32' });
  if (r.status !== 0 || !peerInstalled()) return `npm install in bench/peer failed (${r.status ?? r.signal ?? r.error?.message}); run it by hand or set HOGWILD_BENCH_NO_PEER=1`;
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// Main

function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

const started = performance.now();
const mach = machine();
if (mach.loadavg[0]! > 0.5 * mach.cores) progress(`note: load average ${mach.loadavg[0]} on ${mach.cores} cores: other work is running, numbers will be noisy`);

const files: Record<string, string> = {};
for (const t of TYPES) files[t] = ensureRandomLlama({ type: t }, progress);
const peerSkip = ensurePeer();
if (peerSkip) progress(`SKIP node-llama-cpp: ${peerSkip}`);

const backends: BackendName[] = [...(NO_NATIVE ? [] : (['native'] as const)), ...(peerSkip ? [] : (['node-llama-cpp'] as const)), ...(NO_WASM ? [] : (['wasm'] as const))];
const cells = new Map<string, Cell>();
const key = (b: string, t: string) => `${b}/${t}`;
for (const t of TYPES) for (const b of backends) cells.set(key(b, t), { backend: b, type: t, threads: b === 'wasm' ? 1 : THREADS, runs: [], loadMs: [], roundOf: [], otherCores: new Map() });
const isClean = (c: Cell, round: number) => (c.otherCores.get(round) ?? 0) <= CLEAN;
const hasClean = (c: Cell) => [...new Set(c.roundOf)].some((r) => isClean(c, r));
/** The runs a cell reports: those of clean rounds when there are any, else all. */
const usedRuns = (c: Cell) => (hasClean(c) ? c.runs.filter((_, i) => isClean(c, c.roundOf[i]!)) : c.runs);

for (let round = 0; round < MAX_ROUNDS; round++) {
  const needs = (c: Cell) => !c.error && (round < ROUNDS || !hasClean(c));
  if (![...cells.values()].some(needs)) break;
  for (const t of TYPES) {
    for (const b of backends) {
      const cell = cells.get(key(b, t))!;
      if (!needs(cell)) continue;
      progress(`[round ${round + 1}/${ROUNDS}${round >= ROUNDS ? ' (extra: no clean round yet)' : ''}] ${b} ${t}, ${cell.threads} thread(s)…`);
      const c0 = cpuTicks();
      const n0 = cell.runs.length;
      try {
        if (b === 'node-llama-cpp') measurePeer(files[t]!, THREADS, cell);
        else await measureOurs(b, files[t]!, cell.threads, cell);
        const c1 = cpuTicks();
        if (c0 && c1 && c1.total > c0.total) {
          const others = (c1.busy - c0.busy - (c1.ours - c0.ours)) / (c1.total - c0.total);
          cell.otherCores.set(round, Math.max(0, Math.round(others * mach.cores * 100) / 100));
        }
        for (let i = n0; i < cell.runs.length; i++) cell.roundOf.push(round);
      } catch (e) {
        cell.error = (e as Error).message;
        progress(`  ${b} ${t} failed: ${cell.error}`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Report

interface Row {
  backend: BackendName;
  type: string;
  threads: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  prefillMsMedian: number;
  decodeMsPerTokenMedian: number;
  samples: number;
  /** Rounds whose runs are reported (other load <= --clean), of all rounds; 0 clean = all rounds used. */
  cleanRounds: string;
  /** Best run (max tok/s): closer to the unloaded speed when other processes interfere. */
  prefillTokensPerSecondBest: number;
  decodeTokensPerSecondBest: number;
  /** Every timed run, in order: [round, prefill tok/s, decode tok/s]. */
  perRun: [number, number, number][];
  /** Cores used by other processes during the cell, per round it ran in. */
  otherCores: Record<number, number>;
  loadMsMedian: number;
  /** Greedy tokens equal to those of the reference (node-llama-cpp, else native) up to this index. */
  tokensAgree?: string;
  prefillVsPeer?: number;
  decodeVsPeer?: number;
  prefillVsNative?: number;
  decodeVsNative?: number;
  details?: Record<string, unknown>;
  error?: string;
}

function agreement(a: number[], b: number[]): string {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i === a.length && i === b.length ? 'all' : `first ${i}/${Math.max(a.length, b.length)}`;
}

const rows: Row[] = [];
for (const t of TYPES) {
  const peer = cells.get(key('node-llama-cpp', t));
  const native = cells.get(key('native', t));
  const rate = (c: Cell | undefined, k: 'prefillTokensPerSecond' | 'decodeTokensPerSecond') => (c && !c.error && c.runs.length ? median(usedRuns(c).map((r) => r[k])) : NaN);
  for (const b of backends) {
    const c = cells.get(key(b, t))!;
    const row: Row = {
      backend: b,
      type: t,
      threads: c.threads,
      prefillTokensPerSecond: rate(c, 'prefillTokensPerSecond'),
      decodeTokensPerSecond: rate(c, 'decodeTokensPerSecond'),
      prefillMsMedian: median(usedRuns(c).map((r) => r.prefillMs)),
      decodeMsPerTokenMedian: median(usedRuns(c).map((r) => r.decodeMs / (r.tokens.length - 1))),
      samples: usedRuns(c).length,
      cleanRounds: `${[...c.otherCores.keys()].filter((r) => isClean(c, r)).length}/${c.otherCores.size || new Set(c.roundOf).size}`,
      prefillTokensPerSecondBest: Math.max(...c.runs.map((r) => r.prefillTokensPerSecond)),
      decodeTokensPerSecondBest: Math.max(...c.runs.map((r) => r.decodeTokensPerSecond)),
      perRun: c.runs.map((r, i) => [c.roundOf[i]!, Math.round(r.prefillTokensPerSecond * 10) / 10, Math.round(r.decodeTokensPerSecond * 10) / 10]),
      otherCores: Object.fromEntries(c.otherCores),
      loadMsMedian: median(c.loadMs),
      details: c.details,
      error: c.error,
    };
    const ref = peer && !peer.error && peer.runs.length ? peer : native && !native.error && native.runs.length ? native : undefined;
    if (ref && ref !== c && c.runs.length) row.tokensAgree = agreement(c.runs[0]!.tokens, ref.runs[0]!.tokens);
    if (b !== 'node-llama-cpp' && peer) {
      row.prefillVsPeer = row.prefillTokensPerSecond / rate(peer, 'prefillTokensPerSecond');
      row.decodeVsPeer = row.decodeTokensPerSecond / rate(peer, 'decodeTokensPerSecond');
    }
    if (b === 'wasm' && native) {
      row.prefillVsNative = row.prefillTokensPerSecond / rate(native, 'prefillTokensPerSecond');
      row.decodeVsNative = row.decodeTokensPerSecond / rate(native, 'decodeTokensPerSecond');
    }
    rows.push(row);
  }
}

// targets of the issue
const targets: { target: string; value: number; pass: boolean; disturbed: boolean }[] = [];
for (const t of TYPES) {
  const row = (b: BackendName) => rows.find((r) => r.backend === b && r.type === t);
  const nat = row('native');
  const wasm = row('wasm');
  const peer = row('node-llama-cpp');
  const noisy = (...rs: (Row | undefined)[]) => rs.some((r) => r && r.cleanRounds.startsWith('0/'));
  const add = (target: string, value: number | undefined, min: number, other: Row | undefined, self: Row | undefined) => {
    if (value !== undefined && Number.isFinite(value)) targets.push({ target, value, pass: value >= min, disturbed: noisy(self, other) });
  };
  add(`native decode ≥ 0.8× node-llama-cpp (${t})`, nat?.decodeVsPeer, 0.8, peer, nat);
  add(`native prefill ≥ 0.5× node-llama-cpp (${t})`, nat?.prefillVsPeer, 0.5, peer, nat);
  add(`WASM decode ≥ 0.3× native (${t})`, wasm?.decodeVsNative, 0.3, nat, wasm);
}

const seconds = (performance.now() - started) / 1000;
const report = {
  date: new Date().toISOString(),
  machine: { ...mach, loadavgEnd: os.loadavg().map((x) => Math.round(x * 100) / 100) },
  model: { ...DEFAULT_LLAMA, type: undefined, files },
  prompt: { tokens: PROMPT.length, decodeTokens: N_DECODE },
  runs: RUNS,
  rounds: ROUNDS,
  maxRounds: MAX_ROUNDS,
  clean: CLEAN,
  threads: THREADS,
  peer: peerSkip ? { skipped: peerSkip } : { package: 'node-llama-cpp', version: PEER_VERSION },
  rows,
  targets,
  seconds: Math.round(seconds * 10) / 10,
};

if (JSON_ONLY) {
  console.log(JSON.stringify(report, null, 2));
} else {
  const f = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(d));
  const fx = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '—' : `${x.toFixed(2)}×`);
  log('');
  log(`engine benchmark — ${mach.cpu}, ${mach.cores} cores, ${mach.os}, Node ${mach.node}, ${report.date}`);
  log(
    `model: random llama d${DEFAULT_LLAMA.nEmbd} L${DEFAULT_LLAMA.nLayer} H${DEFAULT_LLAMA.nHead}/${DEFAULT_LLAMA.nKvHead} ff${DEFAULT_LLAMA.nFf} V${DEFAULT_LLAMA.nVocab}; ` +
      `prompt ${PROMPT.length} tokens, decode ${N_DECODE} tokens; medians of ${RUNS}×${ROUNDS} runs after warm-up`,
  );
  log('');
  const head = ['backend', 'type', 'thr', 'prefill tok/s', 'decode tok/s', 'prefill vs llama', 'decode vs llama', 'wasm/native prefill', 'wasm/native decode', 'tokens = ref', 'clean rounds', 'other load'];
  const table = rows.map((r) =>
    r.error
      ? [r.backend, r.type, String(r.threads), 'ERROR', r.error.slice(0, 60), '', '', '', '', '', '', '']
      : [
          r.backend,
          r.type,
          String(r.threads),
          f(r.prefillTokensPerSecond),
          f(r.decodeTokensPerSecond),
          fx(r.prefillVsPeer),
          fx(r.decodeVsPeer),
          fx(r.prefillVsNative),
          fx(r.decodeVsNative),
          r.tokensAgree ?? 'ref',
          r.cleanRounds,
          Object.values(r.otherCores).length ? Object.values(r.otherCores).map((x) => x.toFixed(2)).join('/') : '—',
        ],
  );
  log(`| ${head.join(' | ')} |`);
  log(`|${head.map((h, i) => (i < 3 ? '---' : '---:')).join('|')}|`);
  for (const r of table) log(`| ${r.join(' | ')} |`);
  log('');
  for (const t of targets) log(`${t.pass ? 'PASS' : 'FAIL'}  ${t.target}: ${t.value.toFixed(2)}×${t.disturbed ? '   (disturbed: no clean round, rerun on a quiet machine)' : ''}`);
  if (peerSkip) log(`node-llama-cpp: ${peerSkip}`);
  log(
    `other load = cores used by other processes while the row ran, per round; cells are medians over the runs of clean rounds ` +
      `(other load ≤ ${CLEAN}), or over all rounds when none was clean (clean rounds 0/n: treat that row as disturbed).`,
  );
  log(`load average ${mach.loadavg.join(' ')} at start, ${report.machine.loadavgEnd.join(' ')} at end; ${report.seconds} s`);
  log('');
  log(`JSON: ${JSON.stringify(report)}`);
}
