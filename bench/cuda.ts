/**
 * CUDA backend on real model shapes (`npm run bench:cuda`; on the GPU machine: `node --import tsx bench/cuda.ts`).
 *
 * Everything in one run on one card (bench/cuda_gpu.py does the Python side):
 *   1. card, driver, date; device-to-device copy bandwidth B (bytes read + written per second, PyTorch).
 *   2. random-weight bf16 Hugging Face checkpoints with the real shapes of Llama-3.2-1B and Qwen3-8B, drawn on
 *      the GPU and written to $HWKV_BENCH_DIR (default /dev/shm/hwkv-bench; reused when present).
 *   3. our decode step (loadModel(dir, { backend: 'cuda', kvCache: f16 })), Hogwild! layout: one common block of
 *      `context` tokens and one block per worker; worker w's view is [common, the other workers' blocks, own]
 *      ('combined' without headers). One step = ONE model forward of all W workers (one new token each) + a
 *      greedy pick per worker, exactly a Hogwild! inference step. pick 'device': the backend returns the
 *      picks (HWKV_LOGITS_ARGMAX, what generate/Hogwild! use for plain greedy); 'host': the W logits rows are
 *      copied back and scanned in TypeScript (the fallback when sampling needs the logits). The common
 *      block is filled by appending random K/V and merging (decode cost does not depend on the values).
 *        ms/step   best of `runs` runs of (time of `steps` steps) / steps, after 2 warm-up steps
 *        roofline  bytes one step must read (every weight matrix once + the norms + one embedding row per
 *                  token; the KV of every distinct block of the views once, in the store's element size) / B;
 *                  "% roofline" = roofline / ms/step
 *   4. Hugging Face transformers on the same checkpoint (bf16, sdpa, static cache, greedy, eager), W = 1.
 *   5. AQUA-KV 2-bit vs f16 KV at `--aqua-context` (default 32768) on the same model: the common block of the
 *      Hogwild! layout above held by an AQUA store (f16 exact pages for sinks / buffer, 2-bit grid for the rest,
 *      chunks of 64 tokens, the codec on the GPU: cuda/codec.cu), with and without cacheBytes (cacheBytes = the
 *      whole context decoded in f16: every chunk is decoded once, later steps read the kept pages). KV bytes =
 *      codes + fp16 scales (bytesCompressed) + the exact pages in use, against the f16 cache of the same tokens;
 *      ms/step as in 3 (device picks), W = 1 and 4. Predictors: calibrated on the GPU (calibrateAquaKV through
 *      model_capture_kv) when the CUDA model has the K/V tap; otherwise the "AR(1) rule": Wk = 0.7·I, Wv = [0 | 0.5·I],
 *      no biases — the exact predictors of synthetic K/V drawn as x_l = 0.7·x_{l-1} + noise (keys) and
 *      0.5·v_{l-1} + noise (values). Step time and bytes do not depend on predictor quality (the decode runs
 *      the same dense GEMMs and the codes have a fixed size); the table says which predictors were used.
 *
 * Options: --shapes=llama-3.2-1b,qwen3-8b  --contexts=1024,8192,32768  --workers=1,2,4  --steps=32  --runs=3
 *          --hf-contexts=1024,8192  --no-hf  --json-out=FILE  --kv=f16|f32  --picks=device,host  --copy-gbps=N
 *          --aqua-context=32768 (a multiple of 512)  --aqua-steps=8  --no-aqua
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel, type Model } from '../ts/index.ts';
import { argmax } from '../ts/engine/sampling.ts';
import { UnsupportedError } from '../ts/errors.ts';
import { aquaGridFor } from '../ts/aqua/bits.ts';
import { calibrateAquaKV, captureKv, type AquaPredictors } from '../ts/aqua/calibrate.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const opt = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const list = (s: string) => s.split(',').filter((x) => x.length > 0);
const SHAPES = list(opt('shapes') ?? 'llama-3.2-1b,qwen3-8b');
const CONTEXTS = list(opt('contexts') ?? '1024,8192,32768').map(Number);
const WORKERS = list(opt('workers') ?? '1,2,4').map(Number);
const STEPS = Number(opt('steps') ?? 32);
const RUNS = Number(opt('runs') ?? 3);
const HF_CONTEXTS = opt('hf-contexts') ?? '1024,8192';
const NO_HF = flag('no-hf');
const KV = (opt('kv') ?? 'f16') as 'f16' | 'f32';
const PICKS = list(opt('picks') ?? 'device') as ('device' | 'host')[];
const DIR = process.env.HWKV_BENCH_DIR ?? '/dev/shm/hwkv-bench';
const PY = process.env.PYTHON ?? 'python3';
const AQUA_CTX = Math.max(512, Math.floor(Number(opt('aqua-context') ?? 32768) / 512) * 512);
// without cacheBytes an AQUA step re-decodes the whole context (predictor GEMMs): fewer steps by default
const AQUA_STEPS = Number(opt('aqua-steps') ?? 8);
const NO_AQUA = flag('no-aqua');

const progress = (s: string) => process.stderr.write(`[bench:cuda ${(performance.now() / 1000).toFixed(0)}s] ${s}\n`);

function py(args: string[]): Record<string, unknown> {
  const r = spawnSync(PY, [path.join(HERE, 'cuda_gpu.py'), ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`cuda_gpu.py ${args[0]} failed (${r.status}): ${(r.stderr ?? '').slice(-2000)}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

interface OurRow {
  shape: string;
  pick: string;
  context: number;
  workers: number;
  msPerStep: number;
  aggTokS: number;
  vsW1: number;
  bytesPerStep: number;
  rooflineMs: number;
  pctRoofline: number;
}

/** Deterministic pseudo-random values in [-1, 1) (never all zeros). */
function fillRandom(a: Float32Array, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = ((s >>> 0) / 4294967296) * 2 - 1;
  }
  return a;
}

function weightBytesPerStep(model: Model, nTok: number): number {
  // Every matrix once; norms; the embedding table contributes only the looked-up rows unless it is the LM head.
  const src = model.source;
  const c = model.config;
  let bytes = 0;
  for (const t of src.tensors) {
    if (t.name === 'tok_embd') {
      bytes += src.tied ? t.nbytes : (t.nbytes / c.nVocab) * nTok;
    } else bytes += t.nbytes;
  }
  return bytes;
}

async function runOurs(model: Model, shape: string, copyGBps: number, rows: OurRow[]): Promise<void> {
  const rt = model.runtime;
  const store = rt.store;
  const c = model.config;
  const rope = c.rope;
  const kvElem = KV === 'f16' ? 2 : 4;
  const perTokKv = c.nLayer * c.nKvHead * c.headDim * 2 * kvElem;
  const V = c.nVocab;
  const chunk = 512;
  const kvLen = c.nLayer * chunk * c.nKvHead * c.headDim;
  const kSrc = fillRandom(new Float32Array(kvLen), 7);
  const vSrc = fillRandom(new Float32Array(kvLen), 11);
  for (const ctx of CONTEXTS) {
    // common block of ctx tokens: append `chunk` random tokens once, then merge copies of it
    const seed = await rt.createBlock();
    const common = await rt.createBlock();
    await rt.exclusive(() => {
      store.append(seed, chunk, kSrc, vSrc, rope);
      for (let n = 0; n < ctx; n += chunk) {
        if (ctx - n < chunk) store.truncate(seed, ctx - n);
        store.merge(common, seed, rope);
      }
    });
    await rt.freeBlock(seed);
    for (const pick of PICKS) {
      let base = 0;
      for (const W of WORKERS) {
        progress(`${shape} ctx=${ctx} W=${W} pick=${pick}`);
        const times: number[] = [];
        let kvTokens = 0;
        for (let r = 0; r < RUNS; r++) {
          const own: number[] = [];
          for (let w = 0; w < W; w++) own.push(await rt.createBlock());
          const views = own.map((b, w) => [common, ...own.filter((_, j) => j !== w), b]);
          let feeds = own.map((_, w) => [1000 + 17 * w]);
          let buf: Float32Array | undefined;
          const step = async () => {
            const seqs = views.map((view, w) => ({ view, tokens: feeds[w]! }));
            if (pick === 'device') {
              const g = await rt.forwardArgmax(seqs, 'last');
              feeds = feeds.map((_, w) => [g.ids[w]!]);
            } else {
              const l = (buf = await rt.forward(seqs, 'last', undefined, undefined, buf));
              feeds = feeds.map((_, w) => [argmax(l, w * V, V)]);
            }
          };
          await step();
          await step();
          const t0 = performance.now();
          for (let s = 0; s < STEPS; s++) await step();
          times.push((performance.now() - t0) / STEPS);
          // KV read by the middle step: common + every own block (read once, shared by all workers)
          kvTokens = ctx + W * (2 + STEPS / 2);
          for (const b of own) await rt.freeBlock(b);
        }
        const ms = Math.min(...times);
        const bytes = weightBytesPerStep(model, W) + kvTokens * perTokKv;
        const roofMs = (bytes / (copyGBps * 1e9)) * 1e3;
        const agg = (W * 1000) / ms;
        if (W === WORKERS[0]) base = agg / W;
        rows.push({ shape, pick, context: ctx, workers: W, msPerStep: ms, aggTokS: agg, vsW1: agg / base, bytesPerStep: bytes, rooflineMs: roofMs, pctRoofline: (100 * roofMs) / ms });
        progress(`  ${ms.toFixed(2)} ms/step, ${agg.toFixed(1)} tok/s, ${(agg / base).toFixed(2)}x W=1, ${((100 * roofMs) / ms).toFixed(0)}% roofline`);
      }
    }
    await rt.freeBlock(common);
  }
}

interface AquaRow {
  shape: string;
  predictors: string;
  context: number;
  cache: string;
  workers: number;
  msPerStep: number;
  msF16: number | null;
  kvBytes: number;
  f16Bytes: number;
  scratchBytes: number;
}

/** Predictors for the AQUA pass: calibrated on the GPU if the CUDA model has the K/V tap, else the AR(1) rule. */
async function aquaPredictors(model: Model): Promise<{ preds: AquaPredictors; how: string }> {
  const c = model.config;
  const C = c.nKvHead * c.headDim;
  let tap = true;
  try {
    await captureKv(model, [3, 4], { via: 'core' }); // probe: UnsupportedError without model_capture_kv
  } catch (e) {
    if (!(e instanceof UnsupportedError)) throw e;
    tap = false;
  }
  if (tap) {
    const tokenIds = Array.from({ length: 2048 }, (_, i) => 3 + ((i * 7919) % (c.nVocab - 3)));
    const preds = await calibrateAquaKV(model, { tokenIds, bits: 2, chunkTokens: 1024, holdOut: 0 });
    return { preds, how: 'calibrated on the GPU (model_capture_kv + the CUDA quantizer table; 2048 tokens of a fixed id sequence)' };
  }
  const k: (Float32Array | null)[] = [null];
  const v: (Float32Array | null)[] = [null];
  for (let l = 1; l < c.nLayer; l++) {
    const wk = new Float32Array((C + 1) * C);
    for (let i = 0; i < C; i++) wk[i * C + i] = 0.7;
    const wv = new Float32Array((2 * C + 1) * C);
    for (let i = 0; i < C; i++) wv[(C + i) * C + i] = 0.5;
    k.push(wk);
    v.push(wv);
  }
  const grid = aquaGridFor(2, C);
  const preds = { nLayer: c.nLayer, channels: C, group: 0, grid, grid0: grid, k, v, metadata: {} } as unknown as AquaPredictors;
  return { preds, how: 'AR(1) rule (no model_capture_kv on CUDA): Wk = 0.7 I, Wv = [0 | 0.5 I]' };
}

async function runAqua(model: Model, shape: string, rowsF16: OurRow[], rows: AquaRow[]): Promise<void> {
  const rt = model.runtime;
  const c = model.config;
  const C = c.nKvHead * c.headDim;
  const rope = c.rope;
  const tCal = performance.now();
  const { preds, how } = await aquaPredictors(model);
  progress(`${shape} aqua predictors in ${((performance.now() - tCal) / 1000).toFixed(1)} s: ${how.split(' (')[0]}`);
  const f16PerTok = c.nLayer * C * 2 * 2;
  const chunk = 512;
  const kSrc = fillRandom(new Float32Array(c.nLayer * chunk * C), 7);
  const vSrc = fillRandom(new Float32Array(c.nLayer * chunk * C), 11);
  for (const cache of ['none', 'all'] as const) {
    const cacheBytes = cache === 'all' ? Math.ceil(AQUA_CTX * f16PerTok * 1.1) : 0;
    const st = model.runStore({ type: 'aqua', predictors: preds, bits: 2, dtype: 'f16', chunkTokens: 64, cacheBytes });
    try {
      progress(`${shape} aqua ctx=${AQUA_CTX} cache=${cache}: filling`);
      const common = st.createBlock();
      await rt.exclusive(() => {
        for (let n = 0; n < AQUA_CTX; n += chunk) st.append(common, chunk, kSrc, vSrc, rope); // chunks compressed as they complete
      });
      for (const W of [1, 4]) {
        progress(`${shape} aqua ctx=${AQUA_CTX} cache=${cache} W=${W}`);
        const times: number[] = [];
        let cs = st.codecStats();
        let exactBytes = 0;
        for (let r = 0; r < RUNS; r++) {
          const own: number[] = [];
          for (let w = 0; w < W; w++) own.push(st.createBlock());
          const views = own.map((b, w) => [common, ...own.filter((_, j) => j !== w), b]);
          let feeds = own.map((_, w) => [1000 + 17 * w]);
          const step = async () => {
            const g = await rt.forwardArgmax(views.map((view, w) => ({ view, tokens: feeds[w]! })), 'last', undefined, st);
            feeds = feeds.map((_, w) => [g.ids[w]!]);
          };
          await step();
          await step();
          const t0 = performance.now();
          for (let s = 0; s < AQUA_STEPS; s++) await step();
          times.push((performance.now() - t0) / AQUA_STEPS);
          cs = st.codecStats();
          exactBytes = st.stats().bytesInUse;
          for (const b of own) st.freeBlock(b);
        }
        const f16 = rowsF16.find((x) => x.shape === shape && x.context === AQUA_CTX && x.workers === W && x.pick === 'device');
        rows.push({
          shape,
          predictors: how,
          context: AQUA_CTX,
          cache,
          workers: W,
          msPerStep: Math.min(...times),
          msF16: f16 ? f16.msPerStep : null,
          kvBytes: cs.bytesCompressed + exactBytes,
          f16Bytes: (AQUA_CTX + W * (2 + AQUA_STEPS)) * f16PerTok, // the same tokens in f16, no page rounding
          scratchBytes: cs.bytesScratch,
        });
        progress(`  ${Math.min(...times).toFixed(2)} ms/step; KV ${((cs.bytesCompressed + exactBytes) / 1e6).toFixed(0)} MB (codes ${(cs.bytesCompressed / 1e6).toFixed(0)} MB), scratch ${(cs.bytesScratch / 1e6).toFixed(0)} MB`);
      }
    } finally {
      st.dispose();
    }
  }
}

// ---------------------------------------------------------------------------------------------------------

const date = new Date().toISOString();
// --copy-gbps=N: a later pass in the same session on the same card reuses the first pass's bandwidth (and skips
// the card query), to save the PyTorch start-ups
const GIVEN_BW = opt('copy-gbps');
progress('card info');
const info = GIVEN_BW ? { name: '(see the first pass)', smi: '' } : py(['info']);
progress(`${String(info.smi)}; copy bandwidth`);
const bw = GIVEN_BW ? { gbps: Number(GIVEN_BW), given: true } : py(['copybw']);
const copyGBps = Number(bw.gbps);
const ours: OurRow[] = [];
const aqua: AquaRow[] = [];
const hf: { shape: string; context: number; tokS: number | null; note?: string }[] = [];
const meta: Record<string, unknown> = { date, info, copy: bw, kv: KV, steps: STEPS, runs: RUNS, node: process.version };

for (const shape of SHAPES) {
  const dir = path.join(DIR, shape);
  progress(`${shape}: checkpoint`);
  const g = py(['gen', '--shape', shape, '--out', dir]);
  meta[`gen_${shape}`] = g;
  progress(`${shape}: loading on cuda (${(Number(g.bytes) / 1e9).toFixed(2)} GB)`);
  const t0 = performance.now();
  const model = await loadModel(dir, { backend: 'cuda', kvCache: { type: KV } });
  meta[`load_${shape}_s`] = (performance.now() - t0) / 1000;
  try {
    await runOurs(model, shape, copyGBps, ours);
    if (!NO_AQUA) {
      try {
        await runAqua(model, shape, ours, aqua);
      } catch (e) {
        progress(`${shape}: AQUA pass failed: ${(e as Error).message}`);
        meta[`aqua_${shape}_error`] = (e as Error).message;
      }
    }
  } finally {
    model.dispose();
  }
  if (!NO_HF) {
    progress(`${shape}: transformers`);
    try {
      const r = py(['hf', '--model', dir, '--contexts', HF_CONTEXTS]);
      for (const row of r.rows as { context: number; tokens_per_s?: number; error?: string }[]) {
        hf.push({ shape, context: row.context, tokS: row.tokens_per_s ?? null, ...(row.error ? { note: row.error } : {}) });
      }
      meta[`hf_${shape}_load_s`] = r.load_seconds;
    } catch (e) {
      hf.push({ shape, context: 0, tokS: null, note: (e as Error).message.slice(0, 300) });
    }
  }
}

const out: string[] = [];
const p = (s: string) => out.push(s);
p(`\n## bench:cuda — ${String(info.name)} (${String(info.smi)}), ${date}`);
p(`torch ${String(info.torch)} (CUDA ${String(info.cuda)}), transformers ${String(info.transformers)}, node ${process.version}; KV store ${KV}; ${STEPS} steps x ${RUNS} runs (best)`);
p(`copy bandwidth (read + write): ${copyGBps.toFixed(0)} GB/s\n`);
p('| shape | pick | context | W | ms/step | agg tok/s | vs W=1 | MB read/step | roofline ms | % roofline |');
p('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of ours) {
  p(`| ${r.shape} | ${r.pick} | ${r.context} | ${r.workers} | ${r.msPerStep.toFixed(2)} | ${r.aggTokS.toFixed(1)} | ${r.vsW1.toFixed(2)}x | ${(r.bytesPerStep / 1e6).toFixed(0)} | ${r.rooflineMs.toFixed(2)} | ${r.pctRoofline.toFixed(0)}% |`);
}
if (hf.length > 0) {
  p('\nW = 1 decode vs Hugging Face transformers (bf16, sdpa, static cache, greedy, eager):\n');
  p('| shape | context | ours tok/s | transformers tok/s | ours / transformers |');
  p('|---|---:|---:|---:|---:|');
  for (const h of hf) {
    const o = ours.find((r) => r.shape === h.shape && r.context === h.context && r.workers === 1 && r.pick === PICKS[0]);
    const ot = o ? o.aggTokS : null;
    p(`| ${h.shape} | ${h.context || '-'} | ${ot ? ot.toFixed(1) : 'n/a'} | ${h.tokS ? h.tokS.toFixed(1) : 'n/a'} | ${ot && h.tokS ? (ot / h.tokS).toFixed(2) + 'x' : h.note ?? 'n/a'} |`);
  }
}
if (aqua.length > 0) {
  p(`\nAQUA-KV 2-bit vs f16 KV at ${AQUA_CTX} tokens (common block; KV = codes + fp16 scales + exact f16 pages (sinks, buffer, workers' own blocks); cache 'all' keeps every decoded chunk: cacheBytes = the context in f16; predictors: ${aqua[0]!.predictors}):\n`);
  p('| shape | cache | W | AQUA ms/step | f16 ms/step | AQUA / f16 | AQUA KV MB | f16 KV MB | KV ratio | scratch + kept MB |');
  p('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of aqua) {
    p(`| ${r.shape} | ${r.cache} | ${r.workers} | ${r.msPerStep.toFixed(2)} | ${r.msF16 !== null ? r.msF16.toFixed(2) : 'n/a'} | ${r.msF16 !== null ? (r.msPerStep / r.msF16).toFixed(2) + 'x' : 'n/a'} | ${(r.kvBytes / 1e6).toFixed(0)} | ${(r.f16Bytes / 1e6).toFixed(0)} | ${(r.f16Bytes / r.kvBytes).toFixed(2)}x | ${(r.scratchBytes / 1e6).toFixed(0)} |`);
  }
} else {
  p(`\nAQUA-KV 2-bit vs f16 KV: not run${NO_AQUA ? ' (--no-aqua)' : ''}`);
}
const targets: string[] = [];
const r8 = ours.find((r) => r.shape === 'qwen3-8b' && r.context === 1024 && r.workers === 1 && r.pick === PICKS[0]);
if (r8) targets.push(`8B 1K W=1 roofline ${r8.pctRoofline.toFixed(0)}% (target >= 70%)`);
for (const h of hf) {
  const o = ours.find((r) => r.shape === h.shape && r.context === h.context && r.workers === 1 && r.pick === PICKS[0]);
  if (o && h.tokS) targets.push(`${h.shape} ${h.context} vs transformers ${(o.aggTokS / h.tokS).toFixed(2)}x (target >= 1.5x)`);
}
for (const s of SHAPES) {
  const r4 = ours.find((r) => r.shape === s && r.context === 8192 && r.workers === 4 && r.pick === PICKS[0]);
  if (r4) targets.push(`${s} 8K W=4 aggregate ${r4.vsW1.toFixed(2)}x W=1 (target >= 3x)`);
}
p(`\ntargets: ${targets.join('; ')}`);
console.log(out.join('\n'));
const jsonOut = opt('json-out');
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ meta, ours, hf, aqua }, null, 1));
