/**
 * llama2.c checkpoints (run.c format) and their tokenizer.bin files.
 *  - babyllama (../shared/models/babyllama, legacy layout, 105-character vocabulary, head_dim 16), native and
 *    WASM: prompt token ids equal the golden ones, logits within 1e-4 of the golden float64 run.c logits, and
 *    the greedy sample from BOS (256 positions) equals golden_babyllama105_greedy_noprompt.txt;
 *  - stories260K.bin + tok512.bin against stories260K.gguf (the same weights, converted by llama.cpp): equal
 *    token ids on random corpus slices, equal logits on a random prompt;
 *  - the version-1 layout: a v1 file written here from the legacy babyllama (norms first, 256-byte header)
 *    gives the same logits as the legacy file;
 *  - bad files: truncated at a random point, an implausible header, version 2 (int8), a tokenizer made for
 *    another vocabulary — each a ModelFormatError naming the file; a checkpoint without a tokenizer loads
 *    and runs on token ids, and tokenize() throws TokenizerError.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ModelFormatError, TokenizerError, loadModel } from '../ts/index.ts';
import { backendsUnderTest, skipLine } from './helpers/backends.ts';
import { seededTest } from './helpers/harness.ts';
import { expectClose } from './helpers/metrics.ts';

const SHARED = process.env.HOGWILD_SHARED ?? path.resolve('..', 'shared');
const BABY = path.join(SHARED, 'models', 'babyllama');
const BABY_BIN = path.join(BABY, 'model5000.bin');
const STORIES = path.join(SHARED, 'models', 'stories260K');
const CORPUS = path.join(SHARED, 'corpora', 'tinystories_val.txt');
const S = suite('model-llama2c');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'hwkv-l2c-'));
S.after(() => rmSync(tmp, { recursive: true, force: true }));

function have(p: string): boolean {
  if (existsSync(p)) return true;
  skipLine('model-llama2c', `${p} not found (../shared absent)`);
  return false;
}

async function expectFormat(p: string, code: string, opts: { tokenizer?: string } = {}): Promise<void> {
  const [b] = await backendsUnderTest();
  try {
    const m = await loadModel(p, { backend: b!.backend, ...opts });
    m.dispose();
  } catch (e) {
    assert.instance(e, ModelFormatError, `${p}: ${(e as Error).message}`);
    assert.is((e as ModelFormatError).code, code, (e as Error).message);
    assert.ok((e as Error).message.includes(path.basename((e as ModelFormatError).path)), (e as Error).message);
    return;
  }
  assert.unreachable(`${p}: loaded, expected ${code}`);
}

S('babyllama: golden token ids, logits and greedy sample on native and WASM', async () => {
  if (!have(BABY_BIN)) return;
  const golden = JSON.parse(readFileSync(path.join(BABY, 'golden_logits_babyllama105.json'), 'utf8')) as {
    prompt: string;
    token_ids: number[];
    logits: number[][];
  };
  const sample = readFileSync(path.join(BABY, 'golden_babyllama105_greedy_noprompt.txt'), 'utf8').replace(/\n$/, '');
  for (const { name, backend } of (await backendsUnderTest()).filter((b) => b.name !== 'mock')) {
    const m = await loadModel(BABY_BIN, { backend });
    try {
      assert.is(m.config.nVocab, 105);
      assert.is(m.config.headDim, 16);
      assert.equal(m.tokenize(golden.prompt), golden.token_ids, `${name}: prompt ids`);
      const got = await m.logits(golden.token_ids);
      expectClose(got, Float32Array.from(golden.logits.flat()), 1e-4, `${name}: babyllama golden logits`, 'babyllama logits');
      const r = await m.generate([m.tokenizer!.bosId!], { maxTokens: 256 }).result;
      assert.is(m.detokenize(r.tokens), sample, `${name}: greedy sample from BOS`);
    } finally {
      m.dispose();
    }
  }
});

seededTest(S, 'model-llama2c', 'stories260K.bin + tok512.bin equals stories260K.gguf (ids and logits)', async (rng) => {
  const bin = path.join(STORIES, 'stories260K.bin');
  if (!have(bin) || !have(CORPUS)) return;
  const [b] = (await backendsUnderTest()).filter((x) => x.name !== 'mock');
  const a = await loadModel(bin, { backend: b!.backend });
  const g = await loadModel(path.join(STORIES, 'stories260K.gguf'), { backend: b!.backend });
  try {
    const corpus = readFileSync(CORPUS, 'utf8');
    for (let i = 0; i < 20; i++) {
      const s = rng.int(0, corpus.length - 400);
      const text = corpus.slice(s, s + rng.int(1, 400));
      assert.equal(a.tokenize(text), g.tokenize(text), `ids of ${JSON.stringify(text.slice(0, 40))}`);
    }
    const s = rng.int(0, corpus.length - 800);
    const ids = g.tokenize(corpus.slice(s, s + 600)).slice(0, 200);
    expectClose(await a.logits(ids), await g.logits(ids), 1e-6, 'stories260K .bin vs .gguf logits');
  } finally {
    a.dispose();
    g.dispose();
  }
});

/** Rewrites a legacy llama2.c file in the version-1 layout (256-byte header, norms first). */
function toVersion1(legacy: Buffer): Buffer {
  const p = [0, 1, 2, 3, 4, 5, 6].map((i) => legacy.readInt32LE(4 * i));
  const [dim, hidden, L, H, KV, vocabSigned, seq] = p as [number, number, number, number, number, number, number];
  const vocab = Math.abs(vocabSigned);
  const hd = dim / H;
  const f = (n: number) => n * 4;
  let o = 28;
  const cut = (n: number) => {
    const b = legacy.subarray(o, o + f(n));
    o += f(n);
    return b;
  };
  const emb = cut(vocab * dim);
  const attnNorm = cut(L * dim);
  const wq = cut(L * dim * dim);
  const wk = cut(L * KV * hd * dim);
  const wv = cut(L * KV * hd * dim);
  const wo = cut(L * dim * dim);
  const ffnNorm = cut(L * dim);
  const w1 = cut(L * hidden * dim);
  const w2 = cut(L * dim * hidden);
  const w3 = cut(L * hidden * dim);
  const norm = cut(dim);
  cut(2 * seq * (hd / 2));
  const wcls = vocabSigned < 0 ? cut(vocab * dim) : null;
  const head = Buffer.alloc(256);
  head.writeUInt32LE(0x616b3432, 0);
  head.writeInt32LE(1, 4);
  [dim, hidden, L, H, KV, vocab, seq].forEach((v, i) => head.writeInt32LE(v, 8 + 4 * i));
  head.writeUInt8(wcls ? 0 : 1, 36);
  return Buffer.concat([head, attnNorm, ffnNorm, norm, emb, wq, wk, wv, wo, w1, w2, w3, ...(wcls ? [wcls] : [])]);
}

seededTest(S, 'model-llama2c', 'version-1 layout gives the legacy logits', async (rng) => {
  if (!have(BABY_BIN)) return;
  const v1 = path.join(tmp, 'v1', 'model.bin');
  await import('node:fs').then((fs) => fs.mkdirSync(path.dirname(v1), { recursive: true }));
  writeFileSync(v1, toVersion1(readFileSync(BABY_BIN)));
  copyFileSync(path.join(BABY, 'tok105.bin'), path.join(tmp, 'v1', 'tokenizer.bin'));
  const [b] = (await backendsUnderTest()).filter((x) => x.name !== 'mock');
  const a = await loadModel(BABY_BIN, { backend: b!.backend });
  const c = await loadModel(v1, { backend: b!.backend });
  try {
    const ids = [1, ...Array.from({ length: rng.int(5, 60) }, () => rng.int(3, 104))];
    expectClose(await c.logits(ids), await a.logits(ids), 0, 'v1 vs legacy logits');
    assert.equal(c.tokenize('Once upon a time.'), a.tokenize('Once upon a time.'));
  } finally {
    a.dispose();
    c.dispose();
  }
});

seededTest(S, 'model-llama2c', 'bad files: truncated, implausible, version 2, wrong tokenizer, no tokenizer', async (rng) => {
  if (!have(BABY_BIN)) return;
  const full = readFileSync(BABY_BIN);
  const dir = path.join(tmp, 'bad');
  await import('node:fs').then((fs) => fs.mkdirSync(dir, { recursive: true }));
  const cutAt = rng.int(40, full.length - 1);
  const trunc = path.join(dir, 'trunc.bin');
  writeFileSync(trunc, full.subarray(0, cutAt));
  await expectFormat(trunc, 'FORMAT_TRUNCATED', { tokenizer: path.join(BABY, 'tok105.bin') });
  const junk = path.join(dir, 'junk.bin');
  const jb = Buffer.alloc(64);
  for (let i = 0; i < 64; i++) jb[i] = rng.int(0, 255);
  jb.writeInt32LE(-5, 0); // negative dim: never plausible
  writeFileSync(junk, jb);
  await expectFormat(junk, 'FORMAT_BAD_MAGIC');
  const v2 = Buffer.alloc(512);
  v2.writeUInt32LE(0x616b3432, 0);
  v2.writeInt32LE(2, 4);
  const v2p = path.join(dir, 'v2.bin');
  writeFileSync(v2p, v2);
  await expectFormat(v2p, 'FORMAT_UNSUPPORTED_VERSION');
  if (existsSync(path.join(STORIES, 'tok512.bin'))) await expectFormat(BABY_BIN, 'FORMAT_INVALID', { tokenizer: path.join(STORIES, 'tok512.bin') });
  // no tokenizer beside it: loads, runs on ids, tokenize() is a TokenizerError
  const lone = path.join(dir, 'lone', 'model.bin');
  await import('node:fs').then((fs) => fs.mkdirSync(path.dirname(lone), { recursive: true }));
  copyFileSync(BABY_BIN, lone);
  const [b] = (await backendsUnderTest()).filter((x) => x.name !== 'mock');
  const m = await loadModel(lone, { backend: b!.backend });
  try {
    assert.is((await m.logits([1, 3, 4])).length, 3 * 105);
    assert.throws(() => m.tokenize('hi'), (e: unknown) => e instanceof TokenizerError);
  } finally {
    m.dispose();
  }
});

S.run();
