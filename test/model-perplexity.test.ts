/**
 * Perplexity protocol.
 *  - paragraphChunks: random texts; every chunk within the limit, the non-empty lines are reproduced in order
 *    (split only where a line exceeds the limit), greedy packing (the next line would not have fitted).
 *  - perplexity math: model.perplexity equals a float64 log-softmax over model.logits on the same chunks.
 *  - stories260K on the whole ../shared/corpora/tinystories_val.txt, chunkChars 1200, context 512: the published
 *    figure from ../shared/README.md, about 4.67 (1.541 nats/token).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModel } from '../ts/index.ts';
import { paragraphChunks } from '../ts/engine/chunking.ts';
import { InvalidArgumentError } from '../ts/errors.ts';
import { backendsUnderTest, skipLine } from './helpers/backends.ts';
import { seededTest } from './helpers/harness.ts';

const SHARED = process.env.HOGWILD_SHARED ?? path.resolve('..', 'shared');
const STORIES = path.join(SHARED, 'models', 'stories260K', 'stories260K.gguf');
const CORPUS = path.join(SHARED, 'corpora', 'tinystories_val.txt');
const S = suite('model-perplexity');

seededTest(S, 'model-perplexity', 'paragraphChunks: limit, order, greedy packing', (rng) => {
  for (let trial = 0; trial < 50; trial++) {
    const lines: string[] = [];
    const n = rng.int(1, 30);
    for (let i = 0; i < n; i++) {
      const blank = rng.next() < 0.3;
      lines.push(blank ? ' '.repeat(rng.int(0, 2)) : 'x'.repeat(rng.int(1, 300)).replace(/x/g, () => 'abc .'[rng.int(0, 4)]!));
    }
    const text = lines.join(rng.next() < 0.5 ? '\n' : '\r\n');
    const max = rng.int(20, 420);
    const chunks = paragraphChunks(text, max);
    const kept = lines.filter((l) => l.trim() !== '');
    // expected pieces: each kept line split into max-sized pieces
    const pieces: string[] = [];
    for (const l of kept) for (let i = 0; i < l.length; i += max) pieces.push(l.slice(i, i + max));
    const got = chunks.flatMap((c) => c.split('\n'));
    assert.equal(got, pieces, `trial ${trial}: pieces in order`);
    for (let i = 0; i < chunks.length; i++) {
      assert.ok(chunks[i]!.length <= max, `chunk ${i} length ${chunks[i]!.length} > ${max}`);
      if (i + 1 < chunks.length) {
        const next = chunks[i + 1]!.split('\n')[0]!;
        assert.ok(chunks[i]!.length + 1 + next.length > max, `chunk ${i} could have taken the next piece`);
      }
    }
  }
});

seededTest(S, 'model-perplexity', 'native/wasm: perplexity equals a float64 log-softmax over logits', async (rng) => {
  for (const b of (await backendsUnderTest()).filter((x) => x.name === 'native' || x.name === 'wasm')) {
    if (!existsSync(STORIES)) return skipLine('model-perplexity', `${STORIES} not found (../shared absent)`);
    if (!existsSync(CORPUS)) return skipLine('model-perplexity', `${CORPUS} not found (../shared absent)`);
    const corpus = readFileSync(CORPUS, 'utf8');
    const start = rng.int(0, corpus.length - 3000);
    const text = corpus.slice(start, start + 2500);
    const m = await loadModel(STORIES, { backend: b.backend });
    try {
      const ctx = rng.int(64, 264);
      const r = await m.perplexity(text, { context: ctx, chunkChars: 600 });
      let nll = 0;
      let count = 0;
      const V = m.config.nVocab;
      for (const c of paragraphChunks(text, 600)) {
        const ids = [m.tokenizer!.bosId!, ...m.tokenize(c, { addSpecial: false })].slice(0, ctx);
        const lg = await m.logits(ids);
        for (let i = 0; i + 1 < ids.length; i++) {
          let mx = -Infinity;
          for (let j = 0; j < V; j++) mx = Math.max(mx, lg[i * V + j]!);
          let s = 0;
          for (let j = 0; j < V; j++) s += Math.exp(lg[i * V + j]! - mx);
          nll += mx + Math.log(s) - lg[i * V + ids[i + 1]!]!;
          count++;
        }
      }
      assert.is(r.tokens, count);
      assert.ok(Math.abs(r.meanNll - nll / count) <= 1e-9, `meanNll ${r.meanNll} vs ${nll / count}`);
      try {
        await m.perplexity(text, { chunkChars: 0 });
        assert.unreachable('chunkChars 0 accepted');
      } catch (e) {
        assert.instance(e, InvalidArgumentError);
      }
    } finally {
      m.dispose();
    }
  }
});

S('native: stories260K on tinystories_val (chunkChars 1200, context 512) is about 4.67', async () => {
  if (!existsSync(STORIES) || !existsSync(CORPUS)) return skipLine('model-perplexity', 'stories260K or tinystories_val not found (../shared absent)');
  const b = (await backendsUnderTest()).find((x) => x.name === 'native');
  if (!b) return skipLine('model-perplexity', 'needs the native backend (the whole corpus is ~340k tokens)');
  const m = await loadModel(STORIES, { backend: b.backend });
  try {
    const r = await m.perplexity(readFileSync(CORPUS, 'utf8'), { context: 512, chunkChars: 1200 });
    console.log(`    stories260K tinystories_val: ${r.tokens} tokens, ${r.chunks} chunks, NLL ${r.meanNll.toFixed(4)}, PPL ${r.perplexity.toFixed(4)} (published ~4.67 / 1.541)`);
    assert.ok(Math.abs(r.meanNll - 1.541) < 0.005, `mean NLL ${r.meanNll} not within 0.005 of 1.541`);
  } finally {
    m.dispose();
  }
});

S.run();
