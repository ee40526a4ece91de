/**
 * Compressed KV cache (AQUA-KV milestone 1: uniform / HIGGS codecs in the block store, no predictors yet):
 *  - store level: after block_append, the chunks older than `buffer` (past the sink page) are encoded and
 *    their pages freed; codecStats bytes match the formula (codes + fp16 scales/zeros per group) and
 *    bytesInUse drops; exact tokens read back bit-identical, compressed ones close; truncate into a
 *    compressed page and merge of a compressed block;
 *  - model level (stories260K, visible SKIP if absent): fewer tokens than sinks+buffer+chunk -> logits
 *    bit-identical to the exact cache; after compression the logits stay close (KL / max error reported),
 *    uniform 4-bit closer than 2-bit; HIGGS 2-bit vs uniform 2-bit reported; a Hogwild! run with the codec
 *    equals the exact cache while no chunk has been quantized.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModel, type Model } from '../ts/index.ts';
import type { Backend, KvCodec } from '../ts/index.ts';
import { gaussianGrid } from '../ts/aqua/grids.ts';
import { backendsUnderTest, skipLine } from './helpers/backends.ts';
import { Rng } from './helpers/rng.ts';
import { rowsKl } from './helpers/metrics.ts';
import { hogwildGreedyRows } from './helpers/aqua.ts';

function mulberry32(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

const SHARED = process.env.HOGWILD_SHARED ?? path.resolve('..', 'shared');
const STORIES = path.join(SHARED, 'models', 'stories260K', 'stories260K.gguf');

/** Every backend under test: the CPU backends and CUDA (codecs on the device, cuda/codec.cu). */
async function codecBackends() {
  return backendsUnderTest();
}

const G = { nLayer: 3, nKvHead: 2, headDim: 16, pageTokens: 16 };
const CK = G.nKvHead * G.headDim;

function randn(rng: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(rng(), 1e-12);
    out[i] = scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
  }
  return out;
}

/** Expected bytes of one compressed chunk of n tokens (all layers). */
function chunkBytes(codec: KvCodec, n: number): number {
  let b = 0;
  for (let l = 0; l < G.nLayer; l++) {
    if (codec.type === 'uniform') {
      const bits = codec.bits!;
      // keys: per channel (one group = the chunk) -> CK scales + CK zeros; values: per token
      b += 4 * Math.ceil((n * CK * bits) / 32) + 2 * 2 * CK;
      b += 4 * Math.ceil((n * CK * bits) / 32) + 2 * 2 * n * (CK / 32); // value group = largest divisor of CK <= 128
    } else {
      const nPts = l === 0 ? 256 : 1 << (2 * codec.bits!);
      const bits = Math.log2(nPts);
      const g = 32; // largest power of two <= 1024 dividing CK = 32
      for (let kv = 0; kv < 2; kv++) b += 4 * Math.ceil((n * (CK / 2) * bits) / 32) + 2 * n * (CK / g);
    }
  }
  return b;
}

const s = suite('aqua-cache');

s('store: chunks past sinks/buffer are encoded once, pages freed, bytes match the formula', async () => {
  for (const { name, backend } of await codecBackends()) {
    for (const codec of [
      { type: 'uniform', bits: 2 },
      { type: 'uniform', bits: 4 },
      { type: 'higgs', bits: 2 },
    ] as KvCodec[]) {
      const full: KvCodec = { ...codec, sinks: 4, buffer: 32, chunkTokens: 32 };
      const st = backend.createStore({ ...G, codec: full });
      const ex = backend.createStore({ ...G });
      try {
        const rng = mulberry32(7);
        const n = 200;
        const k = randn(rng, G.nLayer * n * CK);
        const v = randn(rng, G.nLayer * n * CK);
        const b = st.createBlock();
        const e = ex.createBlock();
        st.append(b, n, k, v, null);
        ex.append(e, n, k, v, null);
        // sink page [0,16) exact; chunks [16,48) [48,80) [80,112) [112,144) end <= 200-32 = 168
        const cs = st.codecStats();
        const label = `${name} ${codec.type}${codec.bits}`;
        assert.is(cs.chunks, 4, `${label} chunks`);
        assert.is(cs.tokensCompressed, 128, `${label} tokens`);
        assert.is(cs.valuesCompressed, 128 * G.nLayer * 2 * CK, `${label} values`);
        assert.is(cs.bytesCompressed, 4 * chunkBytes(codec, 32), `${label} bytes`);
        assert.ok(Math.abs(cs.bitsPerValue - (8 * cs.bytesCompressed) / cs.valuesCompressed) < 1e-12);
        const pageBytes = G.pageTokens * G.nLayer * 2 * CK * 4;
        assert.is(st.stats().bytesInUse, (13 - 8) * pageBytes, `${label} pages freed`);
        assert.is(ex.stats().bytesInUse, 13 * pageBytes);
        console.log(`  ${label}: ${cs.bytesCompressed} B for ${cs.tokensCompressed} tokens = ${cs.bitsPerValue.toFixed(3)} bits/value`);
        for (let l = 0; l < G.nLayer; l++) {
          const a = st.read(b, l);
          const r = ex.read(e, l);
          let err = 0;
          let ref = 0;
          for (let t = 0; t < n; t++) {
            for (let c = 0; c < CK; c++) {
              const i = t * CK + c;
              if (t < 16 || t >= 144) {
                if (a.k[i] !== r.k[i] || a.v[i] !== r.v[i]) assert.unreachable(`${label} exact token ${t} differs`);
              } else {
                err += (a.k[i]! - r.k[i]!) ** 2 + (a.v[i]! - r.v[i]!) ** 2;
                ref += r.k[i]! ** 2 + r.v[i]! ** 2;
              }
            }
          }
          const rel = Math.sqrt(err / ref);
          assert.ok(rel > 0 && rel < (codec.bits === 4 ? 0.2 : 0.75), `${label} layer ${l} rel err ${rel}`);
        }
        // truncate into a compressed page (token 100 is in page 6, compressed): that page turns exact again
        const before = st.read(b, 1, 0, 100);
        st.truncate(b, 100);
        const after = st.read(b, 1, 0, 100);
        assert.equal(Array.from(after.k), Array.from(before.k), `${label} truncate keeps decoded values`);
        assert.is(st.codecStats().tokensCompressed, 80, `${label} compressed tokens after truncate`);
        // merge of a block holding compressed pages copies the decoded values
        const d = st.createBlock();
        st.merge(d, b, null);
        assert.equal(Array.from(st.read(d, 2).v), Array.from(st.read(b, 2).v), `${label} merge`);
        // growth after the truncate: the block keeps working
        st.append(b, 8, k.subarray(0, G.nLayer * 8 * CK), v.subarray(0, G.nLayer * 8 * CK), null);
        assert.is(st.blockLength(b), 108);
      } finally {
        st.dispose();
        ex.dispose();
      }
    }
  }
});

s('store: codec validation', async () => {
  for (const { backend } of await codecBackends()) {
    assert.throws(() => backend.createStore({ ...G, codec: { type: 'uniform', bits: 9 } }), /bits/);
    assert.throws(() => backend.createStore({ ...G, codec: { type: 'uniform', chunkTokens: 24 } }), /multiple of pageTokens/);
    assert.throws(() => backend.createStore({ ...G, codec: { type: 'aqua' } }), /codec.grid is required for 'aqua'/);
    assert.throws(() => backend.createStore({ ...G, codec: { type: 'zip' } as unknown as KvCodec }), /codec.type/);
    const st = backend.createStore({ ...G, codec: { type: 'higgs', grid: gaussianGrid(2, 64), layer0Grid: null } });
    assert.is(st.codecStats().chunks, 0);
    st.dispose();
  }
});

// ---------------------------------------------------------------------------------------------------
// model level (stories260K)
// ---------------------------------------------------------------------------------------------------


async function withModels(backend: Backend, fn: (m: Record<string, Model>) => Promise<void>): Promise<void> {
  const cfgs: Record<string, Parameters<typeof loadModel>[1]> = {
    f32: {},
    u2: { kvCache: { type: 'uniform', bits: 2 } },
    u4: { kvCache: { type: 'uniform', bits: 4 } },
    h2: { kvCache: { type: 'higgs', bits: 2 } },
  };
  const models: Record<string, Model> = {};
  try {
    for (const [k, o] of Object.entries(cfgs)) models[k] = await loadModel(STORIES, { ...o, backend });
    await fn(models);
  } finally {
    for (const m of Object.values(models)) m.dispose();
  }
}

s('model: exact below sinks+buffer+chunk, close after compression (stories260K)', async () => {
  if (!existsSync(STORIES)) {
    skipLine('aqua-cache model tests', `${STORIES} not found`);
    return;
  }
  for (const { name, backend } of await codecBackends()) {
    await withModels(backend, async (m) => {
      const V = m.f32!.config.nVocab;
      const rng = mulberry32(3);
      const ids = Array.from({ length: 448 }, () => 1 + Math.floor(rng() * (V - 1)));
      // pageTokens 64: sink page [0,64), buffer 128, chunk 64 -> nothing is encoded before 256 tokens
      const short = ids.slice(0, 255);
      const ref = await m.f32!.logits(short, { chunk: 64 });
      for (const k of ['u2', 'u4', 'h2']) {
        const got = await m[k]!.logits(short, { chunk: 64 });
        assert.ok(got.every((x, i) => x === ref[i]), `${name} ${k}: logits bit-identical before any chunk is encoded`);
        assert.is(m[k]!.runtime.store.codecStats().chunks, 0);
      }
      const refL = await m.f32!.logits(ids, { chunk: 64 });
      const res: Record<string, { kl: number; maxErr: number }> = {};
      for (const k of ['u2', 'u4', 'h2']) {
        const got = await m[k]!.logits(ids, { chunk: 64 });
        // rows of the first 256 tokens saw no compressed chunk
        assert.ok(got.subarray(0, 256 * V).every((x, i) => x === refL[i]), `${name} ${k}: first 256 rows exact`);
        res[k] = rowsKl(got, refL, V, 256);
        assert.ok(res[k]!.kl > 0 && res[k]!.kl < 0.5, `${name} ${k}: KL ${res[k]!.kl}`);
      }
      console.log(
        `  ${name} stories260K, 448 random tokens, rows 256..447 (64-token forward calls): ` +
          Object.entries(res)
            .map(([k, r]) => `${k} KL ${r.kl.toExponential(3)} max|dlogit| ${r.maxErr.toFixed(4)}`)
            .join('; '),
      );
      assert.ok(res.u4!.kl < res.u2!.kl, `${name}: 4-bit uniform closer than 2-bit (${res.u4!.kl} vs ${res.u2!.kl})`);
    });
  }
});



s('hogwild: the codec matches the exact cache while nothing is quantized (stories260K)', async () => {
  if (!existsSync(STORIES)) {
    skipLine('aqua-cache hogwild test', `${STORIES} not found`);
    return;
  }
  for (const { name, backend } of await codecBackends()) {
    const exact = await loadModel(STORIES, { backend });
    const comp = await loadModel(STORIES, { backend, kvCache: { type: 'higgs', bits: 2 } });
    try {
      const V = exact.config.nVocab;
      const rng = mulberry32(11);
      const prompt = Array.from({ length: 150 }, () => 1 + Math.floor(rng() * (V - 1)));
      const a = await hogwildGreedyRows(exact, prompt, 12);
      const b = await hogwildGreedyRows(comp, prompt, 12);
      for (let i = 0; i < a.length; i++) assert.ok(a[i]!.every((x, j) => x === b[i]![j]), `${name}: hogwild step ${i} bit-identical`);
      assert.is(comp.runtime.store.codecStats().chunks, 0);
    } finally {
      exact.dispose();
      comp.dispose();
    }
  }
});

s.run();
