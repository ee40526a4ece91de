/**
 * Q8_0 vs F16 weights on one backend, same random llama shape, same run (`npm run bench:cuda-q8`; on the GPU
 * machine: `node --import tsx bench/cuda-q8.ts`):
 *   - prefill: tokens/s of `prefill`-token chunks into a fresh block (F16: cuBLAS GEMMs on CUDA; Q8_0: the
 *     tiled dp4a kernel of cuda/model_q8.cu);
 *   - decode: ms per Hogwild!-style step (W workers, one new token each, views [common, own], `context`
 *     tokens in the common block, greedy picks on the backend), best of `runs` runs of `steps` steps;
 *   - the ratios Q8_0 / F16 next to the ratio of weight bytes (34/64 for the matrices: what a
 *     bandwidth-bound decode step would gain at most).
 * Random weights (decode cost does not depend on them), written once to os.tmpdir()/hogwild-bench.
 *
 * Options: --backend=cuda|native|wasm  --shape=llama-1b|small  --context=1024  --workers=1,4  --steps=32
 *          --runs=3  --prefill=512
 */
import { loadModel, type BackendChoice, type Model } from '../ts/index.ts';
import { ensureRandomLlama, type RandomLlamaParams } from './gguf-writer.ts';

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const BACKEND = (opt('backend') ?? 'cuda') as BackendChoice;
const SHAPE = opt('shape') ?? 'llama-1b';
const CONTEXT = Number(opt('context') ?? 1024);
const WORKERS = (opt('workers') ?? '1,4').split(',').map(Number);
const STEPS = Number(opt('steps') ?? 32);
const RUNS = Number(opt('runs') ?? 3);
const PREFILL = Number(opt('prefill') ?? 512);

const SHAPES: Record<string, Omit<RandomLlamaParams, 'type' | 'seed' | 'std' | 'contextLength'>> = {
  // Llama-3.2-1B's matrix shapes (untied LM head here)
  'llama-1b': { nEmbd: 2048, nLayer: 16, nHead: 32, nKvHead: 8, nFf: 8192, nVocab: 128256 },
  small: { nEmbd: 256, nLayer: 4, nHead: 4, nKvHead: 2, nFf: 768, nVocab: 4096 },
};

const log = (s: string) => process.stderr.write(`[bench:cuda-q8] ${s}\n`);

async function measure(model: Model): Promise<{ prefillTokS: number; decodeMs: Map<number, number> }> {
  const rt = model.runtime;
  const V = model.config.nVocab;
  const tok = (i: number) => 3 + ((i * 7919) % (V - 3));
  // prefill: a fresh block per run, best of RUNS
  let bestPrefill = Infinity;
  for (let r = 0; r < RUNS + 1; r++) {
    const b = await rt.createBlock();
    const t0 = performance.now();
    await rt.forward([{ view: [b], tokens: Array.from({ length: PREFILL }, (_, i) => tok(i + r)) }], 'last');
    const dt = performance.now() - t0;
    if (r > 0) bestPrefill = Math.min(bestPrefill, dt); // run 0 warms up
    await rt.freeBlock(b);
  }
  const common = await rt.createBlock();
  for (let at = 0; at < CONTEXT; at += PREFILL) {
    const n = Math.min(PREFILL, CONTEXT - at);
    await rt.forward([{ view: [common], tokens: Array.from({ length: n }, (_, i) => tok(at + i)) }], 'none');
  }
  const decodeMs = new Map<number, number>();
  for (const W of WORKERS) {
    let best = Infinity;
    for (let r = 0; r < RUNS; r++) {
      const own: number[] = [];
      for (let w = 0; w < W; w++) own.push(await rt.createBlock());
      let feeds = own.map((_, w) => 10 + w);
      const step = async () => {
        const { ids } = await rt.forwardArgmax(own.map((b, w) => ({ view: [common, b], tokens: [feeds[w]!] })), 'last');
        feeds = Array.from(ids);
      };
      await step();
      await step(); // warm-up (graph capture)
      const t0 = performance.now();
      for (let s = 0; s < STEPS; s++) await step();
      best = Math.min(best, (performance.now() - t0) / STEPS);
      for (const b of own) await rt.freeBlock(b);
    }
    decodeMs.set(W, best);
  }
  await rt.freeBlock(common);
  return { prefillTokS: (PREFILL / bestPrefill) * 1000, decodeMs };
}

async function main(): Promise<void> {
  const shape = SHAPES[SHAPE];
  if (!shape) throw new Error(`unknown --shape=${SHAPE} (${Object.keys(SHAPES).join(', ')})`);
  const results: Record<string, { bytes: number; prefillTokS: number; decodeMs: Map<number, number> }> = {};
  for (const type of ['f16', 'q8_0'] as const) {
    const file = ensureRandomLlama({ ...shape, type, contextLength: Math.max(4096, CONTEXT + 1024), seed: 'bench-q8', std: 0.02 }, log);
    const model = await loadModel(file, { backend: BACKEND, kvCache: { type: 'f16' } });
    try {
      log(`${type}: measuring on ${model.backend.name}…`);
      results[type] = { bytes: model.info().weightBytes, ...(await measure(model)) };
    } finally {
      model.dispose();
    }
  }
  const f = results.f16!;
  const q = results.q8_0!;
  console.log(`\nbench:cuda-q8 backend=${BACKEND} shape=${SHAPE} context=${CONTEXT} prefill=${PREFILL} steps=${STEPS} runs=${RUNS} (${new Date().toISOString()})`);
  console.log(`weight bytes: f16 ${(f.bytes / 2 ** 20).toFixed(0)} MiB, q8_0 ${(q.bytes / 2 ** 20).toFixed(0)} MiB (ratio ${(q.bytes / f.bytes).toFixed(3)})`);
  console.log(`prefill ${PREFILL} tokens: f16 ${f.prefillTokS.toFixed(0)} tok/s, q8_0 ${q.prefillTokS.toFixed(0)} tok/s (q8_0/f16 speed ${(q.prefillTokS / f.prefillTokS).toFixed(2)}x)`);
  for (const W of WORKERS) {
    const a = f.decodeMs.get(W)!;
    const b = q.decodeMs.get(W)!;
    console.log(`decode W=${W}: f16 ${a.toFixed(3)} ms/step, q8_0 ${b.toFixed(3)} ms/step (q8_0/f16 time ${(b / a).toFixed(2)}; bytes ratio ${(q.bytes / f.bytes).toFixed(2)})`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
