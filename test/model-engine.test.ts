/**
 * The model engine against independent references:
 *  - the transformers-made fixtures (test/fixtures/hf): logits at every position, batched logits of three
 *    sequences in one forward, greedy continuation — on every CPU backend;
 *  - the same fixtures on CUDA (where available, else a visible SKIP): in float32 (logits within 1e-4 of the
 *    reference, greedy ids equal) and with the weights converted to BF16 (a temporary safetensors copy): logits
 *    within 2e-2 (relative) of a CPU backend running the same BF16 file, and the first 16 greedy ids equal;
 *  - stories260K (a real trained model, ../shared): golden logits (float64 run.c), golden prompt ids, the
 *    published greedy sample from BOS, and the greedy continuation of "Once upon a time" — on every backend,
 *    CUDA included.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModel, type Model } from '../ts/index.ts';
import { readSafetensorsHeader, readSafetensorsTensorData, writeSafetensors, type SafetensorsTensorInput } from '../ts/formats/safetensors.ts';
import { backendsUnderTest, skipLine } from './helpers/backends.ts';
import { relMax } from './helpers/metrics.ts';

const FIX = path.resolve('test/fixtures/hf');
const SHARED = process.env.HOGWILD_SHARED ?? path.resolve('..', 'shared');
const STORIES = path.join(SHARED, 'models', 'stories260K');

function refTensor(file: string, name: string): { data: Float32Array | Int32Array; shape: number[] } {
  const h = readSafetensorsHeader(file);
  const info = h.tensorsByName.get(name);
  if (!info) throw new Error(`${file}: no tensor ${name}`);
  const bytes = readSafetensorsTensorData(h, name);
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const data = info.dtype === 'I32' ? new Int32Array(buf) : info.dtype === 'I64' ? Int32Array.from(new BigInt64Array(buf), Number) : new Float32Array(buf);
  return { data, shape: info.shape };
}

/** max|a-b| / max|b| */

/** A copy of fixture `dir` in `out` with every F32 tensor of model.safetensors rounded to BF16 (nearest even). */
function bf16Copy(dir: string, out: string): void {
  for (const f of readdirSync(dir)) if (f.endsWith('.json')) copyFileSync(path.join(dir, f), path.join(out, f));
  const file = path.join(dir, 'model.safetensors');
  const h = readSafetensorsHeader(file);
  const tensors: [string, SafetensorsTensorInput][] = [];
  for (const [name, info] of h.tensorsByName) {
    const bytes = readSafetensorsTensorData(h, name);
    if (info.dtype !== 'F32') {
      tensors.push([name, { dtype: info.dtype, shape: info.shape, data: bytes }]);
      continue;
    }
    const src = new Uint32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    const dst = new Uint16Array(src.length);
    for (let i = 0; i < src.length; i++) {
      const u = src[i]!;
      dst[i] = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16; // round to nearest even (finite weights)
    }
    tensors.push([name, { dtype: 'BF16', shape: info.shape, data: dst }]);
  }
  writeSafetensors(path.join(out, 'model.safetensors'), tensors, { format: 'pt' });
}

const TOL = 1e-4;
const TOL_BF16 = 2e-2;
const fixtures = existsSync(FIX) ? readdirSync(FIX).filter((d) => existsSync(path.join(FIX, d, 'reference.safetensors'))) : [];

const S = suite('model-engine');

S('HF fixtures: logits, batch logits and greedy ids on every CPU backend', async () => {
  assert.ok(fixtures.length >= 6, 'fixtures present');
  const backends = (await backendsUnderTest()).filter((b) => b.name !== 'cuda');
  const report: string[] = [];
  for (const { name: bname, backend } of backends) {
    for (const fx of fixtures) {
      const dir = path.join(FIX, fx);
      const ref = path.join(dir, 'reference.safetensors');
      const model = await loadModel(dir, { backend });
      try {
        const ids = Array.from(refTensor(ref, 'input_ids').data);
        const want = refTensor(ref, 'logits').data as Float32Array;
        const got = await model.logits(ids);
        const e1 = relMax(got, want);
        assert.ok(e1 <= TOL, `${bname}/${fx}: logits rel err ${e1}`);

        // three sequences in ONE forward call (each its own block)
        const bids = refTensor(ref, 'batch_input_ids');
        const bwant = refTensor(ref, 'batch_logits').data as Float32Array;
        const [nb, len] = bids.shape as [number, number];
        const rt = model.runtime;
        const blocks = Array.from({ length: nb }, () => rt.store.createBlock());
        try {
          const seqs = blocks.map((b, s) => ({ view: [b], tokens: Array.from(bids.data.subarray(s * len, (s + 1) * len)) }));
          const bgot = await rt.forward(seqs, 'all');
          const e2 = relMax(bgot, bwant);
          assert.ok(e2 <= TOL, `${bname}/${fx}: batch logits rel err ${e2}`);
          report.push(`${bname}/${fx}=${e1.toExponential(1)}/${e2.toExponential(1)}`);
        } finally {
          for (const b of blocks) rt.store.freeBlock(b);
        }

        const greedy = Array.from(refTensor(ref, 'greedy_ids').data);
        const gen = await model.generate(ids, { maxTokens: greedy.length, stopOnEog: false }).result;
        assert.equal(gen.tokens, greedy, `${bname}/${fx}: greedy ids`);
      } finally {
        model.dispose();
      }
    }
  }
  console.log(`\nMAXERR model-engine logits/batch: ${report.join(' ')}`);
});

S('CUDA: HF fixtures in float32 (1e-4, greedy ids) and BF16 weights (2e-2 vs a CPU backend, 16 greedy ids)', async () => {
  const all = await backendsUnderTest();
  const cuda = all.find((b) => b.name === 'cuda');
  if (!cuda) {
    skipLine('model-engine/cuda', 'the CUDA backend is not available here (see the SKIP cuda line)');
    return;
  }
  const cpu = all.find((b) => b.name === 'native') ?? all.find((b) => b.name === 'wasm');
  const report: string[] = [];
  for (const fx of fixtures) {
    const dir = path.join(FIX, fx);
    const ref = path.join(dir, 'reference.safetensors');
    const ids = Array.from(refTensor(ref, 'input_ids').data);
    const want = refTensor(ref, 'logits').data as Float32Array;
    const greedy = Array.from(refTensor(ref, 'greedy_ids').data);

    // float32 weights: as exact as the CPU backends
    const model = await loadModel(dir, { backend: cuda.backend });
    let e1 = 0;
    let e2 = 0;
    try {
      e1 = relMax(await model.logits(ids), want);
      assert.ok(e1 <= TOL, `cuda/${fx}: logits rel err ${e1}`);
      const bids = refTensor(ref, 'batch_input_ids');
      const bwant = refTensor(ref, 'batch_logits').data as Float32Array;
      const [nb, len] = bids.shape as [number, number];
      const rt = model.runtime;
      const blocks = Array.from({ length: nb }, () => rt.store.createBlock());
      try {
        const seqs = blocks.map((b, s) => ({ view: [b], tokens: Array.from(bids.data.subarray(s * len, (s + 1) * len)) }));
        e2 = relMax(await rt.forward(seqs, 'all'), bwant);
        assert.ok(e2 <= TOL, `cuda/${fx}: batch logits rel err ${e2}`);
      } finally {
        for (const b of blocks) rt.store.freeBlock(b);
      }
      const gen = await model.generate(ids, { maxTokens: greedy.length, stopOnEog: false }).result;
      assert.equal(gen.tokens, greedy, `cuda/${fx}: greedy ids`);
    } finally {
      model.dispose();
    }

    // BF16 weights (activations rounded to BF16 at the GEMM inputs on CUDA; widened weights on the CPU)
    const tmp = mkdtempSync(path.join(os.tmpdir(), `hwkv-bf16-${fx}-`));
    try {
      bf16Copy(dir, tmp);
      const mb = await loadModel(tmp, { backend: cuda.backend });
      const mc = cpu ? await loadModel(tmp, { backend: cpu.backend }) : null;
      try {
        const got = await mb.logits(ids);
        const base = mc ? await mc.logits(ids) : want;
        const e3 = relMax(got, base);
        const e4 = relMax(got, want);
        assert.ok(e3 <= TOL_BF16, `cuda/${fx}/bf16: logits rel err ${e3} against ${mc ? cpu!.name + ' on the same BF16 file' : 'the f32 reference'}`);
        const n16 = 16;
        const gb = (await mb.generate(ids, { maxTokens: n16, stopOnEog: false }).result).tokens;
        const gc = mc ? (await mc.generate(ids, { maxTokens: n16, stopOnEog: false }).result).tokens : greedy.slice(0, n16);
        assert.equal(gb, gc, `cuda/${fx}/bf16: first ${n16} greedy ids`);
        report.push(`cuda/${fx}=${e1.toExponential(1)}/${e2.toExponential(1)} bf16=${e3.toExponential(1)}(vs f32 ref ${e4.toExponential(1)})`);
      } finally {
        mb.dispose();
        mc?.dispose();
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  console.log(`\nMAXERR model-engine cuda: ${report.join(' ')}`);
});

S('stories260K (GGUF): golden logits, prompt ids, published greedy sample, "Once upon a time"', async () => {
  const gguf = path.join(STORIES, 'stories260K.gguf');
  if (!existsSync(gguf)) {
    skipLine('stories260K', `${gguf} not found (../shared absent)`);
    return;
  }
  const golden = JSON.parse(readFileSync(path.join(STORIES, 'golden_logits_stories260K.json'), 'utf8')) as {
    prompt: string;
    token_ids: number[];
    logits: number[][];
  };
  const noprompt = readFileSync(path.join(STORIES, 'golden_stories260K_greedy_noprompt.txt'), 'utf8');
  const onceupon = readFileSync(path.join(STORIES, 'golden_stories260K_greedy_onceupon.txt'), 'utf8');
  const backends = await backendsUnderTest();
  const report: string[] = [];
  for (const { name: bname, backend } of backends) {
    const model: Model = await loadModel(gguf, { backend });
    try {
      assert.equal(model.tokenize(golden.prompt), golden.token_ids, `${bname}: prompt token ids`);
      const got = await model.logits(golden.token_ids);
      const want = Float32Array.from(golden.logits.flat());
      const e = relMax(got, want);
      assert.ok(e <= TOL, `${bname}: golden logits rel err ${e}`);
      report.push(`${bname}=${e.toExponential(1)}`);

      // llama2.c's published sample: 256 forward steps from BOS alone (positions 0..255), one token each
      const r = await model.generate([model.tokenizer!.bosId!], { maxTokens: 256, stopOnEog: true }).result;
      const text = model.detokenize(r.tokens);
      assert.is(text, noprompt.replace(/\n$/, ''), `${bname}: greedy sample from BOS`);

      const r2 = await model.generate('Once upon a time', { maxTokens: 200 }).result;
      const full = `Once upon a time${r2.text}`;
      assert.ok(
        full.startsWith(onceupon.replace(/\n$/, '')),
        `${bname}: "Once upon a time" continuation differs:\n got: ${JSON.stringify(full.slice(0, 200))}\nwant: ${JSON.stringify(onceupon.slice(0, 200))}`,
      );
    } finally {
      model.dispose();
    }
  }
  console.log(`\nMAXERR stories260K logits: ${report.join(' ')}`);
});

S.run();
