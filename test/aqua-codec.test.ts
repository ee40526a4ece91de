/**
 * AQUA-KV cache (the 'aqua' codec: linear inter-layer predictors + HIGGS of the residual, keys before RoPE):
 *  - store level, on fresh random K/V, predictors and RoPE each run: every compressed chunk read back equals
 *    a float64 TypeScript reference of "predict + dequantize, then RoPE at the block-local position", computed
 *    from the codes the store holds (exported with codecChunk) — layer 0 on its grid (with or without its
 *    constant predictor, the calibration mean) or exact fp16; exact
 *    tokens stay bit-identical; bytes / bits per value match the formula; attention (the per-forward decode
 *    chain, layers in order and out of order) equals attention over an exact store holding the decoded rows;
 *  - model level (stories260K, visible SKIP if absent): predictors calibrated on a slice of TinyStories; the
 *    aqua cache gives bit-identical logits while no chunk is encoded, in plain decoding and in a Hogwild! run
 *    of two workers; after compression it is closer to the exact cache (KL) than HIGGS with the same grid and
 *    no predictors;
 *  - bad predictors: files made for another model, not predictor files, wrong shapes, wrong objects, missing
 *    rope, non-finite weights -> typed errors.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModel, type Model } from '../ts/index.ts';
import type { Backend, KvCodec, RopeParams } from '../ts/index.ts';
import { InvalidArgumentError, ModelFormatError } from '../ts/errors.ts';
import { gaussianGrid } from '../ts/aqua/grids.ts';
import { aquaGridFor, higgsBitsPerValue } from '../ts/aqua/bits.ts';
import { calibrateAquaKV, loadAquaPredictors, type AquaPredictors } from '../ts/aqua/calibrate.ts';
import { resolveKvCache } from '../ts/aqua/cache.ts';
import { kvCacheOption } from '../ts/cli/common.ts';
import { writeSafetensors } from '../ts/formats/safetensors.ts';
import type { HiggsGrid } from '../ts/aqua/types.ts';
import { backendsUnderTest, skipLine } from './helpers/backends.ts';
import { expectThrows, seededTest } from './helpers/harness.ts';
import type { Rng } from './helpers/rng.ts';
import { refUnpack } from './ref/bits.ts';
import { halfToNumber, refHiggsDecode, refLinear } from './ref/quant.ts';
import { refRopeApply, refRotateAll } from './ref/rope.ts';
import { relMax, rowsKl } from './helpers/metrics.ts';
import { layerCorrelatedKv, hogwildGreedyRows } from './helpers/aqua.ts';

const SHARED = process.env.HOGWILD_SHARED ?? path.resolve('..', 'shared');
const STORIES = path.join(SHARED, 'models', 'stories260K', 'stories260K.gguf');
const CORPUS = path.join(SHARED, 'corpora', 'tinystories_val.txt');
const FIXTURE = path.join('test', 'fixtures', 'hf', 'llama');

async function cpuBackends() {
  return (await backendsUnderTest()).filter((b) => b.name !== 'cuda');
}
/** Every backend under test: the CPU backends and CUDA (codecs on the device, cuda/codec.cu). */
async function codecBackends() {
  return backendsUnderTest();
}

const s = suite('aqua-codec');

const G = { nLayer: 3, nKvHead: 2, headDim: 16, pageTokens: 16 };
const C = G.nKvHead * G.headDim;

function randomPredictors(rng: Rng, nLayer: number, Ck: number, Cv: number): AquaPredictors & { metadata: Record<string, string> } {
  // layer 0: a constant predictor (what calibration sets to the mean) or none
  const k: (Float32Array | null)[] = [rng.bool() ? rng.f32(Ck, 1.5) : null];
  const v: (Float32Array | null)[] = [rng.bool() ? rng.f32(Cv, 0.5) : null];
  for (let l = 1; l < nLayer; l++) {
    k.push(rng.f32((Ck + 1) * Ck, 0.6 / Math.sqrt(Ck)));
    v.push(rng.f32((Ck + Cv + 1) * Cv, 0.6 / Math.sqrt(Ck + Cv)));
  }
  return { nLayer, channels: Ck, group: 32, grid: gaussianGrid(2, 16), grid0: gaussianGrid(2, 256), k, v, metadata: {} };
}

/** Float64 reference of one chunk's reconstruction (keys rotated at their block-local positions). */
function refChunk(
  chunk: (layer: number, which: 'k' | 'v') => { start: number; nTok: number; codes: Uint32Array; scales: Uint16Array; exact: boolean },
  preds: AquaPredictors,
  grid: HiggsGrid,
  grid0: HiggsGrid | null,
  seed: number,
  rope: RopeParams,
): { start: number; k: Float64Array[]; v: Float64Array[] } {
  let pk: Float64Array | null = null;
  let pv: Float64Array | null = null;
  const outK: Float64Array[] = [];
  const outV: Float64Array[] = [];
  let start = 0;
  for (let l = 0; l < G.nLayer; l++) {
    const rec: Float64Array[] = [];
    for (const which of ['k', 'v'] as const) {
      const ch = chunk(l, which);
      start = ch.start;
      const n = ch.nTok;
      let y: Float64Array;
      if (ch.exact) {
        y = Float64Array.from(ch.scales, (h) => halfToNumber(h));
      } else {
        const g = l === 0 && grid0 ? grid0 : grid;
        const np = g.points.length / g.dim;
        const codes = refUnpack(ch.codes, Math.log2(np), (n * C) / g.dim);
        const scales = Float64Array.from(ch.scales, (h) => halfToNumber(h));
        y = refHiggsDecode({ channels: C, group: 32, dim: g.dim, grid: g.points, signs: true, seed: seed + (which === 'v' ? 1 : 0) }, codes, scales, n);
      }
      const mean0 = which === 'k' ? preds.k[0] : preds.v[0];
      if (l === 0 && !ch.exact && mean0) for (let i = 0; i < y.length; i++) y[i] = y[i]! + mean0[i % C]!;
      if (l > 0) {
        const pred =
          which === 'k'
            ? refLinear(pk!, preds.k[l]!, n, C, C)
            : refLinear(
                (() => {
                  const x = new Float64Array(n * 2 * C);
                  for (let t = 0; t < n; t++) {
                    x.set(rec[0]!.subarray(t * C, (t + 1) * C), t * 2 * C);
                    x.set(pv!.subarray(t * C, (t + 1) * C), t * 2 * C + C);
                  }
                  return x;
                })(),
                preds.v[l]!,
                n,
                2 * C,
                C,
              );
        for (let i = 0; i < y.length; i++) y[i] = y[i]! + pred[i]!;
      }
      rec.push(y);
    }
    pk = rec[0]!;
    pv = rec[1]!;
    const n = pk.length / C;
    outK.push(refRopeApply(rope, pk, n, G.nKvHead, Array.from({ length: n }, (_, t) => start + t)));
    outV.push(pv);
  }
  return { start, k: outK, v: outV };
}

/** relMax of a[off, off+n) against b[0, n). */
const maxRel = (a: Float32Array, b: Float32Array | Float64Array, off: number, n: number) => relMax(a.subarray(off, off + n), b.subarray(0, n));

const ROPE: RopeParams = { headDim: G.headDim, style: 'normal', theta: 10000 };

seededTest(s, 'aqua-codec', 'store: decode equals the float64 reference of predict + dequantize (+ RoPE); bytes match the formula', async (rng) => {
  for (const { name, backend } of await codecBackends()) {
    for (const layer0Exact of [false, true]) {
      const preds = randomPredictors(rng, G.nLayer, C, C);
      const grid = gaussianGrid(2, 16);
      const grid0 = layer0Exact ? null : gaussianGrid(2, 256);
      const seed = rng.int(0, 1000);
      const rope: RopeParams = { ...ROPE, style: rng.bool() ? 'normal' : 'neox', theta: [10000, 500000][rng.int(0, 1)]! };
      const codec: KvCodec = { type: 'aqua', grid, layer0Grid: grid0, layer0Exact, predictors: preds, rope, sinks: 4, buffer: 32, chunkTokens: 32, seed };
      const st = backend.createStore({ ...G, codec });
      const ex = backend.createStore({ ...G });
      const label = `${name} layer0 ${layer0Exact ? 'exact' : 'd2-n256'}`;
      try {
        const n = 120;
        const { k, v } = layerCorrelatedKv(rng, G.nLayer, n, C);
        const b = st.createBlock();
        const e = ex.createBlock();
        st.append(b, n, k, v, rope);
        ex.append(e, n, k, v, rope);
        // sink page [0,16); chunks [16,48) and [48,80) end <= 120 - 32 = 88
        const cs = st.codecStats();
        assert.is(cs.chunks, 2, `${label}: chunks`);
        assert.is(cs.tokensCompressed, 64, `${label}: tokens`);
        const per = (g: HiggsGrid | null, l0: boolean) =>
          l0 ? 2 * 32 * 2 * C : 2 * (4 * Math.ceil((32 * (C / g!.dim) * Math.log2(g!.points.length / g!.dim)) / 32) + 2 * 32 * (C / 32));
        const expectBytes = 2 * (per(grid0 ?? grid, layer0Exact) + (G.nLayer - 1) * per(grid, false));
        assert.is(cs.bytesCompressed, expectBytes, `${label}: bytes`);
        const bitsExpected = (layer0Exact ? 16 : higgsBitsPerValue(grid0!, C)) / G.nLayer + ((G.nLayer - 1) * higgsBitsPerValue(grid, C)) / G.nLayer;
        assert.ok(Math.abs(cs.bitsPerValue - bitsExpected) < 1e-9, `${label}: bits/value ${cs.bitsPerValue} vs ${bitsExpected}`);
        const got = Array.from({ length: G.nLayer }, (_, l) => st.read(b, l));
        const ref = Array.from({ length: G.nLayer }, (_, l) => ex.read(e, l));
        let worst = 0;
        for (const t0 of [16, 48]) {
          const r = refChunk((l, w) => st.codecChunk!(b, t0 + 5, l, w), preds, grid, grid0, seed, rope);
          assert.is(r.start, t0, `${label}: chunk start`);
          for (let l = 0; l < G.nLayer; l++) {
            const ek = maxRel(got[l]!.k, r.k[l]!, t0 * C, 32 * C);
            const ev = maxRel(got[l]!.v, r.v[l]!, t0 * C, 32 * C);
            worst = Math.max(worst, ek, ev);
            assert.ok(ek < 2e-5 && ev < 2e-5, `${label}: chunk ${t0} layer ${l} vs float64 reference: K ${ek.toExponential(2)} V ${ev.toExponential(2)}`);
          }
        }
        // exact tokens (sink page, buffer) bit-identical; compressed ones close to the inputs
        for (let l = 0; l < G.nLayer; l++) {
          for (const [a, z] of [[0, 16], [80, 120]] as const)
            for (let i = a * C; i < z * C; i++) if (got[l]!.k[i] !== ref[l]!.k[i] || got[l]!.v[i] !== ref[l]!.v[i]) assert.unreachable(`${label}: exact row ${i / C} differs`);
          let err = 0;
          let nrm = 0;
          for (let i = 16 * C; i < 80 * C; i++) {
            err += (got[l]!.k[i]! - ref[l]!.k[i]!) ** 2;
            nrm += ref[l]!.k[i]! ** 2;
          }
          assert.ok(err / nrm < 0.2, `${label}: layer ${l} key relMSE ${err / nrm}`);
        }
        console.log(`  ${label}: ${cs.bytesCompressed} B, ${cs.bitsPerValue.toFixed(4)} bits/value; max rel. error vs float64 reference ${worst.toExponential(2)}`);

        // merge (Hogwild! moves blocks): at a page boundary the compressed chunks move without re-quantization
        // (keys pre-RoPE: only their start changes); elsewhere the decoded rows are copied. Either way the merged
        // keys are the source's rotated by +len(dst) and the values are the source's.
        for (const pre of [32, 5]) {
          const d = st.createBlock();
          st.append(d, pre, k.subarray(0, G.nLayer * pre * C), v.subarray(0, G.nLayer * pre * C), rope);
          const before = st.codecStats();
          st.merge(d, b, rope);
          const after = st.codecStats();
          if (pre === 32) {
            assert.is(after.chunks, before.chunks + 2, `${label}: aligned merge moves the 2 chunks`);
            assert.is(after.tokensCompressed, before.tokensCompressed + 64, `${label}: aligned merge keeps them compressed`);
          }
          for (let l = 0; l < G.nLayer; l++) {
            const m = st.read(d, l, pre, n);
            const refK = refRotateAll(rope, got[l]!.k, n, G.nKvHead, pre);
            const ek = maxRel(m.k, refK, 0, n * C);
            assert.ok(ek < 1e-5, `${label}: merge at ${pre}, layer ${l}: keys vs source rotated by +${pre}: ${ek}`);
            assert.ok(m.v.every((x, i) => x === got[l]!.v[i]), `${label}: merge at ${pre}, layer ${l}: values identical`);
          }
          st.freeBlock(d);
        }

        // attention through the per-forward decode chain equals attention over an exact store holding the decoded rows
        const dec = backend.createStore({ ...G });
        try {
          const d = dec.createBlock();
          const kk = new Float32Array(G.nLayer * n * C);
          const vv = new Float32Array(G.nLayer * n * C);
          for (let l = 0; l < G.nLayer; l++) {
            kk.set(got[l]!.k, l * n * C);
            vv.set(got[l]!.v, l * n * C);
          }
          dec.append(d, n, kk, vv, null);
          const nHead = 4;
          const q = rng.f32(3 * nHead * G.headDim);
          const batch = { views: [[b]], positions: [[119, 60, 30]] };
          const batchD = { views: [[d]], positions: [[119, 60, 30]] };
          for (const order of [[0, 1, 2], [2, 0, 1, 1]]) {
            for (const l of order) {
              const a1 = st.attention(l, rope, batch, q, nHead, 0.25);
              const a2 = dec.attention(l, rope, batchD, q, nHead, 0.25);
              const err = maxRel(a1.out, a2.out, 0, a2.out.length);
              assert.ok(err < 1e-5, `${label}: attention layer ${l} (order ${order.join(',')}) vs decoded rows: ${err}`);
            }
          }
        } finally {
          dec.dispose();
        }
      } finally {
        st.dispose();
        ex.dispose();
      }
    }
  }
});

seededTest(s, 'aqua-codec', 'store: cacheBytes keeps decoded chunks between forwards, same values', async (rng) => {
  for (const { name, backend } of await codecBackends()) {
    for (const type of ['aqua', 'higgs', 'uniform'] as const) {
      const preds = randomPredictors(rng, G.nLayer, C, C);
      const base: KvCodec =
        type === 'aqua'
          ? { type, grid: gaussianGrid(2, 16), predictors: preds, rope: ROPE, sinks: 4, buffer: 32, chunkTokens: 32 }
          : { type, bits: 2, sinks: 4, buffer: 32, chunkTokens: 32 };
      const n = 120;
      const k = rng.f32(G.nLayer * n * C);
      const v = rng.f32(G.nLayer * n * C);
      const q = rng.f32(2 * 4 * G.headDim);
      const chunkBytes = 32 * G.nLayer * 2 * C * 4; // decoded f32 pages of one 32-token chunk, all layers
      const results: Float32Array[][] = [];
      const scratch: number[] = [];
      for (const cacheBytes of [0, chunkBytes, 10 * chunkBytes]) {
        const st = backend.createStore({ ...G, codec: { ...base, cacheBytes } });
        try {
          const b = st.createBlock();
          st.append(b, n, k, v, ROPE);
          assert.is(st.codecStats().chunks, 2);
          const outs: Float32Array[] = [];
          for (let rep = 0; rep < 3; rep++)
            for (let l = 0; l < G.nLayer; l++) outs.push(st.attention(l, ROPE, { views: [[b]], positions: [[119, 50]] }, q, 4, 0.25).out);
          results.push(outs);
          scratch.push(st.codecStats().bytesScratch);
        } finally {
          st.dispose();
        }
      }
      for (let i = 0; i < results[0]!.length; i++) {
        assert.ok(results[1]![i]!.every((x, j) => x === results[0]![i]![j]), `${name} ${type}: one chunk kept, call ${i} identical`);
        assert.ok(results[2]![i]!.every((x, j) => x === results[0]![i]![j]), `${name} ${type}: all kept, call ${i} identical`);
      }
      // kept chunks are memory: one chunk kept adds its decoded size, both kept add twice that (scratch aside)
      assert.ok(scratch[1]! >= scratch[0]! + chunkBytes - 32 * 2 * C * 4 * 1 && scratch[2]! > scratch[1]!, `${name} ${type}: bytesScratch ${scratch.join(', ')}`);
      expectThrows(() => backend.createStore({ ...G, codec: { ...base, cacheBytes: -1 } }), InvalidArgumentError, `${name} negative cacheBytes`, /cacheBytes/);
    }
  }
});

seededTest(s, 'aqua-codec', 'store: invalid aqua codecs are typed errors', async (rng) => {
  for (const { name, backend } of await codecBackends()) {
    const preds = randomPredictors(rng, G.nLayer, C, C);
    const base: KvCodec = { type: 'aqua', grid: gaussianGrid(2, 16), predictors: preds, rope: ROPE };
    backend.createStore({ ...G, codec: base }).dispose();
    expectThrows(() => backend.createStore({ ...G, codec: { ...base, rope: undefined } }), InvalidArgumentError, `${name} no rope`, /rope/);
    expectThrows(() => backend.createStore({ ...G, codec: { ...base, predictors: undefined } }), InvalidArgumentError, `${name} no predictors`, /predictors/);
    expectThrows(() => backend.createStore({ ...G, codec: { ...base, predictors: { ...preds, nLayer: 4 } } }), InvalidArgumentError, `${name} layers`, /layers/);
    const short = { ...preds, k: [null, preds.k[1]!.subarray(1), preds.k[2]!] };
    expectThrows(() => backend.createStore({ ...G, codec: { ...base, predictors: short } }), InvalidArgumentError, `${name} shape`, /k\[1\]/);
    const bad = preds.v[2]!.slice();
    bad[7] = NaN;
    expectThrows(
      () => backend.createStore({ ...G, codec: { ...base, predictors: { ...preds, v: [null, preds.v[1]!, bad] } } }),
      InvalidArgumentError,
      `${name} NaN`,
      /not finite/,
    );
    expectThrows(() => backend.createStore({ ...G, codec: { ...base, rope: { ...ROPE, headDim: 8 } } }), InvalidArgumentError, `${name} rope dim`, /headDim/);
  }
});

// ---------------------------------------------------------------------------------------------------
// model level (stories260K)
// ---------------------------------------------------------------------------------------------------




let calibrated: { dir: string; file: string; preds: AquaPredictors } | null = null;
async function storiesPredictors(m: Model): Promise<{ dir: string; file: string; preds: AquaPredictors }> {
  if (calibrated) return calibrated;
  const { readFileSync } = await import('node:fs');
  const text = readFileSync(CORPUS, 'utf8').slice(300000, 330000);
  const dir = mkdtempSync(path.join(tmpdir(), 'aqua-codec-'));
  const file = path.join(dir, 'p2.safetensors');
  const preds = await calibrateAquaKV(m, { text, bits: 2, out: file });
  calibrated = { dir, file, preds };
  return calibrated;
}

seededTest(s, 'aqua-codec', 'model: aqua equals the exact cache before any chunk is encoded (plain and Hogwild!), beats HIGGS with the same grid after (stories260K)', async (rng) => {
  if (!existsSync(STORIES) || !existsSync(CORPUS)) {
    skipLine('aqua-codec model test', `${STORIES} or ${CORPUS} not found`);
    return;
  }
  for (const { name, backend } of await codecBackends()) {
    const exact = await loadModel(STORIES, { backend });
    try {
      const { file, preds } = await storiesPredictors(exact);
      const V = exact.config.nVocab;
      const aqua = await loadModel(STORIES, { backend, kvCache: { type: 'aqua', predictors: file } });
      try {
        const ids = Array.from({ length: 400 }, () => 1 + rng.int(0, V - 2));
        // pageTokens 64: sink page [0,64), buffer 128, chunk 64 -> nothing is encoded before 256 tokens
        const short = ids.slice(0, 255);
        const r0 = await exact.logits(short, { chunk: 64 });
        const a0 = await aqua.logits(short, { chunk: 64 });
        assert.ok(a0.every((x, i) => x === r0[i]), `${name}: aqua logits bit-identical before any chunk is encoded`);
        const prompt = ids.slice(0, 150);
        const ha = await hogwildGreedyRows(exact, prompt, 10);
        const hb = await hogwildGreedyRows(aqua, prompt, 10);
        for (let i = 0; i < ha.length; i++) assert.ok(ha[i]!.every((x, j) => x === hb[i]![j]), `${name}: Hogwild! step ${i} bit-identical with the aqua cache`);
        assert.is(aqua.runtime.store.codecStats().chunks, 0);
        // model.hogwild({ kvCache }) with the aqua type: identical transcripts while nothing is encoded (huge
        // buffer); with a small buffer chunks of the shared history are encoded and the run still completes
        const solveWith = async (kvCache: Record<string, unknown>) => {
          const run = exact.hogwild({ workers: 2, kvCache: kvCache as never });
          try {
            const r = await run.solve('Once upon a time', { maxForwardPasses: 24 }).result;
            return r.workers.map((w) => w.transcript).join('\n|\n');
          } finally {
            run.dispose();
          }
        };
        const tExact = await solveWith({ type: 'f32' });
        const tAqua = await solveWith({ type: 'aqua', predictors: file, buffer: 1 << 20 });
        assert.is(tAqua, tExact, `${name}: hogwild({ kvCache: aqua }) transcripts equal the exact cache's before any encode`);
        const tSmall = await solveWith({ type: 'aqua', predictors: preds, sinks: 0, buffer: 0, chunkTokens: 64 });
        assert.ok(tSmall.length > 0, `${name}: hogwild run over a compressed aqua cache`);
        // a forward decodes only the chunks of its views: block A's logits do not depend on another compressed
        // block B being forwarded in between (chain state, scratch and pointers stay per forward)
        const twoBlocks = async (withB: boolean) => {
          const st = exact.runStore({ type: 'aqua', predictors: preds, buffer: 32, chunkTokens: 64 });
          const rt = exact.runtime;
          try {
            const A = st.createBlock();
            const B = st.createBlock();
            for (let i = 0; i < 320; i += 64) await rt.forward([{ view: [A], tokens: ids.slice(i, i + 64) }], 'none', undefined, st);
            if (withB) for (let i = 0; i < 320; i += 64) await rt.forward([{ view: [B], tokens: ids.slice(80 + i, 144 + i) }], 'none', undefined, st);
            const out = await rt.forward([{ view: [A], tokens: [ids[321]!] }], 'last', undefined, st);
            return { out, chunks: st.codecStats().chunks };
          } finally {
            st.dispose();
          }
        };
        const r1 = await twoBlocks(false);
        const r2 = await twoBlocks(true);
        assert.ok(r2.chunks > r1.chunks && r1.chunks > 0, `${name}: both blocks hold compressed chunks (${r1.chunks}, ${r2.chunks})`);
        assert.ok(r1.out.every((x, i) => x === r2.out[i]), `${name}: block A's logits unaffected by block B's forwards`);
        // after compression: per-run caches on the same model; aqua vs HIGGS with the same grid, no predictors
        const text = (await import('node:fs')).readFileSync(CORPUS, 'utf8').slice(0, 1400);
        const tids = exact.tokenize(text).slice(0, 400);
        const ref = await exact.logits(tids, { chunk: 32 });
        const ga = await exact.logits(tids, { chunk: 32, kvCache: { type: 'aqua', predictors: preds } });
        const gh = await exact.logits(tids, { chunk: 32, kvCache: { type: 'higgs', grid: preds.grid, layer0Grid: preds.grid0 } });
        const from = 256;
        const kA = rowsKl(ga, ref, V, from).kl;
        const kH = rowsKl(gh, ref, V, from).kl;
        console.log(`  ${name}: grid ${preds.grid.name}, KL to exact over rows ${from}..${tids.length - 1}: aqua ${kA.toExponential(3)}, higgs (same grid) ${kH.toExponential(3)}`);
        assert.ok(kA > 0 && kA < kH, `${name}: aqua KL ${kA} < higgs KL ${kH}`);
      } finally {
        aqua.dispose();
      }
    } finally {
      exact.dispose();
    }
  }
});

s('predictors: bad files and objects are typed errors', async () => {
  if (!existsSync(STORIES) || !existsSync(CORPUS)) {
    skipLine('aqua-codec predictor-file test', `${STORIES} or ${CORPUS} not found`);
    return;
  }
  const backend = (await cpuBackends())[0]!.backend as Backend;
  const stories = await loadModel(STORIES, { backend });
  const fixture = await loadModel(FIXTURE, { backend });
  try {
    const { dir, file, preds } = await storiesPredictors(stories);
    // made for another model
    const e1 = expectThrows(() => resolveKvCache({ type: 'aqua', predictors: file }, fixture), ModelFormatError, 'other model file', /another model|layers/);
    assert.is(e1.code, 'FORMAT_UNSUPPORTED_MODEL');
    expectThrows(() => resolveKvCache({ type: 'aqua', predictors: preds }, fixture), ModelFormatError, 'other model object', /layers|another model/);
    // not a predictor file (a model checkpoint)
    const e2 = expectThrows(() => loadAquaPredictors(path.join(FIXTURE, 'model.safetensors'), stories), ModelFormatError, 'model file', /not an AQUA-KV predictor file/);
    assert.is(e2.code, 'FORMAT_INVALID');
    // a tensor missing / a wrong shape
    const md = { ...preds.metadata };
    const miss = path.join(dir, 'missing.safetensors');
    writeSafetensors(miss, [['grid', { dtype: 'F32', shape: [preds.grid.points.length / preds.grid.dim, preds.grid.dim], data: preds.grid.points }]], md);
    const e3 = expectThrows(() => loadAquaPredictors(miss, stories), ModelFormatError, 'missing tensor', /k\.1\.weight/);
    assert.is(e3.code, 'FORMAT_MISSING_TENSOR');
    const wrong = path.join(dir, 'wrong.safetensors');
    const Cs = preds.channels;
    const tensors: [string, { dtype: 'F32'; shape: number[]; data: Float32Array }][] = [];
    for (let l = 1; l < preds.nLayer; l++) {
      tensors.push([`k.${l}.weight`, { dtype: 'F32', shape: l === 2 ? [Cs, Cs + 1] : [Cs, Cs], data: new Float32Array(l === 2 ? Cs * (Cs + 1) : Cs * Cs) }]);
      tensors.push([`k.${l}.bias`, { dtype: 'F32', shape: [Cs], data: new Float32Array(Cs) }]);
      tensors.push([`v.${l}.weight`, { dtype: 'F32', shape: [Cs, 2 * Cs], data: new Float32Array(2 * Cs * Cs) }]);
      tensors.push([`v.${l}.bias`, { dtype: 'F32', shape: [Cs], data: new Float32Array(Cs) }]);
    }
    writeSafetensors(wrong, tensors, md);
    expectThrows(() => loadAquaPredictors(wrong, stories), ModelFormatError, 'wrong shape', /k\.2\.weight/);
    // not a file at all / garbage
    const junk = path.join(dir, 'junk.safetensors');
    writeFileSync(junk, 'not safetensors');
    expectThrows(() => resolveKvCache({ type: 'aqua', predictors: junk }, stories), ModelFormatError, 'junk file');
    // no predictors / a wrong object
    expectThrows(() => resolveKvCache({ type: 'aqua' } as never, stories), InvalidArgumentError, 'no predictors', /predictors/);
    expectThrows(() => resolveKvCache({ type: 'aqua', predictors: 42 } as never, stories), InvalidArgumentError, 'number', /predictors/);
    assert.is(resolveKvCache({ type: 'aqua', predictors: preds, bits: 3 }, stories).codec!.grid!.dim, aquaGridFor(3, 32).dim);
  } finally {
    stories.dispose();
    fixture.dispose();
    if (calibrated) rmSync(calibrated.dir, { recursive: true, force: true });
    calibrated = null;
  }
});

s('cli: --kv / --predictors parse into kvCache options, bad combinations are typed errors', () => {
  assert.equal(kvCacheOption('aqua:2', 'p.safetensors'), { type: 'aqua', predictors: 'p.safetensors', bits: 2 });
  assert.equal(kvCacheOption('aqua', 'p.safetensors'), { type: 'aqua', predictors: 'p.safetensors' });
  assert.equal(kvCacheOption('uniform:3', undefined), { type: 'uniform', bits: 3 });
  assert.equal(kvCacheOption('f16', undefined), { type: 'f16' });
  assert.is(kvCacheOption(undefined, undefined), undefined);
  expectThrows(() => kvCacheOption('aqua:2', undefined), InvalidArgumentError, 'aqua without predictors', /--predictors/);
  expectThrows(() => kvCacheOption('higgs:2', 'p.safetensors'), InvalidArgumentError, 'predictors without aqua', /only used with --kv aqua/);
  expectThrows(() => kvCacheOption(undefined, 'p.safetensors'), InvalidArgumentError, 'predictors alone', /--kv aqua/);
  expectThrows(() => kvCacheOption('zip:2', undefined), InvalidArgumentError, 'unknown type', /--kv must be/);
  expectThrows(() => kvCacheOption('f32:4', undefined), InvalidArgumentError, 'bits on f32', /takes no bits/);
});

s('bits: aquaGridFor counts the fp16 scales', () => {
  // C = 32: one fp16 norm per 32 values = 0.5 bits; C = 1024: 0.016 bits
  assert.is(aquaGridFor(2, 32).name, 'gauss-d8-n4096'); // 1.5 + 0.5
  assert.is(aquaGridFor(3, 32).name, 'gauss-d4-n256'); // 2 + 0.5 (ties with d2-n16: lower MSE)
  assert.is(aquaGridFor(2, 1024).name, 'gauss-d4-n256');
  assert.is(aquaGridFor(4, 1024).name, 'gauss-d2-n256');
  assert.ok(Math.abs(higgsBitsPerValue(gaussianGrid(2, 16), 32) - 2.5) < 1e-12);
  assert.throws(() => aquaGridFor(0.2, 32), /no stored grid/);
});

s.run();
