/**
 * Peer measurement for bench/engine.ts: node-llama-cpp (llama.cpp) on the CPU, on a GGUF file.
 *
 *   node bench/peer/run-llama.mjs --model=FILE --threads=N --prompt=1,2,3,... --decode=M --runs=R
 *
 * One model and one context (one sequence) are loaded; then, for a warm-up pass and R timed runs:
 * clear the sequence, evaluate the prompt ids with greedy sampling (temperature 0) and take M tokens.
 *   prefill = time from the call to the first generated token (the whole prompt in one batch, logits of
 *             the last position, one greedy pick);
 *   decode  = time of the M-1 following tokens (each: one single-token step + greedy pick) / (M-1).
 * EOG tokens do not stop generation (random weights may pick EOS). Prints one JSON object on stdout.
 */
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new Error(`bad argument ${a}`);
    return [m[1], m[2] ?? 'true'];
  }),
);
if (!args.model) throw new Error('--model=FILE is required');
const threads = Number(args.threads ?? os.cpus().length);
const prompt = (args.prompt ?? '1').split(',').map(Number);
const decode = Number(args.decode ?? 64);
const runs = Number(args.runs ?? 3);
const warmup = Number(args.warmup ?? 1);

const now = () => performance.now();
const t0 = now();
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, progressLogs: false, maxThreads: threads });
const model = await llama.loadModel({ modelPath: args.model, gpuLayers: 0 });
const context = await model.createContext({
  contextSize: Math.max(256, prompt.length + decode + 16),
  batchSize: Math.max(prompt.length, 32),
  sequences: 1,
  threads,
});
const sequence = context.getSequence();
const loadMs = now() - t0;

async function once() {
  await sequence.clearHistory();
  const tokens = [];
  const start = now();
  let first = 0;
  for await (const tok of sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
    tokens.push(tok);
    if (tokens.length === 1) first = now();
    if (tokens.length >= decode) break;
  }
  const end = now();
  const prefillMs = first - start;
  const decodeMs = end - first;
  return {
    prefillMs,
    decodeMs,
    prefillTokensPerSecond: (prompt.length / prefillMs) * 1000,
    decodeTokensPerSecond: tokens.length > 1 ? ((tokens.length - 1) / decodeMs) * 1000 : 0,
    tokens,
  };
}

for (let i = 0; i < warmup; i++) await once();
const results = [];
for (let i = 0; i < runs; i++) results.push(await once());

let version = 'unknown';
try {
  // the package's exports hide package.json: walk up from its entry point
  let dir = path.dirname(fileURLToPath(import.meta.resolve('node-llama-cpp')));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  version = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
} catch {}
process.stdout.write(
  JSON.stringify({
    peer: 'node-llama-cpp',
    version,
    gpu: llama.gpu,
    buildType: llama.buildType,
    cpuMathCores: llama.cpuMathCores,
    threads: context.currentThreads,
    flashAttention: context.flashAttention,
    contextSize: context.contextSize,
    batchSize: context.batchSize,
    loadMs,
    promptTokens: prompt.length,
    decodeTokens: decode,
    runs: results,
  }) + '\n',
);
await context.dispose();
await model.dispose();
await llama.dispose();
