/**
 * AQUA-KV building blocks: quantizers (HIGGS, uniform), Gaussian grids and ridge regression.
 */
export type {
  HiggsConfig,
  HiggsEncoded,
  HiggsGrid,
  QuantOps,
  QuantSize,
  RidgeAccumulator,
  UniformConfig,
  UniformEncoded,
} from './types.js';
export { defaultGroup, quantOf, higgsEncode, higgsDecode, uniformEncode, uniformDecode, ridgeFit } from './quantizer.js';
export { gaussianGrid, gridByName, listGrids } from './grids.js';
export type { GridInfo } from './grids.js';
export { aquaGridFor, higgsBitsPerValue } from './bits.js';
export { resolveKvCache, checkAquaPredictors } from './cache.js';
export type { KvCacheOption } from './cache.js';
