/**
 * bench/aqua-ppl.ts — perplexity of stories260K with exact and compressed KV caches (AQUA-KV milestone 1).
 *
 *   node --import tsx bench/aqua-ppl.ts [--backend=native|wasm] [--chunks=60] [--prefill=64]
 *
 * Slice: ../shared/corpora/tinystories_val.txt cut into 1200-character chunks (each starts with BOS, at most
 * 512 tokens), the first 60 chunks. Each chunk is fed in forward calls of `prefill` tokens (default 64), so
 * the tokens of later calls attend to the chunks the codec encoded after earlier calls (defaults: sinks 4 ->
 * the first 64-token page exact, buffer 128, chunk 64). Compressed-token statistics are read after the last
 * chunk's forward calls.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createBackend, loadModel } from '../ts/index.ts';

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const SHARED = process.env.HOGWILD_SHARED ?? path.resolve('..', 'shared');
const model = path.join(SHARED, 'models', 'stories260K', 'stories260K.gguf');
const text = readFileSync(path.join(SHARED, 'corpora', 'tinystories_val.txt'), 'utf8');
const chunks = Number(opt('chunks') ?? 60);
const prefill = Number(opt('prefill') ?? 64);
const backend = await createBackend({ backend: (opt('backend') ?? 'native') as 'native' });

const configs = [
  ['f32', { type: 'f32' }],
  ['f16', { type: 'f16' }],
  ['uniform 4-bit', { type: 'uniform', bits: 4 }],
  ['uniform 3-bit', { type: 'uniform', bits: 3 }],
  ['uniform 2-bit', { type: 'uniform', bits: 2 }],
  ['higgs 3-bit (d2 n64)', { type: 'higgs', bits: 3 }],
  ['higgs 2-bit (d2 n16)', { type: 'higgs', bits: 2 }],
] as const;

console.log(`stories260K, ${backend.name}, chunkChars 1200, context 512, first ${chunks} chunks, forward calls of ${prefill} tokens`);
console.log('| KV cache | PPL | mean NLL | tokens | bits/value (compressed tokens) | compressed tokens (last chunk) |');
console.log('|---|---|---|---|---|---|');
for (const [name, kv] of configs) {
  const m = await loadModel(model, { backend, kvCache: kv as never });
  const t0 = performance.now();
  const r = await m.perplexity(text, { chunkChars: 1200, context: 512, maxChunks: chunks, prefillChunk: prefill });
  const ms = performance.now() - t0;
  // stats of one more chunk held in a block (logits() frees its block): re-run the last chunk's tokens
  const rt = m.runtime;
  const ids = [m.tokenizer!.bosId!, ...m.tokenizer!.encode(text.slice((chunks - 1) * 1200, chunks * 1200), { addSpecial: false })].slice(0, 512);
  const b = rt.store.createBlock();
  for (let i = 0; i < ids.length; i += prefill) await rt.forward([{ view: [b], tokens: ids.slice(i, i + prefill) }], 'none');
  const cs = rt.store.codecStats();
  rt.store.freeBlock(b);
  console.log(
    `| ${name} | ${r.perplexity.toFixed(4)} | ${r.meanNll.toFixed(5)} | ${r.tokens} | ${cs.tokensCompressed ? cs.bitsPerValue.toFixed(3) : '-'} | ${cs.tokensCompressed}/${ids.length} |`,
  );
  if (process.env.VERBOSE) console.log(`  ${(ms / 1000).toFixed(1)} s`);
  m.dispose();
}
backend.dispose();
