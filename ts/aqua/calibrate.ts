/**
 * AQUA-KV calibration: fits the linear inter-layer predictors (keys from the reconstructed keys of layer l-1;
 * values from [reconstructed keys of layer l, reconstructed values of layer l-1]) by closed-form ridge least
 * squares on reconstructed (quantized-then-decoded) inputs, layer by layer in order, and writes them to a
 * safetensors file (see /work/shared/reference/aquakv-notes.md, "On-disk format").
 *
 * K/V capture: each calibration chunk (BOS + up to chunkTokens-1 tokens) goes through the core's tap
 * (hwkv_model_api.model_capture_kv: the forward in a private f32 store, copying every layer's keys before RoPE,
 * after bias / q-k norm / attention factor, and the values; native, WASM and CUDA all have it). A library
 * without the tap (one that predates it) falls back to a forward into a private store of the backend, the keys
 * read back and un-rotated in TS with the rope's inverse frequencies (same values up to float rounding of the
 * rotation).
 *
 * Memory: the captured float32 K/V of every chunk (2 * n_layer * tokens * C floats) are cached when they fit in
 * `cacheBytes` (default 512 MiB); otherwise each layer re-captures every chunk once and keeps that layer's K/V
 * (2 * tokens * C floats) for its three passes (K fit, K reconstruction + V fit, V reconstruction): n_layer
 * forward passes over the data instead of one; and where even one layer does not fit, every pass re-captures
 * (3·n_layer passes). The ridge normal equations are accumulated chunk by chunk in the core
 * (hwkv_quant_api.ridge_accumulate), so the fit's memory does not grow with the data; only the per-chunk
 * reconstructions of the previous layer are kept (2 * tokens * C floats).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AbortError, InvalidArgumentError, ModelFormatError, UnsupportedError } from '../errors.js';
import type { CoreKvStore } from '../backend/backend.js';
import type { Model } from '../model/model.js';
import { readSafetensorsHeader, readSafetensorsTensorData, writeSafetensors, type SafetensorsTensorInput } from '../formats/safetensors.js';
import { gridByName } from './grids.js';
import { defaultGroup, quantOf } from './quantizer.js';
import { aquaGridFor } from './bits.js';
import type { HiggsConfig, HiggsGrid, QuantOps } from './types.js';

export const AQUA_PREDICTORS_FORMAT = 'hogwild-kv/aqua-predictors/1';


export interface CalibrateProgress {
  phase: 'capture' | 'fit';
  /** layer being fitted (fit phase) */
  layer?: number;
  done: number;
  total: number;
}

export interface CalibrateOptions {
  /** calibration text (or give `files`) */
  text?: string;
  /** files whose text is concatenated */
  files?: string[];
  /** token ids instead of text */
  tokenIds?: ArrayLike<number>;
  /** at most this many tokens are used (default: all) */
  tokens?: number;
  /** bits per value of the main grid (1..4, default 2) */
  bits?: number;
  /** main grid name (overrides bits), e.g. 'gauss-d2-n16' */
  grid?: string;
  /** layer-0 handling: a grid name (default 'gauss-d2-n256') or 'exact' */
  layer0?: string;
  /** layer 0 (on a grid): subtract the calibration mean before quantizing (a constant predictor; default true) */
  layer0Center?: boolean;
  /** held-out fraction of chunks (default 0.1) */
  holdOut?: number;
  /** tokens per chunk incl. BOS (default 512) */
  chunkTokens?: number;
  /** ridge damping relative to mean(diag XᵀX) (default 1e-3) */
  damping?: number;
  /** split seed (default 0) */
  seed?: number;
  /** HIGGS sign seed (default 0) */
  signSeed?: number;
  /** bytes of captured K/V kept in memory before switching to re-capture per layer (default 512 MiB) */
  cacheBytes?: number;
  onProgress?: (p: CalibrateProgress) => void;
  signal?: AbortSignal;
}

export interface LayerStats {
  layer: number;
  /** relative MSE (‖Ŷ − Y‖²/‖Y‖²) of the plain quantizer (no predictor) */
  kPlain: { train: number; val: number };
  vPlain: { train: number; val: number };
  /** ‖Y − P(X)‖²/‖Y‖²: what the predictor leaves (layer 0: 1) */
  kPred: { train: number; val: number };
  vPred: { train: number; val: number };
  /** final reconstruction error with the predictor (prediction + quantized residual) */
  kRec: { train: number; val: number };
  vRec: { train: number; val: number };
  /** ‖Y − mean_train(Y)‖²/‖Y‖² (the constant predictor) */
  kMean: { train: number; val: number };
  vMean: { train: number; val: number };
}

export interface AquaPredictors {
  nLayer: number;
  /** C = n_kv_head * head_dim */
  channels: number;
  group: number;
  grid: HiggsGrid;
  /** null = layer 0 exact */
  grid0: HiggsGrid | null;
  /** per layer: W [(C+1), C] rows 0..C-1 weights (x·W), row C bias; index 0: layer 0's mean [C] (or null) */
  k: (Float32Array | null)[];
  /** W [(2C+1), C]: rows 0..C-1 for K̂_l, C..2C-1 for V̂_{l-1}, row 2C bias */
  v: (Float32Array | null)[];
  metadata: Record<string, string>;
}

export interface CalibrateResult extends AquaPredictors {
  layers: LayerStats[];
  trainTokens: number;
  valTokens: number;
}

function sha256(data: ArrayBufferView | string): string {
  const h = createHash('sha256');
  h.update(typeof data === 'string' ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return h.digest('hex');
}

/** Identity of a model for predictor files: architecture and shapes, plus a hash of config + tensor names/shapes. */
export type ModelLike = Pick<Model, 'config'> & { source: Pick<Model['source'], 'tensors'> };

export function aquaModelIdentity(model: ModelLike): Record<string, string> {
  const c = model.config;
  const cfg = {
    architecture: c.architecture,
    nLayer: c.nLayer,
    nEmbd: c.nEmbd,
    nHead: c.nHead,
    nKvHead: c.nKvHead,
    headDim: c.headDim,
    nFf: c.nFf,
    nVocab: c.nVocab,
    qkvBias: c.qkvBias,
    qkNorm: c.qkNorm,
    rope: c.rope,
  };
  const tensors = model.source.tensors.map((t) => `${t.name}:${t.shape.join('x')}`).sort();
  return {
    'model.architecture': String(c.architecture),
    'model.n_layer': String(c.nLayer),
    'model.n_kv_head': String(c.nKvHead),
    'model.head_dim': String(c.headDim),
    'model.hash': sha256(JSON.stringify({ cfg, tensors })),
  };
}

function shuffle(n: number, seed: number): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  let s = (seed >>> 0) + 0x9e3779b9;
  const rnd = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx;
}

/**
 * Pre-RoPE keys and values of every layer for one sequence (positions 0..n-1): k, v [nLayer, nTok, C]. Uses the
 * core's tap (model_capture_kv) where the backend has it ('auto', the default; 'core' requires it); otherwise
 * (or with via 'store') runs the forward into a fresh block of `store` and un-rotates the keys in TS.
 */
export async function captureKv(
  model: Model,
  tokens: ArrayLike<number>,
  opts: { store?: CoreKvStore; signal?: AbortSignal; via?: 'auto' | 'core' | 'store' } = {},
): Promise<{ k: Float32Array; v: Float32Array; nTok: number }> {
  const c = model.config;
  const C = c.nKvHead * c.headDim;
  const n = tokens.length;
  if (n < 1) throw new InvalidArgumentError('captureKv needs at least one token');
  if (opts.via !== 'store') {
    const r = await model.runtime.captureKv(tokens, opts.signal);
    if (r) return { ...r, nTok: n };
    if (opts.via === 'core') throw new UnsupportedError(`the ${model.backend.name} backend has no K/V tap (model_capture_kv)`);
  }
  const own = opts.store === undefined;
  const store = (opts.store ??
    model.backend.createStore({ nLayer: c.nLayer, nKvHead: c.nKvHead, headDim: c.headDim, pageTokens: 64, dtype: 'f32' })) as CoreKvStore;
  const rt = model.runtime;
  try {
    const block = await rt.exclusive(() => store.createBlock());
    try {
      await rt.forward([{ view: [block], tokens }], 'none', opts.signal, store);
      const k = new Float32Array(c.nLayer * n * C);
      const v = new Float32Array(c.nLayer * n * C);
      await rt.exclusive(() => {
        for (let l = 0; l < c.nLayer; l++) {
          const r = store.read(block, l, 0, n);
          k.set(r.k, l * n * C);
          v.set(r.v, l * n * C);
        }
      });
      unrotate(model, k, c.nLayer * n, n);
      return { k, v, nTok: n };
    } finally {
      await rt.exclusive(() => store.freeBlock(block));
    }
  } finally {
    if (own) await rt.exclusive(() => store.dispose());
  }
}

/** In place: keys [rows, nKvHead, headDim] with row r at position r % n, rotated back by -position. */
function unrotate(model: Model, k: Float32Array, rows: number, n: number): void {
  const c = model.config;
  const rope = c.rope;
  const hd = c.headDim;
  const rd = rope.rotaryDim ?? hd;
  const half = rd / 2;
  const { invFreq } = model.backend.ropeInvFreq(rope);
  const cos = new Float64Array(n * half);
  const sin = new Float64Array(n * half);
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < half; i++) {
      const a = Math.fround(t * invFreq[i]!);
      cos[t * half + i] = Math.cos(a);
      sin[t * half + i] = Math.sin(a);
    }
  }
  const neox = rope.style === 'neox';
  for (let r = 0; r < rows; r++) {
    const t = r % n;
    for (let h = 0; h < c.nKvHead; h++) {
      const base = (r * c.nKvHead + h) * hd;
      for (let i = 0; i < half; i++) {
        const i0 = base + (neox ? i : 2 * i);
        const i1 = base + (neox ? i + half : 2 * i + 1);
        const x = k[i0]!;
        const y = k[i1]!;
        const cs = cos[t * half + i]!;
        const sn = sin[t * half + i]!;
        k[i0] = x * cs + y * sn;
        k[i1] = -x * sn + y * cs;
      }
    }
  }
}

function concatRows(a: Float32Array, b: Float32Array, n: number, C: number): Float32Array {
  const out = new Float32Array(n * 2 * C);
  for (let r = 0; r < n; r++) {
    out.set(a.subarray(r * C, (r + 1) * C), r * 2 * C);
    out.set(b.subarray(r * C, (r + 1) * C), r * 2 * C + C);
  }
  return out;
}

class Err {
  e = 0;
  y = 0;
  add(y: Float32Array, yhat: Float32Array | null, mean?: Float64Array): void {
    const C = mean?.length ?? 1;
    for (let i = 0; i < y.length; i++) {
      const ref = yhat ? yhat[i]! : mean ? mean[i % C]! : 0;
      const d = y[i]! - ref;
      this.e += d * d;
      this.y += y[i]! * y[i]!;
    }
  }
  get rel(): number {
    return this.y > 0 ? this.e / this.y : 0;
  }
}

function pair(tr: Err, va: Err): { train: number; val: number } {
  return { train: tr.rel, val: va.rel };
}

/** Reads text from opts (text / files / tokenIds) and cuts BOS-led chunks. */
async function calibrationChunks(model: Model, opts: CalibrateOptions): Promise<number[][]> {
  let ids: number[];
  if (opts.tokenIds) ids = Array.from(opts.tokenIds);
  else {
    let text = opts.text ?? '';
    if (opts.files && opts.files.length > 0) {
      text += opts.files.map((f) => readFileSync(f, 'utf8')).join('\n');
    }
    if (text.length === 0) throw new InvalidArgumentError('calibrateAquaKV needs text, files or tokenIds');
    ids = model.tokenize(text, { addSpecial: false });
  }
  const chunkTokens = opts.chunkTokens ?? 512;
  if (!Number.isInteger(chunkTokens) || chunkTokens < 2) throw new InvalidArgumentError(`chunkTokens must be an integer >= 2, got ${chunkTokens}`);
  const bos = model.tokenizer?.bosId ?? model.config.bosTokenId;
  const per = bos === null || bos === undefined ? chunkTokens : chunkTokens - 1;
  const limit = opts.tokens ?? Infinity;
  const chunks: number[][] = [];
  let used = 0;
  for (let i = 0; i < ids.length && used < limit; i += per) {
    const room = Math.min(per, limit - used - (bos === null || bos === undefined ? 0 : 1));
    if (room < 1) break;
    const part = ids.slice(i, i + room);
    const chunk = bos === null || bos === undefined ? part : [bos, ...part];
    if (chunk.length < 2) break;
    chunks.push(chunk);
    used += chunk.length;
  }
  if (chunks.length === 0) throw new InvalidArgumentError('calibration data is empty');
  return chunks;
}

/**
 * Fit AQUA-KV predictors on calibration text. With `out` (see writeAquaPredictors) the result is also written.
 */
export async function calibrateAquaKV(model: Model, opts: CalibrateOptions & { out?: string } = {}): Promise<CalibrateResult> {
  const c = model.config;
  const L = c.nLayer;
  const C = c.nKvHead * c.headDim;
  const q: QuantOps = quantOf(model.backend);
  const bits = opts.bits ?? 2;
  const gridName = opts.grid ?? aquaGridFor(bits, C).name;
  const grid = gridByName(gridName);
  const layer0 = opts.layer0 ?? 'gauss-d2-n256';
  const grid0 = layer0 === 'exact' ? null : gridByName(layer0);
  const group = defaultGroup(C);
  const damping = opts.damping ?? 1e-3;
  const holdOut = opts.holdOut ?? 0.1;
  if (!(holdOut >= 0 && holdOut < 1)) throw new InvalidArgumentError(`holdOut must be in [0, 1), got ${holdOut}`);
  const signSeed = opts.signSeed ?? 0;
  const hc: HiggsConfig = { channels: C, group, grid, seed: signSeed };
  const hc0: HiggsConfig | null = grid0 ? { channels: C, group, grid: grid0, seed: signSeed } : null;
  const quant = (cfg: HiggsConfig, x: Float32Array, n: number, into?: Float32Array): Float32Array =>
    into ? q.higgsDecode(cfg, q.higgsEncode(cfg, x, n), into, true) : q.higgsDecode(cfg, q.higgsEncode(cfg, x, n));

  const chunks = await calibrationChunks(model, opts);
  const order = shuffle(chunks.length, opts.seed ?? 0);
  const nVal = chunks.length >= 2 && holdOut > 0 ? Math.max(1, Math.round(holdOut * chunks.length)) : 0;
  const isVal = new Array<boolean>(chunks.length).fill(false);
  for (let i = 0; i < nVal; i++) isVal[order[i]!] = true;
  let trainTokens = 0;
  let valTokens = 0;
  chunks.forEach((ch, i) => (isVal[i] ? (valTokens += ch.length) : (trainTokens += ch.length)));
  const totalTok = trainTokens + valTokens;
  const budget = opts.cacheBytes ?? 512 * 1024 * 1024;
  const cache = 2 * L * totalTok * C * 4 <= budget;
  const cacheLayer = !cache && 2 * totalTok * C * 4 <= budget;

  const check = () => {
    if (opts.signal?.aborted) throw new AbortError('calibration was aborted');
  };
  const store = model.backend.createStore({ nLayer: L, nKvHead: c.nKvHead, headDim: c.headDim, pageTokens: 64, dtype: 'f32' }) as CoreKvStore;
  const cached: { k: Float32Array; v: Float32Array }[] = [];
  const fitSteps = L * chunks.length * 2;
  let fitDone = 0;
  try {
    if (cache) {
      for (let i = 0; i < chunks.length; i++) {
        check();
        const r = await captureKv(model, chunks[i]!, { store, signal: opts.signal });
        cached.push({ k: r.k, v: r.v });
        opts.onProgress?.({ phase: 'capture', done: i + 1, total: chunks.length });
      }
    }
    // without the whole cache: one layer's K/V of every chunk (copies: the full capture is dropped at once)
    let layerOf = -1;
    const perLayer: { k: Float32Array; v: Float32Array }[] = [];
    const layerKv = async (i: number, l: number): Promise<{ k: Float32Array; v: Float32Array }> => {
      const n = chunks[i]!.length;
      if (cacheLayer && layerOf === l && perLayer[i]) return perLayer[i]!;
      const all = cache ? cached[i]! : await captureKv(model, chunks[i]!, { store, signal: opts.signal });
      const kv = { k: all.k.subarray(l * n * C, (l + 1) * n * C), v: all.v.subarray(l * n * C, (l + 1) * n * C) };
      if (!cacheLayer) return kv;
      if (layerOf !== l) {
        layerOf = l;
        perLayer.length = 0;
      }
      perLayer[i] = { k: kv.k.slice(), v: kv.v.slice() };
      return perLayer[i]!;
    };

    const prevK: Float32Array[] = new Array(chunks.length);
    const prevV: Float32Array[] = new Array(chunks.length);
    const kW: (Float32Array | null)[] = [null];
    const vW: (Float32Array | null)[] = [null];
    const center = (opts.layer0Center ?? true) && grid0 !== null;
    const stats: LayerStats[] = [];

    for (let l = 0; l < L; l++) {
      const e = () => ({ tr: new Err(), va: new Err() });
      const kPlain = e(), vPlain = e(), kPred = e(), vPred = e(), kRec = e(), vRec = e(), kMean = e(), vMean = e();
      const pick = (o: { tr: Err; va: Err }, i: number) => (isVal[i] ? o.va : o.tr);
      // train means (for the constant-predictor reference)
      const kSum = new Float64Array(C);
      const vSum = new Float64Array(C);
      let rows = 0;
      const accK = l > 0 ? q.ridgeCreate(C, C) : null;
      const accV = l > 0 ? q.ridgeCreate(2 * C, C) : null;
      // pass 1: K fit (and means)
      for (let i = 0; i < chunks.length; i++) {
        check();
        const n = chunks[i]!.length;
        const { k, v } = await layerKv(i, l);
        if (!isVal[i]) {
          for (let t = 0; t < n * C; t++) {
            kSum[t % C] = kSum[t % C]! + k[t]!;
            vSum[t % C] = vSum[t % C]! + v[t]!;
          }
          rows += n;
          if (accK) q.ridgeAccumulate(accK, prevK[i]!, k, n);
        }
        opts.onProgress?.({ phase: 'fit', layer: l, done: ++fitDone, total: fitSteps });
      }
      const kMu = kSum.map((s) => s / Math.max(1, rows));
      const vMu = vSum.map((s) => s / Math.max(1, rows));
      const wk = accK ? q.ridgeSolve(accK, damping) : null;
      // pass 2: K reconstructions, V accumulation
      const curK: Float32Array[] = new Array(chunks.length);
      for (let i = 0; i < chunks.length; i++) {
        check();
        const n = chunks[i]!.length;
        const { k, v } = await layerKv(i, l);
        const plainK = quant(hc, k, n);
        pick(kPlain, i).add(k, plainK);
        pick(kMean, i).add(k, null, kMu);
        let recK: Float32Array;
        if (wk) {
          const pk = q.linearApply(prevK[i]!, wk, n, C, C);
          pick(kPred, i).add(k, pk);
          const res = new Float32Array(n * C);
          for (let t = 0; t < res.length; t++) res[t] = k[t]! - pk[t]!;
          recK = quant(hc, res, n, pk);
        } else if (hc0 && center) {
          // layer 0: constant predictor (the train mean), residual on grid0
          const mu = Float32Array.from({ length: n * C }, (_, t) => kMu[t % C]!);
          pick(kPred, i).add(k, mu);
          const res = new Float32Array(n * C);
          for (let t = 0; t < res.length; t++) res[t] = k[t]! - mu[t]!;
          recK = quant(hc0, res, n, mu);
        } else {
          pick(kPred, i).add(k, new Float32Array(n * C));
          recK = hc0 ? quant(hc0, k, n) : k.slice();
        }
        pick(kRec, i).add(k, recK);
        curK[i] = recK;
        if (accV && !isVal[i]) q.ridgeAccumulate(accV, concatRows(recK, prevV[i]!, n, C), v, n);
      }
      const wv = accV ? q.ridgeSolve(accV, damping) : null;
      // pass 3: V reconstructions
      for (let i = 0; i < chunks.length; i++) {
        check();
        const n = chunks[i]!.length;
        const { v } = await layerKv(i, l);
        pick(vPlain, i).add(v, quant(hc, v, n));
        pick(vMean, i).add(v, null, vMu);
        let recV: Float32Array;
        if (wv) {
          const pv = q.linearApply(concatRows(curK[i]!, prevV[i]!, n, C), wv, n, 2 * C, C);
          pick(vPred, i).add(v, pv);
          const res = new Float32Array(n * C);
          for (let t = 0; t < res.length; t++) res[t] = v[t]! - pv[t]!;
          recV = quant(hc, res, n, pv);
        } else if (hc0 && center) {
          const mu = Float32Array.from({ length: n * C }, (_, t) => vMu[t % C]!);
          pick(vPred, i).add(v, mu);
          const res = new Float32Array(n * C);
          for (let t = 0; t < res.length; t++) res[t] = v[t]! - mu[t]!;
          recV = quant(hc0, res, n, mu);
        } else {
          pick(vPred, i).add(v, new Float32Array(n * C));
          recV = hc0 ? quant(hc0, v, n) : v.slice();
        }
        pick(vRec, i).add(v, recV);
        prevV[i] = recV;
        prevK[i] = curK[i]!;
        opts.onProgress?.({ phase: 'fit', layer: l, done: ++fitDone, total: fitSteps });
      }
      if (l > 0) {
        kW.push(wk);
        vW.push(wv);
      } else if (center) {
        kW[0] = Float32Array.from(kMu);
        vW[0] = Float32Array.from(vMu);
      }
      stats.push({
        layer: l,
        kPlain: pair(kPlain.tr, kPlain.va),
        vPlain: pair(vPlain.tr, vPlain.va),
        kPred: pair(kPred.tr, kPred.va),
        vPred: pair(vPred.tr, vPred.va),
        kRec: pair(kRec.tr, kRec.va),
        vRec: pair(vRec.tr, vRec.va),
        kMean: pair(kMean.tr, kMean.va),
        vMean: pair(vMean.tr, vMean.va),
      });
    }

    const metadata: Record<string, string> = {
      format: AQUA_PREDICTORS_FORMAT,
      ...aquaModelIdentity(model),
      C: String(C),
      g: String(group),
      grid: gridName,
      'grid.d': String(grid.dim),
      'grid.n': String(grid.points.length / grid.dim),
      'grid.sha256': sha256(grid.points),
      layer0: layer0,
      'layer0.center': String(center),
      ...(grid0 ? { 'grid0.d': String(grid0.dim), 'grid0.n': String(grid0.points.length / grid0.dim), 'grid0.sha256': sha256(grid0.points) } : {}),
      bits: String(bits),
      signs: 'true',
      sign_seed: String(signSeed),
      keys: 'pre-rope',
      train_tokens: String(trainTokens),
      val_tokens: String(valTokens),
      chunks: String(chunks.length),
      chunk_tokens: String(opts.chunkTokens ?? 512),
      hold_out: String(holdOut),
      seed: String(opts.seed ?? 0),
      damping: String(damping),
    };
    const result: CalibrateResult = {
      nLayer: L,
      channels: C,
      group,
      grid,
      grid0,
      k: kW,
      v: vW,
      metadata,
      layers: stats,
      trainTokens,
      valTokens,
    };
    if (opts.out) writeAquaPredictors(opts.out, result);
    return result;
  } finally {
    await model.runtime.exclusive(() => store.dispose());
  }
}

/** Writes predictors as safetensors: k.{l}.weight [C,C], k.{l}.bias [C], v.{l}.weight [C,2C], v.{l}.bias [C], grids. */
export function writeAquaPredictors(file: string, p: AquaPredictors): void {
  const C = p.channels;
  const tensors: [string, SafetensorsTensorInput][] = [];
  // W is stored [(p+1), q] (x·W); nn.Linear layout is weight [out, in] = Wᵀ.
  const linear = (w: Float32Array, inDim: number): { weight: Float32Array; bias: Float32Array } => {
    const weight = new Float32Array(C * inDim);
    for (let i = 0; i < inDim; i++) for (let j = 0; j < C; j++) weight[j * inDim + i] = w[i * C + j]!;
    return { weight, bias: w.slice(inDim * C, inDim * C + C) };
  };
  if (p.k[0]) tensors.push(['k.0.bias', { dtype: 'F32', shape: [C], data: p.k[0] }]);
  if (p.v[0]) tensors.push(['v.0.bias', { dtype: 'F32', shape: [C], data: p.v[0] }]);
  for (let l = 1; l < p.nLayer; l++) {
    const k = linear(p.k[l]!, C);
    const v = linear(p.v[l]!, 2 * C);
    tensors.push([`k.${l}.weight`, { dtype: 'F32', shape: [C, C], data: k.weight }]);
    tensors.push([`k.${l}.bias`, { dtype: 'F32', shape: [C], data: k.bias }]);
    tensors.push([`v.${l}.weight`, { dtype: 'F32', shape: [C, 2 * C], data: v.weight }]);
    tensors.push([`v.${l}.bias`, { dtype: 'F32', shape: [C], data: v.bias }]);
  }
  const gn = p.grid.points.length / p.grid.dim;
  tensors.push(['grid', { dtype: 'F32', shape: [gn, p.grid.dim], data: p.grid.points }]);
  if (p.grid0) tensors.push(['grid0', { dtype: 'F32', shape: [p.grid0.points.length / p.grid0.dim, p.grid0.dim], data: p.grid0.points }]);
  writeSafetensors(file, tensors, p.metadata);
}

function f32(bytes: Uint8Array): Float32Array {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Float32Array(copy.buffer);
}

/** Loads a predictor file and checks it was made for `model` (ModelFormatError naming the mismatch). */
export function loadAquaPredictors(file: string, model: ModelLike): AquaPredictors {
  const h = readSafetensorsHeader(file);
  const md = (h.metadata ?? {}) as Record<string, string>;
  if (md['format'] !== AQUA_PREDICTORS_FORMAT) {
    throw new ModelFormatError('FORMAT_INVALID', file, `not an AQUA-KV predictor file (format ${JSON.stringify(md['format'] ?? null)}, expected ${AQUA_PREDICTORS_FORMAT})`);
  }
  const id = aquaModelIdentity(model);
  for (const [key, want] of Object.entries(id)) {
    if (md[key] !== want) {
      throw new ModelFormatError(
        'FORMAT_UNSUPPORTED_MODEL',
        file,
        `predictors were calibrated for another model: ${key} is ${JSON.stringify(md[key] ?? null)}, this model has ${JSON.stringify(want)}`,
      );
    }
  }
  const C = Number(md['C']);
  const L = model.config.nLayer;
  if (C !== model.config.nKvHead * model.config.headDim) throw new ModelFormatError('FORMAT_INVALID', file, `C = ${md['C']} does not match n_kv_head*head_dim`);
  const get = (name: string, shape: number[]): Float32Array => {
    const t = h.tensors.find((x) => x.name === name);
    if (!t) throw new ModelFormatError('FORMAT_MISSING_TENSOR', file, `tensor '${name}' is missing`);
    if (t.dtype !== 'F32' || t.shape.join(',') !== shape.join(',')) {
      throw new ModelFormatError('FORMAT_INVALID', file, `tensor '${name}' is ${t.dtype} [${t.shape.join(', ')}], expected F32 [${shape.join(', ')}]`);
    }
    return f32(readSafetensorsTensorData(h, name));
  };
  const unlinear = (weight: Float32Array, bias: Float32Array, inDim: number): Float32Array => {
    const w = new Float32Array((inDim + 1) * C);
    for (let i = 0; i < inDim; i++) for (let j = 0; j < C; j++) w[i * C + j] = weight[j * inDim + i]!;
    w.set(bias, inDim * C);
    return w;
  };
  const has = (name: string) => h.tensors.some((t) => t.name === name);
  const k: (Float32Array | null)[] = [has('k.0.bias') ? get('k.0.bias', [C]) : null];
  const v: (Float32Array | null)[] = [has('v.0.bias') ? get('v.0.bias', [C]) : null];
  for (let l = 1; l < L; l++) {
    k.push(unlinear(get(`k.${l}.weight`, [C, C]), get(`k.${l}.bias`, [C]), C));
    v.push(unlinear(get(`v.${l}.weight`, [C, 2 * C]), get(`v.${l}.bias`, [C]), 2 * C));
  }
  const gd = Number(md['grid.d']) as 1 | 2 | 4 | 8;
  const gridPts = get('grid', [Number(md['grid.n']), gd]);
  if (sha256(gridPts) !== md['grid.sha256']) throw new ModelFormatError('FORMAT_INVALID', file, 'grid does not match its sha256');
  const grid: HiggsGrid = { name: md['grid'], dim: gd, points: gridPts };
  let grid0: HiggsGrid | null = null;
  if (md['layer0'] !== 'exact') {
    const d0 = Number(md['grid0.d']) as 1 | 2 | 4 | 8;
    const p0 = get('grid0', [Number(md['grid0.n']), d0]);
    if (sha256(p0) !== md['grid0.sha256']) throw new ModelFormatError('FORMAT_INVALID', file, 'grid0 does not match its sha256');
    grid0 = { name: md['layer0'], dim: d0, points: p0 };
  }
  return { nLayer: L, channels: C, group: Number(md['g']), grid, grid0, k, v, metadata: md };
}
