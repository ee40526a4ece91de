/**
 * Greedy picks from the backend (hwkv_model.h HWKV_LOGITS_ARGMAX, ModelRuntime.forwardArgmax) on every backend
 * under test (native, WASM, CUDA where available):
 *  - the pick equals sampling.ts argmax of the logits the plain forward returns for the same tokens and view,
 *    and the returned logit equals that row's logit at the pick ('all' over random prompts; 'last' over several
 *    sequences sharing a block);
 *  - ties: the LM head repeats its first P rows (row i = row i mod P, bit-identical), so every row's maximum
 *    is tied P, 2P, ... ids apart and the lowest id (< P) must win;
 *  - generate() with greedy sampling (which takes the backend pick) picks each row's argmax of model.logits();
 *  - a greedy Hogwild! run (backend picks) equals the same run picking over the logits (pickToken -> sample);
 *  - CUDA, BF16 weights: the tensor-core GEMV (HWKV_CUDA_GEMV=mma), the FMA GEMV (fma) and the autotuned
 *    choice give the same decode-step logits within 2e-3 relative, and the native backend within 2e-2.
 * The model is written fresh for each run from the run's seed (small random llama, GGUF).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModel } from '../ts/index.ts';
import { argmax } from '../ts/engine/sampling.ts';
import { GgmlType } from '../ts/formats/gguf.ts';
import { randomLlamaSpec, writeGguf, type GgufTensorSpec } from '../bench/gguf-writer.ts';
import { backendsUnderTest, skipLine } from './helpers/backends.ts';
import { seededTest } from './helpers/harness.ts';
import type { Rng } from './helpers/rng.ts';
import type { CoreBackend } from '../ts/backend/backend.ts';
import { relMax } from './helpers/metrics.ts';

const NAME = 'model-argmax';
const S = suite(NAME);
const P = 32; // LM-head period: rows P.. repeat rows 0..P-1

function f32ToBf16(chunk: Uint8Array): Uint8Array {
  const f = new Float32Array(chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength));
  const u = new Uint32Array(f.buffer);
  const out = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) {
    const x = u[i]!;
    out[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff; // round to nearest even (finite inputs)
  }
  return new Uint8Array(out.buffer);
}

/** A random llama GGUF in a temp folder; `type` of the matrices; LM head periodic when `ties`. */
function writeModel(rng: Rng, dims: { nEmbd: number; nLayer: number; nHead: number; nKvHead: number; nFf: number; nVocab: number }, type: 'f32' | 'bf16', ties: boolean): string {
  const seed = `argmax-${rng.u32()}`;
  const { metadata, tensors } = randomLlamaSpec({ ...dims, contextLength: 2048, type: 'f32', seed, std: 0.08 });
  const out: GgufTensorSpec[] = tensors.map((t) => {
    let spec = t;
    if (ties && t.name === 'output.weight') {
      const nIn = t.dims[0]!;
      const nOut = t.dims[1]!;
      const base = rng.f32(P * nIn, 0.08);
      spec = {
        ...t,
        fill: (emit) => {
          const a = new Float32Array(nOut * nIn);
          for (let r = 0; r < nOut; r++) a.set(base.subarray((r % P) * nIn, (r % P + 1) * nIn), r * nIn);
          emit(new Uint8Array(a.buffer));
        },
      };
    }
    if (type === 'bf16' && spec.dims.length === 2) {
      const inner = spec;
      spec = { ...inner, type: GgmlType.BF16, fill: (emit) => inner.fill((c) => emit(f32ToBf16(c))) };
    }
    return spec;
  });
  const file = path.join(os.tmpdir(), `hwkv-${seed}-${process.pid}.gguf`);
  writeGguf(file, metadata, out);
  return file;
}

seededTest(S, NAME, 'forwardArgmax == argmax of the logits (last/all, ties to the lowest id) on every backend', async (rng: Rng) => {
  const dims = { nEmbd: 64, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 128, nVocab: 9 * P + rng.int(0, 3) * P };
  const file = writeModel(rng, dims, 'f32', true);
  const report: string[] = [];
  try {
    for (const { name, backend } of await backendsUnderTest()) {
      const model = await loadModel(file, { backend });
      try {
        const rt = model.runtime;
        const V = dims.nVocab;
        let rows = 0;
        let ties = 0;
        // 'all' over random prompts
        for (let trial = 0; trial < 3; trial++) {
          const n = rng.int(1, 40);
          const toks = Array.from({ length: n }, () => rng.int(0, V - 1));
          const a = await rt.createBlock();
          const b = await rt.createBlock();
          const l = await rt.forward([{ view: [a], tokens: toks }], 'all');
          const g = await rt.forwardArgmax([{ view: [b], tokens: toks }], 'all');
          assert.is(g.ids.length, n, `${name}: one pick per token`);
          for (let r = 0; r < n; r++) {
            const want = argmax(l, r * V, V);
            assert.is(g.ids[r], want, `${name}: all, row ${r}: pick ${g.ids[r]} vs argmax ${want}`);
            assert.is(g.maxLogits[r], l[r * V + want], `${name}: all, row ${r}: max logit`);
            if (l[r * V + want + P] === l[r * V + want]) ties++;
            if (name !== 'cuda') {
              // the CPU matmul computes every LM-head row alike, so the repeated rows tie bit for bit (cuBLAS's
              // tiling need not: there the count of exact ties is reported instead)
              assert.ok(want < P, `${name}: all, row ${r}: the tie at ${want} / ${want + P} must go to the lowest id`);
              assert.is(l[r * V + want + P], l[r * V + want], `${name}: the LM head's repeated rows give bit-identical logits`);
            }
            rows++;
          }
          await rt.freeBlock(a);
          await rt.freeBlock(b);
        }
        // 'last' over sequences that share a prefix block (a Hogwild!-style step), two steps
        const shared = await rt.createBlock();
        const prefix = Array.from({ length: rng.int(1, 30) }, () => rng.int(0, V - 1));
        await rt.forward([{ view: [shared], tokens: prefix }], 'none');
        const nSeq = rng.int(2, 4);
        const own: number[][] = [[], []];
        for (let k = 0; k < 2; k++) for (let s = 0; s < nSeq; s++) own[k]!.push(await rt.createBlock());
        for (let step = 0; step < 2; step++) {
          const feeds = Array.from({ length: nSeq }, () => Array.from({ length: rng.int(1, 3) }, () => rng.int(0, V - 1)));
          const l = await rt.forward(feeds.map((tokens, s) => ({ view: [shared, own[0]![s]!], tokens })), 'last');
          const g = await rt.forwardArgmax(feeds.map((tokens, s) => ({ view: [shared, own[1]![s]!], tokens })), 'last');
          for (let s = 0; s < nSeq; s++) {
            const want = argmax(l, s * V, V);
            assert.is(g.ids[s], want, `${name}: last, seq ${s}: pick ${g.ids[s]} vs argmax ${want}`);
            assert.is(g.maxLogits[s], l[s * V + want], `${name}: last, seq ${s}: max logit`);
            rows++;
          }
        }
        // greedy generate (backend picks, decode-sized forwards) vs model.logits() over the whole sequence (logits
        // path, one prefill): each pick is that row's argmax. CPU: exactly (its matmuls do not depend on the batch);
        // CUDA: prefill GEMMs and decode GEMVs sum differently, so a pick must be within 1e-4 of the row's max
        const prompt = Array.from({ length: rng.int(2, 12) }, () => rng.int(3, V - 1));
        const gen = await model.generate(prompt, { maxTokens: 6, stopOnEog: false }).result;
        assert.is(gen.tokens.length, 6, `${name}: generated 6 tokens`);
        const all = await model.logits([...prompt, ...gen.tokens]);
        for (let k = 0; k < 6; k++) {
          const at = (prompt.length - 1 + k) * V;
          const want = argmax(all, at, V);
          if (name !== 'cuda') assert.is(gen.tokens[k], want, `${name}: generated token ${k}: ${gen.tokens[k]} vs argmax ${want}`);
          else {
            const top = all[at + want]!;
            const got = all[at + gen.tokens[k]!]!;
            assert.ok(top - got <= 1e-4 * Math.abs(top), `${name}: generated token ${k}: logit ${got} vs max ${top}`);
          }
        }
        report.push(`${name}: ${rows} rows, ${ties} exact ties`);
      } finally {
        model.dispose();
      }
    }
  } finally {
    fs.rmSync(file, { force: true });
  }
  console.log(`\nMAXERR ${NAME} picks equal (${report.join(', ')})`);
});

seededTest(S, NAME, 'Hogwild! greedy run: backend picks == picks over the logits (pickToken -> sample), forced answer included', async (rng: Rng) => {
  const dims = { nEmbd: 64, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 128, nVocab: 400 };
  const file = writeModel(rng, dims, 'f32', false);
  try {
    for (const { name, backend } of await backendsUnderTest()) {
      const model = await loadModel(file, { backend });
      try {
        const results = [];
        // the first run takes the backend's picks (greedy, no bias, no hook); the second gets the logits and
        // picks with the sampler (sample() on greedy options = sampling.ts argmax over the row)
        for (const hook of [false, true]) {
          const run = model.hogwild({ workers: 2, openers: false, selfCheckEvery: 0, ...(hook ? { pickToken: (c: { sample: () => number }) => c.sample() } : {}) });
          try {
            results.push(await run.solve('What is two plus two?', { maxForwardPasses: 10 }).result);
          } finally {
            run.dispose();
          }
        }
        const [a, b] = results;
        assert.equal(a!.workers.map((w) => w.transcript), b!.workers.map((w) => w.transcript), `${name}: transcripts`);
        assert.equal(a!.tokensPerWorker, b!.tokensPerWorker, `${name}: tokens per worker`);
        assert.is(a!.forcedText, b!.forcedText, `${name}: forced final answer`);
        assert.ok(a!.totalTokens > 0, `${name}: tokens were generated`);
      } finally {
        model.dispose();
      }
    }
  } finally {
    fs.rmSync(file, { force: true });
  }
});

seededTest(S, NAME, 'logits_mode errors: ARGMAX needs LAST or ALL, and room for two floats per row', async (rng: Rng) => {
  const dims = { nEmbd: 32, nLayer: 1, nHead: 2, nKvHead: 1, nFf: 64, nVocab: 10 * P };
  const file = writeModel(rng, dims, 'f32', false);
  try {
    for (const { name, backend } of await backendsUnderTest()) {
      const model = await loadModel(file, { backend });
      try {
        const core = backend as unknown as CoreBackend;
        const api = core.raw.model!;
        const raw = model.runtime as unknown as { handle: unknown; store: { rawHandle(): unknown } };
        const blk = await model.runtime.createBlock();
        const args = [new Int32Array([0, 1]), new Int32Array([blk]), new Int32Array([0, 2]), new Int32Array([5, 6])] as const;
        const h = raw.handle as never;
        const s = raw.store.rawHandle() as never;
        assert.is(api.modelForward(h, s, 16, ...args, new Float32Array(2)), 1, `${name}: NONE|ARGMAX is refused`);
        assert.match(core.raw.lastError(), /ARGMAX/, `${name}: message names ARGMAX`);
        assert.is(api.modelForward(h, s, 2 | 16, ...args, new Float32Array(3)), 1, `${name}: ALL|ARGMAX with 3 floats for 2 rows`);
        assert.match(core.raw.lastError(), /need 4/, `${name}: message gives the size`);
        assert.is(api.modelForward(h, s, 2 | 16, ...args, new Float32Array(4)), 0, `${name}: ALL|ARGMAX with 4 floats`);
      } finally {
        model.dispose();
      }
    }
  } finally {
    fs.rmSync(file, { force: true });
  }
});

seededTest(S, NAME, 'CUDA BF16 decode: tensor-core GEMV == FMA GEMV == autotuned, and == native', async (rng: Rng) => {
  const all = await backendsUnderTest();
  const cuda = all.find((b) => b.name === 'cuda');
  const native = all.find((b) => b.name === 'native');
  if (!cuda || !native) {
    skipLine(`${NAME} bf16 GEMV`, 'needs the cuda and native backends');
    return;
  }
  // n_out not a multiple of 16 (tile tails: vocab 1000), n_in a multiple of 32 but not of 256 (k tails: 288, 224)
  const dims = { nEmbd: 288, nLayer: 2, nHead: 4, nKvHead: 2, nFf: 224, nVocab: 1000 };
  const file = writeModel(rng, dims, 'bf16', false);
  const saved = process.env.HWKV_CUDA_GEMV;
  const models = [];
  try {
    for (const mode of ['mma', 'fma', undefined]) {
      if (mode === undefined) delete process.env.HWKV_CUDA_GEMV;
      else process.env.HWKV_CUDA_GEMV = mode;
      models.push(await loadModel(file, { backend: cuda.backend, kvCache: { type: 'f16' } }));
    }
    models.push(await loadModel(file, { backend: native.backend, kvCache: { type: 'f16' } }));
    const V = dims.nVocab;
    const prompt = Array.from({ length: 20 }, () => rng.int(3, V - 1));
    const logs: Float32Array[][] = models.map(() => []);
    for (const [mi, model] of models.entries()) {
      const rt = model.runtime;
      const common = await rt.createBlock();
      await rt.forward([{ view: [common], tokens: prompt }], 'none');
      const own: number[] = [];
      for (let w = 0; w < 8; w++) own.push(await rt.createBlock());
      // 1..8 rows per step (every GEMV row count), the same tokens on every model
      for (let step = 0; step < 8; step++) {
        const seqs = own.slice(0, step + 1).map((b, w) => ({ view: [common, b], tokens: [3 + ((step * 31 + w * 7) % (V - 3))] }));
        logs[mi]!.push(await rt.forward(seqs, 'last'));
      }
    }
    let eMma = 0;
    let eTune = 0;
    let eNative = 0;
    for (let s = 0; s < 8; s++) {
      eMma = Math.max(eMma, relMax(logs[0]![s]!, logs[1]![s]!));
      eTune = Math.max(eTune, relMax(logs[2]![s]!, logs[1]![s]!));
      eNative = Math.max(eNative, relMax(logs[1]![s]!, logs[3]![s]!));
    }
    assert.ok(eMma <= 2e-3, `mma vs fma rel err ${eMma}`);
    assert.ok(eTune <= 2e-3, `autotuned vs fma rel err ${eTune}`);
    assert.ok(eNative <= 2e-2, `cuda fma vs native rel err ${eNative}`);
    console.log(`\nMAXERR ${NAME} bf16 GEMV: mma-vs-fma=${eMma.toExponential(1)} tuned-vs-fma=${eTune.toExponential(1)} cuda-vs-native=${eNative.toExponential(1)}`);
  } finally {
    if (saved === undefined) delete process.env.HWKV_CUDA_GEMV;
    else process.env.HWKV_CUDA_GEMV = saved;
    for (const m of models) m.dispose();
    fs.rmSync(file, { force: true });
  }
});

S.run();
