/**
 * AQUA-KV cache cost (`npm run bench:aquakv`; `-- --json` for JSON only).
 *
 * 1. Codec throughput on the block store alone (one thread), geometry of the engine's benchmark model
 *    (12 layers, 4 KV heads x head_dim 64: C = 256), 512 tokens (320 compressed), chunks of 64, random predictors:
 *      encode  tokens/s = compressed tokens / (append time with the codec - append time into an exact store)
 *      decode  tokens/s = compressed tokens / (time of attention over layers 0..11 in order, 1 query, with the
 *              codec - the same over an exact store): the per-forward decode of every compressed chunk (the AQUA
 *              predictor chain steps one layer per call).
 *    for uniform 2-bit, HIGGS 2-bit (d2-n16) and AQUA-KV 2 (aquaGridFor(2, 256), layer 0 d2-n256).
 * 2. Decode-step cost in the engine (bench/gguf-writer.ts random llama, dim 768, 12 layers, 4 KV heads, f16 weights),
 *    one sequence holding P = 512 / 4096 tokens: ms per single-token forward, best of `runs` runs of `steps` steps,
 *    f16 cache vs uniform-2 / HIGGS-2 / AQUA-2 (sinks 4, buffer 128, chunks 64), and AQUA-2 keeping its decoded
 *    chunks between steps (cacheBytes: memory of an exact cache on top of the codes); overhead = ratio to f16.
 * 3. Calibration time of the predictors for that model (random-token data; `--calib-tokens`, default 8192).
 *
 * Options: --json, --steps=S (4), --runs=R (2), --prompts=512,4096, --threads=N (native; default all cores),
 * --backend=native|wasm (default native), --calib-tokens=N.
 */
import os from 'node:os';
import { createBackend, loadModel, type Backend, type KvCodec, type Model } from '../ts/index.ts';
import type { CoreKvStore } from '../ts/backend/backend.ts';
import { aquaGridFor } from '../ts/aqua/bits.ts';
import { calibrateAquaKV, type AquaPredictors } from '../ts/aqua/calibrate.ts';
import { gaussianGrid } from '../ts/aqua/grids.ts';
import type { KvCacheOption } from '../ts/aqua/cache.ts';
import { DEFAULT_LLAMA, ensureRandomLlama } from './gguf-writer.ts';

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const JSON_ONLY = argv.includes('--json');
const STEPS = Number(opt('steps') ?? 4);
const RUNS = Number(opt('runs') ?? 2);
const PROMPTS = (opt('prompts') ?? '512,4096').split(',').map(Number);
const THREADS = Number(opt('threads') ?? os.cpus().length);
const BACKEND = (opt('backend') ?? 'native') as 'native' | 'wasm';
const CALIB = Number(opt('calib-tokens') ?? 8192);
const log = (s: string) => {
  if (!JSON_ONLY) console.log(s);
};
const progress = (s: string) => process.stderr.write(`${s}\n`);

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

function randomPredictors(nLayer: number, C: number): AquaPredictors {
  const r = lcg(99);
  const k: (Float32Array | null)[] = [null];
  const v: (Float32Array | null)[] = [null];
  for (let l = 1; l < nLayer; l++) {
    k.push(Float32Array.from({ length: (C + 1) * C }, () => r() / Math.sqrt(C)));
    v.push(Float32Array.from({ length: (2 * C + 1) * C }, () => r() / Math.sqrt(2 * C)));
  }
  return { nLayer, channels: C, group: Math.min(1024, C), grid: aquaGridFor(2, C), grid0: gaussianGrid(2, 256), k, v, metadata: {} };
}

const best = (xs: number[]) => Math.min(...xs);

// ---------------------------------------------------------------------------------------------------
// 1. codec throughput on the store
// ---------------------------------------------------------------------------------------------------
function storeCodec(backend: Backend): Record<string, unknown>[] {
  const G = { nLayer: 12, nKvHead: 4, headDim: 64, pageTokens: 64 };
  const C = G.nKvHead * G.headDim;
  const n = 512;
  const rope = { headDim: 64, style: 'neox' as const, theta: 10000 };
  const r = lcg(5);
  const k = Float32Array.from({ length: G.nLayer * n * C }, () => 2 * r());
  const v = Float32Array.from({ length: G.nLayer * n * C }, () => 2 * r());
  const common = { sinks: 4, buffer: 128, chunkTokens: 64 };
  const codecs: [string, KvCodec][] = [
    ['uniform 2-bit', { type: 'uniform', bits: 2, ...common }],
    ['HIGGS 2-bit (d2-n16)', { type: 'higgs', bits: 2, ...common }],
    [`AQUA-KV 2 (${aquaGridFor(2, C).name})`, { type: 'aqua', grid: aquaGridFor(2, C), predictors: randomPredictors(G.nLayer, C), rope, ...common }],
    [`AQUA-KV (gauss-d8-n4096: 1.5 + 0.06 bits)`, { type: 'aqua', grid: gaussianGrid(8, 4096), predictors: randomPredictors(G.nLayer, C), rope, ...common }],
  ];
  const q = Float32Array.from({ length: 12 * 64 }, () => r());
  const attnAll = (st: CoreKvStore | ReturnType<Backend['createStore']>, b: number) => {
    for (let l = 0; l < G.nLayer; l++) st.attention(l, rope, { views: [[b]], positions: [[n - 1]] }, q, 12, 0.125);
  };
  const timeIt = (f: () => void, reps = RUNS) => {
    const t: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      f();
      t.push(performance.now() - t0);
    }
    return best(t);
  };
  const ex = backend.createStore({ ...G });
  const eb = ex.createBlock();
  const tAppendExact = timeIt(() => {
    ex.truncate(eb, 0);
    ex.append(eb, n, k, v, rope);
  });
  const tAttnExact = timeIt(() => attnAll(ex, eb));
  const rows: Record<string, unknown>[] = [];
  for (const [name, codec] of codecs) {
    const st = backend.createStore({ ...G, codec });
    let b = st.createBlock();
    const tAppend = timeIt(() => {
      st.freeBlock(b);
      b = st.createBlock();
      st.append(b, n, k, v, rope);
    });
    const cs = st.codecStats();
    attnAll(st, b); // warm (scratch sized)
    const tAttn = timeIt(() => attnAll(st, b));
    const tc = cs.tokensCompressed;
    rows.push({
      codec: name,
      tokensCompressed: tc,
      bitsPerValue: Number(cs.bitsPerValue.toFixed(4)),
      encodeTokensPerSecond: Math.round(tc / ((tAppend - tAppendExact) / 1000)),
      decodeTokensPerSecond: Math.round(tc / ((tAttn - tAttnExact) / 1000)),
      attnAllLayersMs: Number(tAttn.toFixed(2)),
      attnAllLayersExactMs: Number(tAttnExact.toFixed(2)),
    });
    st.dispose();
  }
  ex.dispose();
  return rows;
}

// ---------------------------------------------------------------------------------------------------
// 2. decode-step cost in the engine
// ---------------------------------------------------------------------------------------------------
async function stepMs(m: Model, kv: KvCacheOption, P: number): Promise<{ ms: number; bits: number | null; compressed: number }> {
  const store = m.runStore(kv);
  const rt = m.runtime;
  const V = m.config.nVocab;
  try {
    const b = await rt.exclusive(() => store.createBlock());
    const ids = Array.from({ length: P }, (_, i) => 1 + ((i * 7919) % (V - 1)));
    for (let i = 0; i < P; i += 256) await rt.forward([{ view: [b], tokens: ids.slice(i, i + 256) }], 'none', undefined, store);
    const times: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const len = store.blockLength(b);
      const t0 = performance.now();
      for (let s = 0; s < STEPS; s++) await rt.forward([{ view: [b], tokens: [1 + ((s * 31) % (V - 1))] }], 'last', undefined, store);
      times.push((performance.now() - t0) / STEPS);
      await rt.exclusive(() => store.truncate(b, len));
    }
    const cs = store.codecStats();
    return { ms: best(times), bits: cs.tokensCompressed > 0 ? cs.bitsPerValue : null, compressed: cs.tokensCompressed };
  } finally {
    await rt.exclusive(() => store.dispose());
  }
}

const backend = await createBackend({ backend: BACKEND });
const out: Record<string, unknown> = { backend: BACKEND, threads: BACKEND === 'native' ? THREADS : 1, load: os.loadavg().map((x) => Number(x.toFixed(2))) };
try {
  progress('store codec throughput ...');
  out.storeCodec = storeCodec(backend);
  const file = ensureRandomLlama(DEFAULT_LLAMA, progress);
  const m = await loadModel(file, { backend, threads: THREADS });
  try {
    const C = m.config.nKvHead * m.config.headDim;
    const V = m.config.nVocab;
    progress(`calibrating predictors on ${CALIB} random tokens ...`);
    const t0 = performance.now();
    const preds = await calibrateAquaKV(m, { tokenIds: Array.from({ length: CALIB }, (_, i) => 1 + ((i * 104729) % (V - 1))), chunkTokens: 512, bits: 2 });
    out.calibration = { tokens: CALIB, seconds: Number(((performance.now() - t0) / 1000).toFixed(1)), grid: preds.grid.name, nLayer: m.config.nLayer, C };
    const common = { sinks: 4, buffer: 128, chunkTokens: 64 };
    const caches: [string, KvCacheOption][] = [
      ['f16', { type: 'f16' }],
      ['uniform 2-bit', { type: 'uniform', bits: 2, ...common }],
      ['HIGGS 2-bit', { type: 'higgs', bits: 2, ...common }],
      [`AQUA-KV 2 (${preds.grid.name})`, { type: 'aqua', predictors: preds, ...common }],
      ['AQUA-KV 2, decoded chunks kept (cacheBytes)', { type: 'aqua', predictors: preds, cacheBytes: 2 ** 40, ...common }],
    ];
    const steps: Record<string, unknown>[] = [];
    for (const P of PROMPTS) {
      let base = 0;
      for (const [name, kv] of caches) {
        progress(`decode step, P = ${P}, ${name} ...`);
        const r = await stepMs(m, kv, P);
        if (name === 'f16') base = r.ms;
        steps.push({ prompt: P, cache: name, msPerStep: Number(r.ms.toFixed(2)), vsF16: Number((r.ms / base).toFixed(2)), compressedTokens: r.compressed, bitsPerValue: r.bits === null ? null : Number(r.bits.toFixed(3)) });
      }
    }
    out.decodeStep = steps;
  } finally {
    m.dispose();
  }
} finally {
  backend.dispose();
}

if (JSON_ONLY) {
  console.log(JSON.stringify(out, null, 2));
} else {
  log(`backend ${BACKEND}, threads ${String(out.threads)}, load ${(out.load as number[]).join(' ')}`);
  log('\n| codec (store, 12 layers, C = 256) | bits/value | encode tokens/s | decode tokens/s (per forward) |');
  log('|---|---|---|---|');
  for (const r of out.storeCodec as Record<string, number | string>[]) log(`| ${r.codec} | ${r.bitsPerValue} | ${r.encodeTokensPerSecond} | ${r.decodeTokensPerSecond} |`);
  log('\n| prompt | KV cache | ms/step | vs f16 | compressed tokens |');
  log('|---|---|---|---|---|');
  for (const r of out.decodeStep as Record<string, number | string>[]) log(`| ${r.prompt} | ${r.cache} | ${r.msPerStep} | ${r.vsF16}x | ${r.compressedTokens} |`);
  log(`\ncalibration: ${JSON.stringify(out.calibration)}`);
  log(`\nJSON: ${JSON.stringify(out)}`);
}
