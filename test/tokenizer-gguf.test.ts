/**
 * GGUF-vocabulary tokenizers against llama.cpp's tokenizer test vectors (../shared/tokenizers: for each
 * ggml-vocab-X.gguf, `.inp` holds texts separated by lines `__ggml_vocab_test__`, `.out` the expected ids,
 * one line per text), encoded as llama.cpp's test-tokenizer-0 does: add_special=false, parse_special=false.
 * Also decode round-trips, streaming decode, special-token handling, and the stories260K vocabulary.
 *
 * Reads ../shared (HOGWILD_SHARED overrides); prints a visible SKIP line and passes when it is absent.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { GgufTokenizer, incompleteUtf8Tail, Utf8StreamDecoder } from '../ts/tokenizer/index.ts';
import { TokenizerError } from '../ts/formats/errors.ts';
import type { GgufFile, GgufValue } from '../ts/formats/gguf.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SHARED = process.env.HOGWILD_SHARED ?? path.resolve(repoRoot, '../shared');
const TOKENIZERS = path.join(SHARED, 'tokenizers');
const STORIES = path.join(SHARED, 'models/stories260K');

const skipped = new Set<string>();
function skip(what: string, reason: string): void {
  const line = `SKIP ${what}: ${reason}`;
  if (skipped.has(line)) return;
  skipped.add(line);
  console.log(`\n${line}`);
}

const SEPARATOR = '\n__ggml_vocab_test__\n';

function readVectors(vocab: string): { text: string; ids: number[] }[] {
  const base = path.join(TOKENIZERS, `ggml-vocab-${vocab}.gguf`);
  const texts = fs.readFileSync(`${base}.inp`, 'utf8').split(SEPARATOR);
  // The file ends with a separator: the piece after it is empty and not a test.
  if (texts[texts.length - 1] === '') texts.pop();
  const lines = fs.readFileSync(`${base}.out`, 'utf8').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  assert.is(lines.length, texts.length, `${vocab}: .out lines vs .inp texts`);
  return texts.map((text, i) => ({
    text,
    ids: lines[i]!.trim() === '' ? [] : lines[i]!.trim().split(/\s+/).map(Number),
  }));
}

const tokenizers = new Map<string, GgufTokenizer>();
function load(vocab: string): GgufTokenizer {
  let t = tokenizers.get(vocab);
  if (!t) {
    t = GgufTokenizer.fromFile(path.join(TOKENIZERS, `ggml-vocab-${vocab}.gguf`));
    tokenizers.set(vocab, t);
  }
  return t;
}

const haveTokenizers = fs.existsSync(TOKENIZERS);
const VOCABS: { name: string; kind: 'spm' | 'bpe' }[] = [
  { name: 'llama-spm', kind: 'spm' },
  { name: 'phi-3', kind: 'spm' },
  { name: 'gpt-2', kind: 'bpe' },
  { name: 'falcon', kind: 'bpe' },
  { name: 'deepseek-coder', kind: 'bpe' },
];

const S = suite('tokenizer-gguf');

for (const { name, kind } of VOCABS) {
  S(`${name}: every llama.cpp test vector encodes to the expected ids (add_special=false, parse_special=false)`, () => {
    if (!haveTokenizers) return skip(`tokenizer vectors ${name}`, `${TOKENIZERS} not found (../shared absent)`);
    const tok = load(name);
    assert.is(tok.kind, kind);
    const vectors = readVectors(name);
    assert.ok(vectors.length >= 40, `${name}: expected the full vector set, got ${vectors.length}`);
    const failures: string[] = [];
    for (const [i, v] of vectors.entries()) {
      const got = tok.encode(v.text, { addSpecial: false, parseSpecial: false });
      if (got.join(' ') !== v.ids.join(' ')) {
        failures.push(`#${i} ${JSON.stringify(v.text).slice(0, 60)}\n      expected ${v.ids.join(' ')}\n      got      ${got.join(' ')}`);
      }
    }
    console.log(`  ${name}: ${vectors.length - failures.length}/${vectors.length} vectors`);
    assert.ok(failures.length === 0, `${name}: ${failures.length}/${vectors.length} vectors differ:\n    ${failures.join('\n    ')}`);
  });

  S(`${name}: decode(encode(text)) = text, and the stream decoder yields the same text`, () => {
    if (!haveTokenizers) return skip(`tokenizer vectors ${name}`, `${TOKENIZERS} not found (../shared absent)`);
    const tok = load(name);
    for (const v of readVectors(name)) {
      const ids = tok.encode(v.text, { addSpecial: false });
      assert.is(tok.decode(ids), v.text, `${name}: decode of ${JSON.stringify(v.text)}`);
      // Streaming, one id at a time: every chunk is whole characters, and together they are the text.
      const dec = tok.createDecoder({ stripLeadingSpace: tok.vocab.addSpacePrefix });
      let streamed = '';
      for (const id of ids) {
        const chunk = dec.push(id);
        assert.not.ok(chunk.includes('\uFFFD'), `${name}: stream chunk with U+FFFD for ${JSON.stringify(v.text)}`);
        streamed += chunk;
      }
      streamed += dec.flush();
      assert.is(streamed, v.text, `${name}: streamed ${JSON.stringify(v.text)}`);
      // With BOS (and EOS where the vocabulary adds it), special tokens decode to nothing.
      const withSpecial = tok.encode(v.text);
      assert.is(tok.decode(withSpecial), v.text, `${name}: decode with special tokens of ${JSON.stringify(v.text)}`);
    }
  });
}

S('special tokens: BOS/EOS flags, parseSpecial, rendering, EOG, bad ids', () => {
  if (!haveTokenizers) return skip('tokenizer special tokens', `${TOKENIZERS} not found (../shared absent)`);
  const spm = load('llama-spm');
  assert.is(spm.bosId, 1);
  assert.is(spm.eosId, 2);
  assert.is(spm.unkId, 0);
  assert.is(spm.vocabSize, 32000);
  assert.ok(spm.addBos);
  assert.not.ok(spm.addEos);
  assert.equal(spm.encode('Hello world'), [1, 15043, 3186]);
  assert.equal(spm.encode('Hello world', { addSpecial: false }), [15043, 3186]);
  // "<s>" in text: plain text unless parseSpecial; after a special token SentencePiece prefixes a space again.
  assert.equal(spm.encode('<s>Hello world', { addSpecial: false, parseSpecial: true }), [1, 15043, 3186]);
  assert.not.ok(spm.encode('<s>Hello world', { addSpecial: false }).includes(1));
  assert.is(spm.decode([1, 15043, 3186, 2]), 'Hello world');
  assert.is(spm.decode([1, 15043, 3186, 2], { special: true }), '<s> Hello world</s>');
  assert.is(spm.decode([15043, 3186], { stripLeadingSpace: false }), ' Hello world');
  assert.ok(spm.isEog(2));
  assert.not.ok(spm.isEog(1));
  assert.is(spm.tokenText(13), '<0x0A>');
  assert.is(spm.tokenToPiece(13), '\n');
  assert.is(spm.tokenId('▁Hello'), 15043);
  assert.throws(() => spm.tokenToBytes(32000), (e: unknown) => e instanceof TokenizerError && e.code === 'TOKENIZER_BAD_TOKEN');
  assert.throws(() => spm.decode([-1]), (e: unknown) => e instanceof TokenizerError);

  // Phi-3: its chat tokens swallow the whitespace after them.
  const phi3 = load('phi-3');
  const user = phi3.tokenId('<|user|>')!;
  assert.equal(phi3.encode('<|user|>\nHi', { addSpecial: false, parseSpecial: true }), [user, ...phi3.encode('Hi', { addSpecial: false })]);
  assert.ok(phi3.isEog(phi3.tokenId('<|end|>')!));
  assert.ok(phi3.isEog(phi3.eosId!));

  // Byte-level BPE: GPT-2 has no add_bos_token, deepseek-coder adds BOS.
  const gpt2 = load('gpt-2');
  assert.not.ok(gpt2.addBos);
  assert.equal(gpt2.encode('Hello world'), gpt2.encode('Hello world', { addSpecial: false }));
  const eot = gpt2.tokenId('<|endoftext|>')!;
  assert.ok(gpt2.isEog(eot));
  assert.equal(gpt2.encode('a<|endoftext|>b', { parseSpecial: true }), [...gpt2.encode('a'), eot, ...gpt2.encode('b')]);
  assert.not.ok(gpt2.encode('a<|endoftext|>b').includes(eot));
  assert.is(gpt2.decode([eot]), '');
  assert.is(gpt2.decode([eot], { special: true }), '<|endoftext|>');
  const ds = load('deepseek-coder');
  assert.ok(ds.addBos);
  assert.is(ds.encode('Hello')[0], ds.bosId);
  assert.is(ds.pre, 'deepseek-coder');
});

S('stream decoder holds back incomplete UTF-8 (byte-fallback and byte-level tokens)', () => {
  if (!haveTokenizers) return skip('tokenizer streaming', `${TOKENIZERS} not found (../shared absent)`);
  const spm = load('llama-spm');
  // U+1F999 (llama) has no piece in the Llama vocabulary: four <0xXX> byte tokens.
  const ids = spm.encode('🦙', { addSpecial: false });
  assert.equal(ids, [29871, 243, 162, 169, 156]);
  const dec = spm.createDecoder();
  assert.is(dec.push(ids[0]!), ' ');
  assert.is(dec.push(ids[1]!), '');
  assert.is(dec.push([ids[2]!, ids[3]!]), '');
  assert.is(dec.push(ids[4]!), '🦙');
  assert.is(dec.flush(), '');
  // An unfinished sequence comes out as U+FFFD on flush, then the decoder starts clean.
  assert.is(dec.push(243), '');
  assert.is(dec.flush(), '\uFFFD');
  assert.is(dec.push(spm.encode('Hi', { addSpecial: false })), ' Hi');

  const gpt2 = load('gpt-2');
  const g = gpt2.encode(' 😁 ?我想在apple工作', { addSpecial: false });
  const gd = gpt2.createDecoder();
  let out = '';
  for (const id of g) {
    const chunk = gd.push(id);
    assert.not.ok(chunk.includes('\uFFFD'));
    out += chunk;
  }
  assert.is(out + gd.flush(), ' 😁 ?我想在apple工作');
});

S('Utf8StreamDecoder and incompleteUtf8Tail', () => {
  const bytes = new TextEncoder().encode('aé€😁');
  for (let cut = 0; cut <= bytes.length; cut++) {
    const d = new Utf8StreamDecoder();
    const s = d.push(bytes.subarray(0, cut)) + d.push(bytes.subarray(cut)) + d.flush();
    assert.is(s, 'aé€😁', `split at ${cut}`);
  }
  assert.is(incompleteUtf8Tail(Uint8Array.of(0xf0, 0x9f, 0x98)), 3);
  assert.is(incompleteUtf8Tail(Uint8Array.of(0xf0, 0x9f, 0x98, 0x81)), 0);
  assert.is(incompleteUtf8Tail(Uint8Array.of(0x61, 0xe2)), 1);
  assert.is(incompleteUtf8Tail(Uint8Array.of(0x80, 0x80)), 0);
});

S('stories260K: the golden prompt tokenizes to the golden ids; the golden text round-trips', () => {
  const gguf = path.join(STORIES, 'stories260K.gguf');
  if (!fs.existsSync(gguf)) return skip('stories260K tokenizer', `${gguf} not found (../shared absent)`);
  const tok = GgufTokenizer.fromFile(gguf);
  assert.is(tok.kind, 'spm');
  assert.is(tok.vocabSize, 512);
  const golden = JSON.parse(fs.readFileSync(path.join(STORIES, 'golden_logits_stories260K.json'), 'utf8')) as {
    prompt: string;
    token_ids: number[];
  };
  assert.equal(tok.encode(golden.prompt), golden.token_ids);
  assert.ok(golden.prompt.startsWith('Once upon a time'));
  assert.equal(tok.encode('Once upon a time'), golden.token_ids.slice(0, 5));
  assert.is(tok.decode(golden.token_ids), golden.prompt);
  const text = fs.readFileSync(path.join(STORIES, 'golden_stories260K_greedy_onceupon.txt'), 'utf8');
  assert.is(tok.decode(tok.encode(text)), text);
});

// -----------------------------------------------------------------------------------------------------------
// Synthetic vocabularies (no files needed)

function fakeGguf(meta: Record<string, GgufValue>): GgufFile {
  return {
    path: '(synthetic)',
    version: 3,
    metadata: new Map(Object.entries(meta)),
    metadataTypes: new Map(),
    metadataArrayTypes: new Map(),
    tensors: [],
    alignment: 32,
    dataOffset: 0,
    fileSize: 0,
  };
}

S('SentencePiece merges: highest score first, leftmost on ties, byte fallback', () => {
  const tokens = ['<unk>', '<s>', '</s>', '<0x7A>', '<0xC3>', '<0xA9>', 'a', 'b', 'c', 'ab', 'bc', 'abc', 'x'];
  const scores = new Float32Array([0, 0, 0, 0, 0, 0, -5, -5, -5, -2, -1, -3, -5]);
  const types = new Int32Array([2, 3, 3, 6, 6, 6, 1, 1, 1, 1, 1, 1, 1]);
  const make = (s: Float32Array) =>
    new GgufTokenizer(
      fakeGguf({
        'tokenizer.ggml.model': 'llama',
        'tokenizer.ggml.tokens': tokens,
        'tokenizer.ggml.scores': s,
        'tokenizer.ggml.token_type': types,
        'tokenizer.ggml.add_space_prefix': false,
      }),
    );
  const tok = make(scores);
  const id = (t: string) => tokens.indexOf(t);
  // "bc" (-1) beats "ab" (-2); then "a"+"bc" is not in the vocabulary... but "abc" is: a + bc -> abc.
  assert.equal(tok.encode('abc', { addSpecial: false }), [id('abc')]);
  // Without "abc", the result is a | bc.
  const noAbc = new Float32Array(scores);
  const tok2 = new GgufTokenizer(
    fakeGguf({
      'tokenizer.ggml.model': 'llama',
      'tokenizer.ggml.tokens': tokens.map((t) => (t === 'abc' ? 'zzz' : t)),
      'tokenizer.ggml.scores': noAbc,
      'tokenizer.ggml.token_type': types,
      'tokenizer.ggml.add_space_prefix': false,
    }),
  );
  assert.equal(tok2.encode('abc', { addSpecial: false }), [id('a'), id('bc')]);
  // Equal scores: the leftmost pair merges first ("ab" then "c").
  const tied = new Float32Array(scores);
  tied[id('ab')] = -1;
  assert.equal(new GgufTokenizer(fakeGguf({
    'tokenizer.ggml.model': 'llama',
    'tokenizer.ggml.tokens': tokens.map((t) => (t === 'abc' ? 'zzz' : t)),
    'tokenizer.ggml.scores': tied,
    'tokenizer.ggml.token_type': types,
    'tokenizer.ggml.add_space_prefix': false,
  })).encode('abc', { addSpecial: false }), [id('ab'), id('c')]);
  // Characters outside the vocabulary: byte tokens, and decoding restores them.
  const ids = tok.encode('zé', { addSpecial: false });
  assert.equal(ids, [id('<0x7A>'), id('<0xC3>'), id('<0xA9>')]);
  assert.is(tok.decode(ids), 'zé');
  assert.equal(tok.encode('', { addSpecial: true }), [1]);
});

S('vocabulary errors: unsupported model / pre-tokenizer, missing pieces', () => {
  const base = { 'tokenizer.ggml.tokens': ['a', 'b'] };
  assert.throws(
    () => new GgufTokenizer(fakeGguf({ ...base, 'tokenizer.ggml.model': 't5' })),
    (e: unknown) => e instanceof TokenizerError && e.code === 'TOKENIZER_UNSUPPORTED' && /t5/.test(e.message),
  );
  assert.throws(
    () => new GgufTokenizer(fakeGguf({ ...base, 'tokenizer.ggml.model': 'gpt2', 'tokenizer.ggml.merges': [], 'tokenizer.ggml.pre': 'no-such-pre' })),
    (e: unknown) => e instanceof TokenizerError && e.code === 'TOKENIZER_UNSUPPORTED' && /no-such-pre/.test(e.message),
  );
  assert.throws(
    () => new GgufTokenizer(fakeGguf({ ...base, 'tokenizer.ggml.model': 'gpt2' })),
    (e: unknown) => e instanceof TokenizerError && e.code === 'TOKENIZER_INVALID' && /merges/.test(e.message),
  );
  assert.throws(
    () => new GgufTokenizer(fakeGguf({ 'general.architecture': 'llama' })),
    (e: unknown) => e instanceof TokenizerError && e.code === 'TOKENIZER_INVALID',
  );
  assert.throws(
    () => new GgufTokenizer(fakeGguf({ ...base, 'tokenizer.ggml.model': 'llama', 'tokenizer.ggml.scores': new Float32Array(3) })),
    (e: unknown) => e instanceof TokenizerError && /3 entries for 2 tokens/.test(e.message),
  );
});

S.run();
