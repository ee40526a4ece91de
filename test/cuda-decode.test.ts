/**
 * CUDA decode path (runs where the CUDA backend is available, a visible SKIP elsewhere):
 *  - decode attention kernel (head_dim 64 / 128, f16 and f32 stores, 4..16 rows per block, long shared blocks
 *    split over many pages and split-K chunks): CUDA attention == the native backend on the same store contents
 *    (keys appended without rotation, so both stores hold bit-identical values), out and lse;
 *  - Hogwild! decode steps of a random llama (f16 weights: GEMV path; f16 KV store): CUDA with CUDA graphs ==
 *    CUDA without graphs (HWKV_CUDA_GRAPHS=0; the replayed graph must see every step's new inputs) and ==
 *    the native backend (2e-2 relative: the prefill's GEMMs round activations to f16 on CUDA).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModel } from '../ts/index.ts';
import type { Backend, KvStore, RopeParams } from '../ts/backend/types.ts';
import { ensureRandomLlama } from '../bench/gguf-writer.ts';
import { backendsUnderTest, skipLine, cudaAndNative } from './helpers/backends.ts';
import { seededTest } from './helpers/harness.ts';
import { expectClose, printWorstErrors, relMax } from './helpers/metrics.ts';
import type { Rng } from './helpers/rng.ts';

const NAME = 'cuda-decode';
const S = suite(NAME);


const pair = () => cudaAndNative(NAME);

seededTest(S, NAME, 'decode attention kernels (FMA and tensor-core; head_dim 64/128, f16/f32 store, shared long blocks, GQA): CUDA == native', async (rng: Rng) => {
  const p = await pair();
  if (!p) return;
  // HWKV_CUDA_ATTN picks the decode kernel for F16 stores with > 4 rows per block (read at every call):
  // 'fma' (kind 1) and 'mma' (tensor cores, kind 2; chosen automatically only for blocks of >= 16K keys)
  const saved = process.env.HWKV_CUDA_ATTN;
  try {
    for (const kernel of ['fma', 'mma']) {
      process.env.HWKV_CUDA_ATTN = kernel;
      await attentionCases(p, rng, kernel);
    }
  } finally {
    if (saved === undefined) delete process.env.HWKV_CUDA_ATTN;
    else process.env.HWKV_CUDA_ATTN = saved;
  }
  printWorstErrors(NAME);
});

async function attentionCases(p: { cuda: Backend; native: Backend }, rng: Rng, kernel: string): Promise<void> {
  for (const headDim of [64, 128]) {
    for (const dtype of ['f16', 'f32'] as const) {
      for (const group of [1, 2, 4, 8]) {
        const nKvHead = rng.int(1, 3);
        const nHead = nKvHead * group;
        const nSeq = rng.int(1, 5);
        const pageTokens = rng.pick([16, 64]);
        const rope: RopeParams = { headDim, rotaryDim: headDim, style: rng.pick(['neox', 'normal'] as const), theta: 10000, scaling: { type: 'none' } };
        const params = { nLayer: 2, nKvHead, headDim, headDimV: headDim, pageTokens, dtype };
        const stores: KvStore[] = [p.cuda.createStore(params), p.native.createStore(params)];
        try {
          const lens = [rng.int(200, 700), rng.pick([0, rng.int(1, 40)]), ...Array.from({ length: nSeq }, () => rng.int(0, 20))];
          const ids: number[][] = [[], []];
          for (const n of lens) {
            const k = rng.f32(2 * n * nKvHead * headDim);
            const v = rng.f32(2 * n * nKvHead * headDim);
            stores.forEach((st, i) => {
              const id = st.createBlock();
              // stored as given (no rotation on append): both stores then hold bit-identical (f16-rounded) values,
              // and the comparison isolates the attention kernels
              if (n > 0) st.append(id, n, k, v, null);
              ids[i]!.push(id);
            });
          }
          const views: number[][][] = [[], []];
          const positions: number[][] = [];
          for (let s = 0; s < nSeq; s++) {
            const others = Array.from({ length: nSeq }, (_, j) => j).filter((j) => j !== s && rng.bool(0.7));
            const order = [0, 1, ...others.map((j) => 2 + j), 2 + s];
            for (let i = 0; i < 2; i++) views[i]!.push(order.map((o) => ids[i]![o]!));
            const total = order.reduce((a, o) => a + lens[o]!, 0);
            const pos = [total - 1];
            if (rng.bool(0.5)) pos.push(rng.int(0, total));
            positions.push(pos);
          }
          const nQ = positions.reduce((a, x) => a + x.length, 0);
          const q = rng.f32(nQ * nHead * headDim, 2);
          const scale = 1 / Math.sqrt(headDim);
          const [a, b] = stores.map((st, i) => st.attention(1, rope, { views: views[i]!, positions }, q, nHead, scale));
          const what = `headDim=${headDim} ${dtype} group=${group} nKv=${nKvHead} nSeq=${nSeq} page=${pageTokens} lens=${JSON.stringify(lens)}`;
          expectClose(a!.out, b!.out, 2e-5, `${kernel} ${what}: out`, `attn-${dtype}-${kernel}/cuda-vs-native`);
          expectClose(a!.lse, b!.lse, 2e-5, `${kernel} ${what}: lse`, `lse-${dtype}-${kernel}/cuda-vs-native`);
        } finally {
          for (const st of stores) st.dispose();
        }
      }
    }
  }
}

S('Hogwild! decode on CUDA (f16 weights, f16 KV): graphs == no graphs, == native', async () => {
  const p = await pair();
  if (!p) return;
  const report: string[] = [];
  for (const shape of [
    { nEmbd: 512, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 1024, nVocab: 1000, seed: 'cuda-decode-128' }, // head_dim 128, GQA 2
    { nEmbd: 256, nLayer: 2, nHead: 4, nKvHead: 1, nFf: 512, nVocab: 1000, seed: 'cuda-decode-64' }, // head_dim 64, GQA 4
  ]) {
    const file = ensureRandomLlama({ ...shape, type: 'f16', contextLength: 4096, std: 0.05 });
    const saved = process.env.HWKV_CUDA_GRAPHS;
    const models = [];
    try {
      models.push(await loadModel(file, { backend: p.cuda, kvCache: { type: 'f16' } }));
      process.env.HWKV_CUDA_GRAPHS = '0';
      models.push(await loadModel(file, { backend: p.cuda, kvCache: { type: 'f16' } }));
      if (saved === undefined) delete process.env.HWKV_CUDA_GRAPHS;
      else process.env.HWKV_CUDA_GRAPHS = saved;
      models.push(await loadModel(file, { backend: p.native, kvCache: { type: 'f16' } }));
      const W = 4;
      const V = shape.nVocab;
      const prompt = Array.from({ length: 150 }, (_, i) => 3 + ((i * 37) % (V - 3)));
      const logs: Float32Array[][] = models.map(() => []);
      for (const [mi, model] of models.entries()) {
        const rt = model.runtime;
        const common = await rt.createBlock();
        await rt.forward([{ view: [common], tokens: prompt }], 'last');
        const own: number[] = [];
        for (let w = 0; w < W; w++) own.push(await rt.createBlock());
        // the same token stream on every model (taken from the first one), so later steps compare like with like
        let feeds = own.map((_, w) => [10 + w]);
        for (let step = 0; step < 12; step++) {
          // workers join one by one (W grows 1..4: re-captures), and worker 0 sometimes feeds 2 tokens
          const active = Math.min(W, 1 + step);
          const seqs = own.slice(0, active).map((b, w) => ({ view: [common, ...own.slice(0, active).filter((_, j) => j !== w), b], tokens: step === 7 && w === 0 ? [5, 6] : feeds[w]! }));
          const l = await rt.forward(seqs, 'last');
          logs[mi]!.push(l);
          if (mi === 0) feeds = feeds.map((f, w) => (w < active ? [argmaxRow(l, w, V)] : f));
          else feeds = feeds.map((f, w) => (w < active ? [argmaxRow(logs[0]![step]!, w, V)] : f));
        }
      }
      let eGraph = 0;
      let eNative = 0;
      for (let s = 0; s < logs[0]!.length; s++) {
        eGraph = Math.max(eGraph, relMax(logs[0]![s]!, logs[1]![s]!));
        eNative = Math.max(eNative, relMax(logs[0]![s]!, logs[2]![s]!));
      }
      const hd = shape.nEmbd / shape.nHead;
      assert.ok(eGraph <= 1e-6, `head_dim ${hd}: graph replay vs no graph rel err ${eGraph}`);
      assert.ok(eNative <= 2e-2, `head_dim ${hd}: CUDA vs native rel err ${eNative}`);
      report.push(`hd${hd}: graph-vs-plain=${eGraph.toExponential(1)} cuda-vs-native=${eNative.toExponential(1)}`);
    } finally {
      if (saved === undefined) delete process.env.HWKV_CUDA_GRAPHS;
      else process.env.HWKV_CUDA_GRAPHS = saved;
      for (const m of models) m.dispose();
    }
  }
  console.log(`\nMAXERR ${NAME} model: ${report.join(' ')}`);
});

function argmaxRow(l: Float32Array, row: number, V: number): number {
  let best = 0;
  for (let i = 1; i < V; i++) if (l[row * V + i]! > l[row * V + best]!) best = i;
  return best;
}

S.run();
