/**
 * Hogwild! step cost (`npm run bench:hogwild`; `-- --json` for JSON only).
 *
 * On the engine's benchmark model (bench/gguf-writer.ts: random llama, dim 768, 12 layers, 12 heads, 4 KV heads,
 * ffn 2048, vocab 32000; f16 by default), for each backend (native: all cores; WASM) and prompt length P:
 * W = 1, 2, 4 workers in the default 'combined' layout (common prompt block, two 8-token header blocks, one
 * block per worker). Each timed step is ONE batched forward of all W workers (one new token each) plus a greedy
 * pick per worker, exactly what HogwildRun does per inference step.
 *
 *   ms/step      best of `runs` timed runs of (time of S steps) / S (the minimum: on a shared, loaded VM
 *                the least disturbed run is the best estimate of the cost)
 *   agg tok/s    W * 1000 / (ms/step): tokens produced per second by all workers together
 *   speedup      agg tok/s relative to W = 1 on the same backend and P
 *
 * Options: --json, --quick, --type=f16|f32, --threads=N (native; default all cores), --prompts=128,2048,
 * --workers=1,2,4, --steps=S (32), --runs=R (3), --no-wasm, --no-native.
 */
import os from 'node:os';
import { loadModel, type Model } from '../ts/index.ts';
import { HogwildCache } from '../ts/hogwild/index.ts';
import { argmax } from '../ts/engine/sampling.ts';
import { ensureRandomLlama, DEFAULT_LLAMA } from './gguf-writer.ts';

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const opt = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const JSON_ONLY = flag('json');
const QUICK = flag('quick');
const TYPE = (opt('type') ?? 'f16') as 'f16' | 'f32';
const THREADS = Number(opt('threads') ?? os.cpus().length);
const PROMPTS = (opt('prompts') ?? '128,2048').split(',').map(Number);
const WORKERS = (opt('workers') ?? '1,2,4').split(',').map(Number);
const STEPS = Number(opt('steps') ?? (QUICK ? 8 : 32));
const RUNS = Number(opt('runs') ?? (QUICK ? 1 : 3));
const BACKENDS = (['native', 'wasm'] as const).filter((b) => !flag(`no-${b}`));

const log = (s: string) => {
  if (!JSON_ONLY) console.log(s);
};
const progress = (s: string) => process.stderr.write(`${s}\n`);

interface Row {
  backend: string;
  threads: number;
  prompt: number;
  workers: number;
  msPerStep: number;
  aggTokensPerSecond: number;
  speedup: number;
}

/** Deterministic prompt ids over the word pieces (259.. are past <unk>, <s>, </s> and the byte tokens). */
function promptIds(n: number, vocab: number): number[] {
  const out = [1];
  for (let i = 1; i < n; i++) out.push(259 + ((i * 7919) % (vocab - 259)));
  return out;
}

async function measure(model: Model, P: number, W: number): Promise<number> {
  const V = model.config.nVocab;
  const times: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const cache = await HogwildCache.create(model.runtime, { workers: W, layout: 'combined' });
    try {
      const hdr = promptIds(9, V).slice(1);
      await cache.prefill(promptIds(P, V), { others: hdr, own: hdr });
      let feeds = Array.from({ length: W }, (_, w) => [300 + w]);
      const step = async () => {
        const l = await cache.step(feeds, 'last');
        feeds = feeds.map((_, w) => [argmax(l, w * V, V)]);
      };
      await step(); // warm-up (scratch buffers sized for W rows)
      await step();
      const t0 = performance.now();
      for (let s = 0; s < STEPS; s++) await step();
      times.push((performance.now() - t0) / STEPS);
    } finally {
      cache.dispose();
    }
  }
  return Math.min(...times);
}

const file = ensureRandomLlama({ type: TYPE }, progress);
const rows: Row[] = [];
for (const backend of BACKENDS) {
  const threads = backend === 'native' ? THREADS : 1;
  let model: Model;
  try {
    model = await loadModel(file, { backend, threads });
  } catch (e) {
    progress(`${backend}: skipped (${(e as Error).message})`);
    continue;
  }
  try {
    for (const P of PROMPTS) {
      let base = 0;
      for (const W of WORKERS) {
        progress(`${backend} P=${P} W=${W}…`);
        const ms = await measure(model, P, W);
        const agg = (W * 1000) / ms;
        if (W === WORKERS[0]) base = agg / W;
        rows.push({ backend, threads, prompt: P, workers: W, msPerStep: ms, aggTokensPerSecond: agg, speedup: agg / base });
      }
    }
  } finally {
    model.dispose();
  }
}

const meta = {
  model: { ...DEFAULT_LLAMA, type: TYPE },
  cpus: os.cpus().length,
  cpu: os.cpus()[0]?.model ?? 'unknown',
  steps: STEPS,
  runs: RUNS,
  node: process.version,
  loadAverage: os.loadavg(),
};
if (JSON_ONLY) {
  console.log(JSON.stringify({ meta, rows }, null, 2));
} else {
  log(`\nHogwild! step cost — random llama ${TYPE} (dim 768, 12 layers, vocab 32000), ${meta.cpus} CPUs (${meta.cpu}), ${STEPS} steps x ${RUNS} runs (best), load average ${os.loadavg()[0]!.toFixed(1)}\n`);
  log('| backend | threads | prompt | W | ms/step | agg tok/s | vs W=1 |');
  log('|---|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    log(`| ${r.backend} | ${r.threads} | ${r.prompt} | ${r.workers} | ${r.msPerStep.toFixed(1)} | ${r.aggTokensPerSecond.toFixed(1)} | ${r.speedup.toFixed(2)}x |`);
  }
}
