/** Inputs and drivers shared by the compressed-cache suites (aqua-*). */
import type { Model } from '../../ts/index.ts';
import { HogwildCache, type LayoutSpec } from '../../ts/hogwild/index.ts';
import { argmax } from '../../ts/engine/sampling.ts';
import type { Rng } from './rng.ts';

/**
 * Layer-correlated K/V (what AQUA-KV's predictors are for), [nLayer, n, C] each: x_l = 0.7·x_{l−1} + noise for
 * keys (layer 0 with a per-channel offset), 0.5·v_{l−1} + noise for values.
 */
export function layerCorrelatedKv(rng: Rng, nLayer: number, n: number, C: number): { k: Float32Array; v: Float32Array } {
  const k = new Float32Array(nLayer * n * C);
  const v = new Float32Array(nLayer * n * C);
  for (let l = 0; l < nLayer; l++)
    for (let i = 0; i < n * C; i++) {
      const j = l * n * C + i;
      k[j] = (l ? 0.7 * k[j - n * C]! : 1.5 * Math.sin(i % C)) + rng.normal();
      v[j] = (l ? 0.5 * v[j - n * C]! : 0) + rng.normal();
    }
  return { k, v };
}

/** Two workers that both see the prompt block, then their own. */
export const SHARED_PROMPT: LayoutSpec = {
  name: 'shared-prompt',
  mergeFinishedSteps: false,
  views: (n) => Array.from({ length: n }, () => ['common', 'self']),
};

/** `steps` greedy Hogwild! steps of two workers over SHARED_PROMPT; each step's [2, V] logits. */
export async function hogwildGreedyRows(model: Model, prompt: number[], steps: number): Promise<Float32Array[]> {
  const cache = new HogwildCache(model.runtime, { workers: 2, layout: SHARED_PROMPT });
  try {
    await cache.prefill(prompt, {});
    const rows: Float32Array[] = [];
    let feed = [[prompt[0]!], [prompt[1]!]];
    const V = model.config.nVocab;
    for (let i = 0; i < steps; i++) {
      const l = await cache.step(feed);
      rows.push(l.slice());
      feed = [[argmax(l.subarray(0, V))], [argmax(l.subarray(V, 2 * V))]];
    }
    return rows;
  } finally {
    cache.dispose();
  }
}
