/**
 * KV codecs and quantizers on CUDA against the native backend on the same inputs (cuda/codec.cu,
 * cuda/quant_api.cu; a visible SKIP where CUDA or native is absent):
 *  - store level (uniform 2/3 bits, HIGGS with a layer-0 grid, AQUA with layer 0 on a grid or exact fp16;
 *    f32 and f16 stores, head_dim 64): the same chunks are compressed (stats equal, byte accounting equal);
 *    the stored codes and fp16 scales are compared chunk by chunk and the fraction of identical codes is printed
 *    and must be >= 99.9 % (uniform / HIGGS / AQUA layer 0: same operations in the same order; a grid tie or a
 *    1-ulp RoPE difference may flip a rare code) resp. >= 99 % for AQUA layers >= 1 (the predictor GEMMs sum in
 *    another order than the CPU's matmul kernels); decoded rows agree (relMSE <= 1e-4 over the compressed rows:
 *    a flipped code moves one grid point of one group), exact rows are bit-identical (keys rotated at append:
 *    within 1e-6, the CPU's AVX2 RoPE uses FMA);
 *  - attention over compressed views (two sequences, a shared compressed block + a private exact one, layers in
 *    order as a forward runs them, then out of order): CUDA vs native, max rel. error <= 1e-3;
 *  - merge at a page boundary (AQUA moves the codes: same codes as the source chunk on CUDA) and elsewhere,
 *    truncate into a compressed page: read-back CUDA vs native;
 *  - model level (a random-weight llama, f32 weights): logits with kvCache uniform / higgs / aqua (predictors
 *    calibrated on native), and Hogwild! decode steps with aqua (2 workers sharing a compressed prompt): the
 *    CUDA-vs-native KL is at most a tenth of the codec's own KL to the exact cache (plus 1e-6): the backends'
 *    difference (fp32 sum order, a rare flipped code) is small against the compression error itself;
 *  - quantizer table: HIGGS / uniform codes, scales and decodes identical, grid_nearest identical, ridge
 *    normal equations within 1e-5 relative (CUDA sums in double, the CPU in float blocks of 256 rows).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModel, type Model } from '../ts/index.ts';
import type { Backend, KvCodec, KvStore, RopeParams } from '../ts/index.ts';
import { gaussianGrid } from '../ts/aqua/grids.ts';
import { calibrateAquaKV, type AquaPredictors } from '../ts/aqua/calibrate.ts';
import type { HiggsConfig, UniformConfig } from '../ts/aqua/types.ts';
import { ensureRandomLlama } from '../bench/gguf-writer.ts';
import { backendPairs, skipLine, cudaAndNative } from './helpers/backends.ts';
import { seededTest } from './helpers/harness.ts';
import { expectExact, relMax, rowsKl } from './helpers/metrics.ts';
import type { Rng } from './helpers/rng.ts';
import { refUnpack } from './ref/bits.ts';
import { layerCorrelatedKv } from './helpers/aqua.ts';
import { refViewAttention, type RefBlockData } from './ref/attention.ts';

const NAME = 'aqua-cuda';
const S = suite(NAME);

const pair = (what: string) => cudaAndNative(`${NAME} ${what}`);


function relMse(a: ArrayLike<number>, b: ArrayLike<number>, from: number, to: number): number {
  let e = 0;
  let n = 0;
  for (let i = from; i < to; i++) {
    e += (a[i]! - b[i]!) ** 2;
    n += b[i]! ** 2;
  }
  return e / Math.max(n, 1e-30);
}

const G = { nLayer: 3, nKvHead: 2, headDim: 64, pageTokens: 16 };
const C = G.nKvHead * G.headDim;

function randomPredictors(rng: Rng, nLayer: number, Ck: number, Cv: number): AquaPredictors {
  const k: (Float32Array | null)[] = [rng.f32(Ck, 1.5)];
  const v: (Float32Array | null)[] = [rng.f32(Cv, 0.5)];
  for (let l = 1; l < nLayer; l++) {
    k.push(rng.f32((Ck + 1) * Ck, 0.6 / Math.sqrt(Ck)));
    v.push(rng.f32((Ck + Cv + 1) * Cv, 0.6 / Math.sqrt(Ck + Cv)));
  }
  return { nLayer, channels: Ck, group: 128, grid: gaussianGrid(2, 16), grid0: gaussianGrid(2, 256), k, v } as unknown as AquaPredictors;
}

interface CodeCount {
  same: number;
  total: number;
}

/** Compares the codes of one chunk / layer / side; returns identical and total codes. */
function compareChunk(a: ReturnType<NonNullable<KvStore['codecChunk']>>, b: ReturnType<NonNullable<KvStore['codecChunk']>>, bits: number, nCodes: number, what: string): CodeCount {
  assert.is(a.start, b.start, `${what}: chunk start`);
  assert.is(a.nTok, b.nTok, `${what}: chunk tokens`);
  assert.is(a.exact, b.exact, `${what}: exact flag`);
  assert.is(a.codes.length, b.codes.length, `${what}: code words`);
  assert.is(a.scales.length, b.scales.length, `${what}: scales`);
  assert.is(a.zeros.length, b.zeros.length, `${what}: zeros`);
  let same = 0;
  let total = 0;
  if (a.exact) {
    for (let i = 0; i < a.scales.length; i++) same += a.scales[i] === b.scales[i] ? 1 : 0;
    return { same, total: a.scales.length };
  }
  const ca = refUnpack(a.codes, bits, nCodes);
  const cb = refUnpack(b.codes, bits, nCodes);
  for (let i = 0; i < nCodes; i++) same += ca[i] === cb[i] ? 1 : 0;
  total += nCodes;
  for (let i = 0; i < a.scales.length; i++) same += a.scales[i] === b.scales[i] ? 1 : 0;
  for (let i = 0; i < a.zeros.length; i++) same += a.zeros[i] === b.zeros[i] ? 1 : 0;
  total += a.scales.length + a.zeros.length;
  return { same, total };
}

seededTest(S, NAME, 'store: uniform / HIGGS / AQUA codes, stats, reads, attention, merge, truncate: CUDA vs native', async (rng) => {
  const p = await pair('store');
  if (!p) return;
  const report: string[] = [];
  const cases: { label: string; codec: (rope: RopeParams) => KvCodec; bits: (l: number) => number; d: (l: number) => number; rope: boolean; aqua: boolean }[] = [
    { label: 'uniform2', codec: () => ({ type: 'uniform', bits: 2 }), bits: () => 2, d: () => 1, rope: false, aqua: false },
    { label: 'uniform3', codec: () => ({ type: 'uniform', bits: 3 }), bits: () => 3, d: () => 1, rope: false, aqua: false },
    {
      label: 'higgs',
      codec: () => ({ type: 'higgs', grid: gaussianGrid(2, 16), layer0Grid: gaussianGrid(4, 256) }),
      bits: (l) => (l === 0 ? 8 : 4),
      d: (l) => (l === 0 ? 4 : 2),
      rope: false,
      aqua: false,
    },
    {
      label: 'aqua',
      codec: (rope) => ({ type: 'aqua', grid: gaussianGrid(2, 16), layer0Grid: gaussianGrid(2, 256), predictors: randomPredictors(rng, G.nLayer, C, C), rope }),
      bits: (l) => (l === 0 ? 8 : 4),
      d: () => 2,
      rope: true,
      aqua: true,
    },
    {
      label: 'aqua-l0exact',
      codec: (rope) => ({ type: 'aqua', grid: gaussianGrid(2, 16), layer0Exact: true, predictors: randomPredictors(rng, G.nLayer, C, C), rope }),
      bits: () => 4,
      d: () => 2,
      rope: true,
      aqua: true,
    },
  ];
  for (const dtype of ['f32', 'f16'] as const) {
    for (const cs of cases) {
      const rope: RopeParams = { headDim: G.headDim, style: rng.bool() ? 'normal' : 'neox', theta: 10000 };
      const seed = rng.int(0, 1000);
      const codec: KvCodec = { ...cs.codec(rope), sinks: 4, buffer: 32, chunkTokens: 32, seed };
      const label = `${cs.label} ${dtype}`;
      const n = 200;
      const { k, v } = layerCorrelatedKv(rng, G.nLayer, n, C);
      const stores = [p.cuda.createStore({ ...G, dtype, codec }), p.native.createStore({ ...G, dtype, codec })];
      try {
        const blk = stores.map((st) => st.createBlock());
        // uniform / HIGGS: keys appended as given (bit-identical inputs on both); AQUA: rotated at append
        stores.forEach((st, i) => st.append(blk[i]!, n, k, v, cs.rope ? rope : null));
        const [sc, sn] = stores.map((st) => st.codecStats());
        // sink page [0,16); chunks [16,48) .. [112,144) end <= 200 - 32
        assert.is(sn!.chunks, 4, `${label}: native chunks`);
        for (const f of ['chunks', 'tokensCompressed', 'valuesCompressed', 'bytesCompressed'] as const) assert.is(sc![f], sn![f], `${label}: ${f}`);
        const cnt = [{ same: 0, total: 0 }, { same: 0, total: 0 }]; // layer 0, layers >= 1
        for (const t0 of [16, 48, 80, 112])
          for (let l = 0; l < G.nLayer; l++)
            for (const w of ['k', 'v'] as const) {
              const a = stores[0]!.codecChunk!(blk[0]!, t0 + 3, l, w);
              const b = stores[1]!.codecChunk!(blk[1]!, t0 + 3, l, w);
              const r = compareChunk(a, b, cs.bits(l), (32 * C) / cs.d(l), `${label} chunk ${t0} layer ${l} ${w}`);
              const c = cnt[l === 0 ? 0 : 1]!;
              c.same += r.same;
              c.total += r.total;
            }
        const f0 = cnt[0]!.same / cnt[0]!.total;
        const f1 = cnt[1]!.same / cnt[1]!.total;
        assert.ok(f0 >= 0.999, `${label}: layer-0 identical codes ${f0}`);
        assert.ok(f1 >= (cs.aqua ? 0.99 : 0.999), `${label}: layers >= 1 identical codes ${f1}`);
        let worst = 0;
        const reads = stores.map((st, i) => Array.from({ length: G.nLayer }, (_, l) => st.read(blk[i]!, l)));
        for (let l = 0; l < G.nLayer; l++) {
          const [a, b] = [reads[0]![l]!, reads[1]![l]!];
          for (const [x, y, isK] of [[a.k, b.k, true], [a.v, b.v, false]] as const) {
            // exact rows: bit-identical, except keys rotated at append (the CPU's AVX2 RoPE uses FMA: 1 float32
            // ulp, which in an f16 store can flip the rounding to the neighbouring f16 value: 2^-11 relative)
            for (const [s0, s1] of [[0, 16], [144, 200]] as const) {
              if (isK && cs.rope) {
                const e = relMax(x.subarray(s0 * C, s1 * C), y.subarray(s0 * C, s1 * C));
                const tol = dtype === 'f16' ? 2 ** -10 : 1e-6;
                assert.ok(e <= tol, `${label}: exact rows ${s0}..${s1} layer ${l} keys differ by ${e}`);
              } else {
                for (let i = s0 * C; i < s1 * C; i++) if (x[i] !== y[i]) assert.unreachable(`${label}: exact row ${Math.floor(i / C)} layer ${l} differs`);
              }
            }
            // a code that differs moves its d values to a neighbouring grid point (a change of the order of the
            // values themselves); every other difference is float rounding. So the decoded relMSE is bounded by
            // the share of differing codes (times 2) plus rounding.
            const e = relMse(x, y, 16 * C, 144 * C);
            worst = Math.max(worst, e);
            const differ = 1 - (l === 0 ? f0 : f1);
            assert.ok(e <= 1e-4 + 2 * differ, `${label}: layer ${l} decoded relMSE CUDA vs native ${e} (codes differing: ${differ})`);
          }
        }
        // attention: a shared compressed block + a private exact block; layers in forward order, then out of order
        const priv = stores.map((st) => st.createBlock());
        const kp = rng.f32(G.nLayer * 5 * C);
        const vp = rng.f32(G.nLayer * 5 * C);
        stores.forEach((st, i) => st.append(priv[i]!, 5, kp, vp, rope));
        const nHead = 4;
        const q = rng.f32(4 * nHead * G.headDim);
        // each backend's attention over compressed pages against the float64 reference on the values that backend
        // decoded (its own read()): independent of the rare codes in which the two backends differ
        let eAtt = 0;
        const shape = { nHead, nKvHead: G.nKvHead, headDim: G.headDim, headDimV: G.headDim };
        const positions = [[204, 150], [199, 20]];
        for (const l of [0, 1, 2, 2, 0, 1]) {
          stores.forEach((st, i) => {
            const got = st.attention(l, rope, { views: [[blk[i]!, priv[i]!], [blk[i]!]], positions }, q, nHead, 0.125);
            const data = [blk[i]!, priv[i]!].map((b): RefBlockData => ({ len: st.blockLength(b), ...st.read(b, l) }));
            const want = refViewAttention(shape, rope, [[data[0]!, data[1]!], [data[0]!]], positions, q, 0.125);
            const e = relMax(got.out, want.out);
            eAtt = Math.max(eAtt, e);
            assert.ok(e <= 1e-4, `${label}: attention layer ${l} on ${i === 0 ? 'CUDA' : 'native'} vs the float64 reference ${e}`);
          });
        }
        const differAll = 1 - Math.min(f0, f1);
        // merges (page-aligned: AQUA moves the codes) and truncate into a compressed page
        let eMerge = 0;
        for (const pre of [32, 5]) {
          const d = stores.map((st) => st.createBlock());
          stores.forEach((st, i) => st.append(d[i]!, pre, k.subarray(0, G.nLayer * pre * C), v.subarray(0, G.nLayer * pre * C), rope));
          stores.forEach((st, i) => st.merge(d[i]!, blk[i]!, rope));
          const [mc, mn] = stores.map((st) => st.codecStats());
          assert.is(mc!.chunks, mn!.chunks, `${label}: merge at ${pre}: chunks`);
          assert.is(mc!.tokensCompressed, mn!.tokensCompressed, `${label}: merge at ${pre}: tokens`);
          if (cs.aqua && pre === 32) {
            const a = stores[0]!.codecChunk!(d[0]!, 32 + 48 + 3, 1, 'k');
            const b = stores[0]!.codecChunk!(blk[0]!, 48 + 3, 1, 'k');
            expectExact(a.codes, b.codes, `${label}: CUDA merge moved the codes`);
          }
          for (let l = 0; l < G.nLayer; l++) {
            const [a, b] = stores.map((st, i) => st.read(d[i]!, l));
            const e = Math.max(relMse(a!.k, b!.k, 0, a!.k.length), relMse(a!.v, b!.v, 0, a!.v.length));
            eMerge = Math.max(eMerge, e);
            assert.ok(e <= 1e-4 + 2 * differAll, `${label}: merge at ${pre} layer ${l}: relMSE ${e}`);
          }
          stores.forEach((st, i) => st.freeBlock(d[i]!));
        }
        stores.forEach((st, i) => st.truncate(blk[i]!, 100));
        const [tc, tn] = stores.map((st) => st.codecStats());
        assert.is(tc!.tokensCompressed, tn!.tokensCompressed, `${label}: truncate: tokens`);
        for (let l = 0; l < G.nLayer; l++) {
          const [a, b] = stores.map((st, i) => st.read(blk[i]!, l));
          const e = relMse(a!.k, b!.k, 0, a!.k.length);
          assert.ok(e <= 1e-4 + 2 * differAll, `${label}: truncate layer ${l}: relMSE ${e}`);
        }
        report.push(
          `${label}: identical codes L0 ${(100 * f0).toFixed(3)} % L>=1 ${(100 * f1).toFixed(3)} %, decoded relMSE ${worst.toExponential(1)}, attention ${eAtt.toExponential(1)}, merge ${eMerge.toExponential(1)}`,
        );
      } finally {
        for (const st of stores) st.dispose();
      }
    }
  }
  for (const r of report) console.log(`  ${r}`);
});


seededTest(S, NAME, 'model: logits with kvCache uniform / higgs / aqua and Hogwild! aqua steps: CUDA vs native (random llama)', async (rng) => {
  const p = await pair('model');
  if (!p) return;
  const file = ensureRandomLlama({ nEmbd: 256, nLayer: 4, nHead: 4, nKvHead: 2, nFf: 512, nVocab: 512, contextLength: 2048, type: 'f32', std: 0.08 });
  const models: Model[] = [];
  try {
    const nat = await loadModel(file, { backend: p.native });
    models.push(nat);
    const cud = await loadModel(file, { backend: p.cuda });
    models.push(cud);
    const V = nat.config.nVocab;
    const calib = Array.from({ length: 700 }, () => 3 + rng.int(0, V - 4));
    const preds = await calibrateAquaKV(nat, { tokenIds: calib, bits: 2, chunkTokens: 350, holdOut: 0 });
    const ids = Array.from({ length: 420 }, () => 3 + rng.int(0, V - 4));
    const kvs: Record<string, Record<string, unknown>> = {
      uniform2: { type: 'uniform', bits: 2, buffer: 32, chunkTokens: 64 },
      higgs2: { type: 'higgs', bits: 2, buffer: 32, chunkTokens: 64 },
      aqua2: { type: 'aqua', predictors: preds, buffer: 32, chunkTokens: 64 },
      aqua2kept: { type: 'aqua', predictors: preds, buffer: 32, chunkTokens: 64, cacheBytes: 1 << 26 },
    };
    const from = 160; // rows after the first compressed chunk
    const refN = await nat.logits(ids, { chunk: 32 });
    const refC = await cud.logits(ids, { chunk: 32 });
    const line: string[] = [`exact relMax ${relMax(refC, refN).toExponential(1)}`];
    for (const [k, kv] of Object.entries(kvs)) {
      const a = await nat.logits(ids, { chunk: 32, kvCache: kv as never });
      const b = await cud.logits(ids, { chunk: 32, kvCache: kv as never });
      const klCodec = rowsKl(a, refN, V, from).kl;
      const klX = rowsKl(b, a, V, from).kl;
      line.push(`${k}: KL(native codec, exact) ${klCodec.toExponential(2)} KL(cuda, native) ${klX.toExponential(2)}`);
      assert.ok(klCodec > 0, `${k}: the codec changed the logits on native`);
      assert.ok(klX <= 0.1 * klCodec + 1e-6, `${k}: CUDA vs native KL ${klX} vs the codec's own ${klCodec}`);
    }
    // Hogwild!: 2 workers share a compressed prompt (aqua), tokens chosen on native and fed to both
    const kv = { type: 'aqua', predictors: preds, buffer: 32, chunkTokens: 64 };
    const stores = [nat.runStore(kv as never), cud.runStore(kv as never)];
    try {
      const mods = [nat, cud];
      const blocks = stores.map((st) => ({ common: st.createBlock(), w: [st.createBlock(), st.createBlock()] }));
      const prompt = ids.slice(0, 300);
      for (let i = 0; i < 2; i++) await mods[i]!.runtime.forward([{ view: [blocks[i]!.common], tokens: prompt }], 'none', undefined, stores[i]!);
      assert.ok(stores[0]!.codecStats().chunks > 0 && stores[1]!.codecStats().chunks === stores[0]!.codecStats().chunks, 'prompt compressed on both');
      let feed = [[5], [9]];
      let worst = 0;
      for (let step = 0; step < 40; step++) {
        const rows: Float32Array[] = [];
        for (let i = 0; i < 2; i++) {
          const b = blocks[i]!;
          const seqs = [0, 1].map((w) => ({ view: [b.common, b.w[1 - w]!, b.w[w]!], tokens: feed[w]! }));
          rows.push(await mods[i]!.runtime.forward(seqs, 'last', undefined, stores[i]!));
        }
        const e = rowsKl(rows[1]!, rows[0]!, V, 0).kl;
        worst = Math.max(worst, e);
        const am = (r: Float32Array, w: number) => {
          let best = 0;
          for (let j = 1; j < V; j++) if (r[w * V + j]! > r[w * V + best]!) best = j;
          return best;
        };
        feed = [[am(rows[0]!, 0)], [am(rows[0]!, 1)]];
      }
      assert.is(stores[1]!.codecStats().chunks, stores[0]!.codecStats().chunks, 'Hogwild!: same chunks compressed');
      line.push(`hogwild aqua 40 steps: max KL(cuda, native) per step ${worst.toExponential(2)}`);
      assert.ok(worst <= 1e-3, `Hogwild! aqua: CUDA vs native KL per step ${worst}`);
    } finally {
      for (const st of stores) st.dispose();
    }
    console.log(`  ${line.join('\n  ')}`);
  } finally {
    for (const m of models) m.dispose();
  }
});

seededTest(S, NAME, 'quantizer table: HIGGS / uniform / grid_nearest identical, ridge normal equations close: CUDA vs native', async (rng) => {
  const p = await pair('quant');
  if (!p) return;
  const qc = p.cuda.quant;
  const qn = p.native.quant;
  if (!qc || !qn) {
    skipLine(`${NAME} quant`, `a build without hwkv_quant_api (cuda: ${!!qc}, native: ${!!qn})`);
    return;
  }
  for (const grid of [gaussianGrid(1, 8), gaussianGrid(2, 16), gaussianGrid(2, 256), gaussianGrid(4, 256), gaussianGrid(8, 256)]) {
    for (const channels of [128, 1024, 96]) {
      const cfg: HiggsConfig = { channels, grid, signs: true, seed: rng.int(0, 1000) };
      const nTok = rng.int(1, 40);
      const x = rng.f32(nTok * channels, 2);
      const a = qc.higgsEncode(cfg, x);
      const b = qn.higgsEncode(cfg, x);
      expectExact(a.codes, b.codes, `higgs ${grid.name} C ${channels}: codes`);
      expectExact(a.scales, b.scales, `higgs ${grid.name} C ${channels}: scales`);
      const base = rng.f32(nTok * channels);
      expectExact(qc.higgsDecode(cfg, b, base.slice(), true), qn.higgsDecode(cfg, b, base.slice(), true), `higgs ${grid.name}: decode (accumulate)`);
      const z = rng.f32(97 * grid.dim, 1.5);
      expectExact(qc.gridNearest(grid, z), qn.gridNearest(grid, z), `grid_nearest ${grid.name}`);
    }
  }
  for (const cfg of [
    { channels: 128, bits: 2, axis: 'token', group: 128 },
    { channels: 96, bits: 3, axis: 'token', group: 32 },
    { channels: 100, bits: 4, axis: 'channel', group: 7 },
    { channels: 256, bits: 8, axis: 'channel', group: 64 },
  ] as UniformConfig[]) {
    const nTok = rng.int(1, 70);
    const x = rng.f32(nTok * cfg.channels, 3);
    const a = qc.uniformEncode(cfg, x);
    const b = qn.uniformEncode(cfg, x);
    expectExact(a.codes, b.codes, `uniform ${JSON.stringify(cfg)}: codes`);
    expectExact(a.scales, b.scales, `uniform: scales`);
    expectExact(a.zeros, b.zeros, `uniform: zeros`);
    expectExact(qc.uniformDecode(cfg, b), qn.uniformDecode(cfg, b), `uniform: decode`);
  }
  // ridge: XᵀX, XᵀY, Σy² (double on CUDA; float blocks of 256 rows summed in double on the CPU)
  for (const [pp, qq, n] of [[16, 8, 1000], [130, 64, 700], [0, 5, 33]] as const) {
    const ac = qc.ridgeCreate(pp, qq);
    const an = qn.ridgeCreate(pp, qq);
    for (let rep = 0; rep < 2; rep++) {
      const x = rng.f32(n * pp);
      const y = rng.f32(n * qq);
      for (let i = 0; i < n; i++) if (pp > 0) x[i * pp] = x[i * pp]! + 3; // a non-zero mean column
      qc.ridgeAccumulate(ac, x, y);
      qn.ridgeAccumulate(an, x, y);
    }
    const e = Math.max(relMax(ac.xtx, an.xtx), relMax(ac.xty, an.xty), relMax(ac.yy, an.yy));
    assert.ok(e <= 1e-5, `ridge p ${pp} q ${qq}: normal equations CUDA vs native ${e}`);
    if (pp > 0) {
      const wc = qc.ridgeSolve(ac, 1e-3);
      const wn = qn.ridgeSolve(an, 1e-3);
      assert.ok(relMax(wc, wn) <= 1e-3, `ridge p ${pp}: solutions ${relMax(wc, wn)}`);
    }
  }
});

S.run();
