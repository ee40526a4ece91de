/**
 * Float64 references for attention over views.
 *
 *  - refDenseAttention: ordinary causal-by-position attention: already-rotated queries at positions qPos,
 *    already-rotated keys at positions kPos, key visible iff kPos <= qPos, one softmax, GQA.
 *  - refViewAttention (materialised): each sequence's view is turned into one sequence with keys rotated
 *    at absolute positions o_j + l, queries rotated at P, then refDenseAttention. This is "what attention
 *    over a Hogwild! view means".
 *  - refViewAttentionQueryRotation: the query-rotation formulation (score with block j uses R(P - o_j) q
 *    against block-local keys, mask o_j + l <= P, one joint softmax). Used to check the identity between
 *    the two formulations inside the references themselves.
 *
 * Natural-log lse; where no key is visible lse = -Infinity and out = 0.
 */
import type { RopeParams } from '../../ts/backend/types.ts';
import { refRopeApply } from './rope.ts';

export interface AttnShape {
  nHead: number;
  nKvHead: number;
  headDim: number;
  headDimV: number;
}

/** A block's content for one layer: keys at block-local positions (rotated), values. */
export interface RefBlockData {
  len: number;
  k: ArrayLike<number>; // [len, nKvHead, headDim]
  v: ArrayLike<number>; // [len, nKvHead, headDimV]
}

export interface RefAttnResult {
  out: Float64Array; // [nQ, nHead, headDimV]
  lse: Float64Array; // [nQ, nHead]
}

/** Scores -> (out row, lse) with a max-shifted softmax in double precision. */
function softmaxCombine(scores: number[], values: ArrayLike<number>[], headDimV: number, out: Float64Array, outBase: number): number {
  if (scores.length === 0) {
    for (let d = 0; d < headDimV; d++) out[outBase + d] = 0;
    return -Infinity;
  }
  let m = -Infinity;
  for (const s of scores) m = Math.max(m, s);
  let sum = 0;
  const w = scores.map((s) => Math.exp(s - m));
  for (const x of w) sum += x;
  for (let d = 0; d < headDimV; d++) {
    let acc = 0;
    for (let i = 0; i < w.length; i++) acc += w[i]! * values[i]![d]!;
    out[outBase + d] = acc / sum;
  }
  return m + Math.log(sum);
}

function dot(a: ArrayLike<number>, aBase: number, b: ArrayLike<number>, bBase: number, n: number): number {
  let acc = 0;
  for (let i = 0; i < n; i++) acc += a[aBase + i]! * b[bBase + i]!;
  return acc;
}

function slice(a: ArrayLike<number>, start: number, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = a[start + i]!;
  return out;
}

/**
 * qRot[nQ, nHead, headDim] (rotated), kRot[T, nKvHead, headDim] (rotated), v[T, nKvHead, headDimV].
 * Key t visible to query i iff kPos[t] <= qPos[i].
 */
export function refDenseAttention(
  shape: AttnShape,
  qRot: ArrayLike<number>,
  qPos: ArrayLike<number>,
  kRot: ArrayLike<number>,
  v: ArrayLike<number>,
  kPos: ArrayLike<number>,
  scale: number,
): RefAttnResult {
  const { nHead, nKvHead, headDim, headDimV } = shape;
  const group = nHead / nKvHead;
  const nQ = qPos.length;
  const T = kPos.length;
  const out = new Float64Array(nQ * nHead * headDimV);
  const lse = new Float64Array(nQ * nHead);
  for (let i = 0; i < nQ; i++) {
    for (let h = 0; h < nHead; h++) {
      const kh = Math.floor(h / group);
      const scores: number[] = [];
      const vals: Float64Array[] = [];
      for (let t = 0; t < T; t++) {
        if (kPos[t]! > qPos[i]!) continue;
        scores.push(scale * dot(qRot, (i * nHead + h) * headDim, kRot, (t * nKvHead + kh) * headDim, headDim));
        vals.push(slice(v, (t * nKvHead + kh) * headDimV, headDimV));
      }
      lse[i * nHead + h] = softmaxCombine(scores, vals, headDimV, out, (i * nHead + h) * headDimV);
    }
  }
  return { out, lse };
}

/** One sequence's view materialised: keys at absolute positions o_j + l, values, positions. */
export function refMaterialiseView(
  rope: RopeParams,
  nKvHead: number,
  headDim: number,
  headDimV: number,
  blocks: ReadonlyArray<RefBlockData>,
): { k: Float64Array; v: Float64Array; pos: Float64Array } {
  const total = blocks.reduce((a, b) => a + b.len, 0);
  const k = new Float64Array(total * nKvHead * headDim);
  const v = new Float64Array(total * nKvHead * headDimV);
  const pos = new Float64Array(total);
  let o = 0;
  for (const b of blocks) {
    const kk = refRopeApply(rope, b.k, b.len, nKvHead, new Array<number>(b.len).fill(o));
    k.set(kk, o * nKvHead * headDim);
    for (let i = 0; i < b.len * nKvHead * headDimV; i++) v[o * nKvHead * headDimV + i] = b.v[i]!;
    for (let l = 0; l < b.len; l++) pos[o + l] = o + l;
    o += b.len;
  }
  return { k, v, pos };
}

/**
 * Attention over views, materialised formulation. views[s] = the blocks (data) of sequence s in order,
 * positions[s] = virtual positions of its query rows; q[nQ, nHead, headDim] un-rotated, rows in sequence order.
 */
export function refViewAttention(
  shape: AttnShape,
  rope: RopeParams,
  views: ReadonlyArray<ReadonlyArray<RefBlockData>>,
  positions: ReadonlyArray<ArrayLike<number>>,
  q: ArrayLike<number>,
  scale: number,
): RefAttnResult {
  const { nHead, headDim, headDimV, nKvHead } = shape;
  const nQ = positions.reduce((a, p) => a + p.length, 0);
  const out = new Float64Array(nQ * nHead * headDimV);
  const lse = new Float64Array(nQ * nHead);
  let row = 0;
  views.forEach((view, s) => {
    const pos = positions[s]!;
    const n = pos.length;
    const mat = refMaterialiseView(rope, nKvHead, headDim, headDimV, view);
    const qs = slice(q, row * nHead * headDim, n * nHead * headDim);
    const qRot = refRopeApply(rope, qs, n, nHead, pos);
    const r = refDenseAttention(shape, qRot, pos, mat.k, mat.v, mat.pos, scale);
    out.set(r.out, row * nHead * headDimV);
    lse.set(r.lse, row * nHead);
    row += n;
  });
  return { out, lse };
}

/** Query-rotation formulation: score(j, l) = scale <R(P - o_j) q, K_j[l]>, visible iff o_j + l <= P, joint softmax. */
export function refViewAttentionQueryRotation(
  shape: AttnShape,
  rope: RopeParams,
  views: ReadonlyArray<ReadonlyArray<RefBlockData>>,
  positions: ReadonlyArray<ArrayLike<number>>,
  q: ArrayLike<number>,
  scale: number,
): RefAttnResult {
  const { nHead, nKvHead, headDim, headDimV } = shape;
  const group = nHead / nKvHead;
  const nQ = positions.reduce((a, p) => a + p.length, 0);
  const out = new Float64Array(nQ * nHead * headDimV);
  const lse = new Float64Array(nQ * nHead);
  let row = 0;
  views.forEach((view, s) => {
    const pos = positions[s]!;
    for (let i = 0; i < pos.length; i++, row++) {
      const P = pos[i]!;
      const qRow = slice(q, row * nHead * headDim, nHead * headDim);
      const qRots: Float64Array[] = [];
      let off = 0;
      for (const b of view) {
        qRots.push(refRopeApply(rope, qRow, 1, nHead, [P - off]));
        off += b.len;
      }
      for (let h = 0; h < nHead; h++) {
        const kh = Math.floor(h / group);
        const scores: number[] = [];
        const vals: Float64Array[] = [];
        let o = 0;
        for (let j = 0; j < view.length; j++) {
          const b = view[j]!;
          const qr = qRots[j]!;
          for (let l = 0; l < b.len; l++) {
            if (o + l > P) break;
            scores.push(scale * dot(qr, h * headDim, b.k, (l * nKvHead + kh) * headDim, headDim));
            vals.push(slice(b.v, (l * nKvHead + kh) * headDimV, headDimV));
          }
          o += b.len;
        }
        lse[row * nHead + h] = softmaxCombine(scores, vals, headDimV, out, (row * nHead + h) * headDimV);
      }
    }
  });
  return { out, lse };
}
