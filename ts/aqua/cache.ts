/**
 * The kvCache option (loadModel, generate / logits / perplexity per run, hogwild(), CLIs) resolved into the
 * store's element type and KvCodec. One place for every entry point:
 *
 *   { type: 'f32' | 'f16' }                              exact cache
 *   { type: 'uniform', bits: 2 | 3 | 4 | 8, ... }        KIVI-style baseline
 *   { type: 'higgs', bits: 2 | 3 | 4, grid?, ... }       HIGGS without predictors
 *   { type: 'aqua', bits?, predictors: FILE | AquaPredictors, layer0?: 'exact' | GRID, grid?, ... }
 *
 * 'aqua': predictors are loaded (a path) and checked against the model (ModelFormatError naming the mismatch
 * for a file made for another model). The main grid is the predictor file's unless `grid` or a `bits`
 * different from the file's is given (then aquaGridFor(bits, C): the stored grid whose codes + fp16 scales fit
 * `bits`); layer 0 follows the file (its calibration grid, or exact) unless `layer0` is given. The common
 * fields (sinks, buffer, chunkTokens, seed, dtype) apply to every compressed type.
 */
import { InvalidArgumentError, ModelFormatError } from '../errors.js';
import type { KvCodec } from '../backend/types.js';
import { aquaGridFor } from './bits.js';
import { aquaModelIdentity, loadAquaPredictors, type AquaPredictors, type ModelLike } from './calibrate.js';
import { gridByName } from './grids.js';
import type { HiggsGrid } from './types.js';

interface CommonCodecFields {
  /** exact element type of the sink / buffer pages (default f32) */
  dtype?: 'f32' | 'f16';
  /** exact tokens at the start of every block (default 4, rounded up to a page) */
  sinks?: number;
  /** most recent exact tokens (default 128) */
  buffer?: number;
  /** tokens per encoded chunk (default max(64, pageTokens)) */
  chunkTokens?: number;
  /** HIGGS sign seed (default 0) */
  seed?: number;
  /** bytes of decoded chunks kept between forwards (default 0; see KvCodec.cacheBytes) */
  cacheBytes?: number;
}

export type KvCacheOption =
  | { type: 'f32' | 'f16' }
  | ({ type: 'uniform' | 'higgs'; bits?: number; grid?: HiggsGrid; layer0Grid?: HiggsGrid | null } & CommonCodecFields)
  | ({
      type: 'aqua';
      /** target bits per value incl. scales (default: the predictor file's) */
      bits?: number;
      /** a predictor file (safetensors from `hogwild calibrate` / calibrateAquaKV) or the loaded object */
      predictors: string | AquaPredictors;
      /** main grid (name or grid), overriding bits */
      grid?: string | HiggsGrid;
      /** layer 0: 'exact' (fp16) or a grid name (default: as calibrated) */
      layer0?: string;
    } & CommonCodecFields);

const TYPES = ['f32', 'f16', 'uniform', 'higgs', 'aqua'];

/** Checks an in-memory AquaPredictors object against a model (same rules as a file). */
export function checkAquaPredictors(p: AquaPredictors, model: ModelLike, what = 'predictors'): void {
  const c = model.config;
  const C = c.nKvHead * c.headDim;
  if (p === null || typeof p !== 'object' || !Array.isArray(p.k) || !Array.isArray(p.v)) {
    throw new InvalidArgumentError(`${what} must be a file path or the object calibrateAquaKV / loadAquaPredictors returns`);
  }
  if (p.nLayer !== c.nLayer || p.channels !== C) {
    throw new ModelFormatError('FORMAT_UNSUPPORTED_MODEL', what, `predictors are for ${p.nLayer} layers x C = ${p.channels}; this model has ${c.nLayer} layers x C = ${C}`);
  }
  const md = p.metadata ?? {};
  if (md['model.hash'] !== undefined) {
    const id = aquaModelIdentity(model);
    if (md['model.hash'] !== id['model.hash']) {
      throw new ModelFormatError('FORMAT_UNSUPPORTED_MODEL', what, `predictors were calibrated for another model (model.hash ${md['model.hash']}, this model has ${id['model.hash']})`);
    }
  }
}

/** Store element type and codec of a kvCache option for `model`. */
export function resolveKvCache(k: KvCacheOption | undefined, model: ModelLike): { dtype?: 'f32' | 'f16'; codec?: KvCodec } {
  if (k === undefined) return {};
  if (k === null || typeof k !== 'object' || !TYPES.includes((k as { type: string }).type)) {
    throw new InvalidArgumentError(`kvCache.type must be 'f32', 'f16', 'uniform', 'higgs' or 'aqua', got ${JSON.stringify((k as { type?: unknown } | null)?.type)}`);
  }
  if (k.type === 'f32' || k.type === 'f16') return { dtype: k.type };
  if (k.type !== 'aqua') {
    const { dtype, ...codec } = k as { type: 'uniform' | 'higgs'; dtype?: 'f32' | 'f16' } & Omit<KvCodec, 'type'>;
    return { dtype, codec: codec as KvCodec };
  }
  const { dtype, predictors, bits, grid, layer0, type: _t, ...rest } = k;
  if (predictors === undefined || predictors === null) {
    throw new InvalidArgumentError("kvCache 'aqua' needs predictors (a file from `hogwild calibrate` or calibrateAquaKV's result)");
  }
  let p: AquaPredictors;
  if (typeof predictors === 'string') {
    p = loadAquaPredictors(predictors, model);
  } else {
    checkAquaPredictors(predictors, model);
    p = predictors;
  }
  const C = model.config.nKvHead * model.config.headDim;
  let g: HiggsGrid;
  if (grid !== undefined) g = typeof grid === 'string' ? gridByName(grid) : grid;
  else if (bits === undefined || String(bits) === p.metadata?.['bits']) g = p.grid;
  else g = aquaGridFor(bits, C);
  const l0 = layer0 ?? (p.grid0 ? null : 'exact');
  const codec: KvCodec = {
    type: 'aqua',
    ...(bits !== undefined ? { bits } : {}),
    grid: g,
    layer0Grid: l0 === null ? p.grid0 : l0 === 'exact' ? null : gridByName(l0),
    layer0Exact: l0 === 'exact',
    predictors: p,
    rope: model.config.rope,
    ...rest,
  };
  return { dtype, codec };
}
