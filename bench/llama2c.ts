/**
 * bench/llama2c.ts — reads a llama2.c checkpoint (Karpathy's `run.c` format) and its tokenizer, and writes the
 * same weights as a GGUF llama file (F32) that the engine loads; used by bench/aqua-ppl.ts for babyllama, which
 * ships only in llama2.c format (the library's loader reads GGUF and Hugging Face folders, not llama2.c).
 *
 *   header: 7 x int32 {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (< 0: separate classifier),
 *           seq_len}, then float32: token_embedding [vocab, dim], rms_att [L, dim], wq [L, dim, dim],
 *           wk [L, kv_dim, dim], wv [L, kv_dim, dim], wo [L, dim, dim], rms_ffn [L, dim], w1 [L, hidden, dim],
 *           w2 [L, dim, hidden], w3 [L, hidden, dim], rms_final [dim], freq_cis_real/imag [seq_len, hd/2] x 2,
 *           [wcls [vocab, dim]]. Matrices are [out, in] row-major (run.c: xout[i] = sum_j w[i*n + j] x[j]).
 *   RoPE in run.c rotates adjacent pairs (2i, 2i+1) with theta 10000: GGML "normal", what GGUF llama files use.
 *   tokenizer: int32 max_token_length, then per token {float32 score, int32 len, bytes}.
 */
import { readFileSync } from 'node:fs';
import { GgmlType } from '../ts/formats/gguf.ts';
import { gguf, writeGguf } from '../ts/formats/gguf-writer.ts';

export interface Llama2cInfo {
  dim: number;
  hidden: number;
  nLayer: number;
  nHead: number;
  nKvHead: number;
  vocab: number;
  seqLen: number;
}

export function llama2cToGguf(bin: string, out: string): Llama2cInfo {
  const buf = readFileSync(bin);
  const h = new Int32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + 28));
  const [dim, hidden, nLayer, nHead, nKvHead, vocabRaw, seqLen] = Array.from(h) as [number, number, number, number, number, number, number];
  const shared = vocabRaw > 0;
  const vocab = Math.abs(vocabRaw);
  const hd = dim / nHead;
  const kvDim = nKvHead * hd;
  const f = new Float32Array(buf.buffer.slice(buf.byteOffset + 28, buf.byteOffset + buf.byteLength));
  let o = 0;
  const take = (n: number) => {
    const a = f.slice(o, o + n);
    o += n;
    return a;
  };
  const emb = take(vocab * dim);
  const rmsAtt = take(nLayer * dim);
  const wq = take(nLayer * dim * dim);
  const wk = take(nLayer * kvDim * dim);
  const wv = take(nLayer * kvDim * dim);
  const wo = take(nLayer * dim * dim);
  const rmsFfn = take(nLayer * dim);
  const w1 = take(nLayer * hidden * dim);
  const w2 = take(nLayer * dim * hidden);
  const w3 = take(nLayer * hidden * dim);
  const rmsFinal = take(dim);
  o += seqLen * (hd / 2) * 2;
  const wcls = shared ? null : take(vocab * dim);
  const T = (name: string, shape: number[], data: Float32Array) => ({ name, type: GgmlType.F32, shape, data });
  const tensors = [T('token_embd.weight', [vocab, dim], emb), T('output_norm.weight', [dim], rmsFinal)];
  if (wcls) tensors.push(T('output.weight', [vocab, dim], wcls));
  for (let l = 0; l < nLayer; l++) {
    const sl = (a: Float32Array, n: number) => a.slice(l * n, (l + 1) * n);
    tensors.push(
      T(`blk.${l}.attn_norm.weight`, [dim], sl(rmsAtt, dim)),
      T(`blk.${l}.attn_q.weight`, [dim, dim], sl(wq, dim * dim)),
      T(`blk.${l}.attn_k.weight`, [kvDim, dim], sl(wk, kvDim * dim)),
      T(`blk.${l}.attn_v.weight`, [kvDim, dim], sl(wv, kvDim * dim)),
      T(`blk.${l}.attn_output.weight`, [dim, dim], sl(wo, dim * dim)),
      T(`blk.${l}.ffn_norm.weight`, [dim], sl(rmsFfn, dim)),
      T(`blk.${l}.ffn_gate.weight`, [hidden, dim], sl(w1, hidden * dim)),
      T(`blk.${l}.ffn_down.weight`, [dim, hidden], sl(w2, dim * hidden)),
      T(`blk.${l}.ffn_up.weight`, [hidden, dim], sl(w3, hidden * dim)),
    );
  }
  writeGguf(out, {
    metadata: [
      ['general.architecture', 'llama'],
      ['general.name', 'llama2c'],
      ['llama.context_length', gguf.u32(seqLen)],
      ['llama.embedding_length', gguf.u32(dim)],
      ['llama.feed_forward_length', gguf.u32(hidden)],
      ['llama.block_count', gguf.u32(nLayer)],
      ['llama.attention.head_count', gguf.u32(nHead)],
      ['llama.attention.head_count_kv', gguf.u32(nKvHead)],
      ['llama.rope.freq_base', gguf.f32(10000)],
      ['llama.attention.layer_norm_rms_epsilon', gguf.f32(1e-5)],
      ['llama.vocab_size', gguf.u32(vocab)],
      ['tokenizer.ggml.bos_token_id', gguf.u32(1)],
      ['tokenizer.ggml.eos_token_id', gguf.u32(2)],
    ],
    tensors,
  });
  return { dim, hidden, nLayer, nHead, nKvHead, vocab, seqLen };
}

/** The vocabulary pieces of a llama2.c tokenizer file. */
export function llama2cVocab(file: string, vocab: number): string[] {
  const b = readFileSync(file);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let o = 4;
  const out: string[] = [];
  for (let i = 0; i < vocab; i++) {
    o += 4; // score
    const len = dv.getInt32(o, true);
    o += 4;
    out.push(b.subarray(o, o + len).toString('utf8'));
    o += len;
  }
  return out;
}
