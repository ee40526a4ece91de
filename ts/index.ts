/**
 * hogwild-kv public API. Explicit re-exports only.
 */
export { listBackends, createBackend, BACKEND_ORDER } from './backend/select.js';
export type {
  AttentionBatch,
  Backend,
  BackendChoice,
  BackendName,
  BackendStatus,
  CreateBackendOptions,
  KvStore,
  RopeParams,
  RopeScaling,
  StoreParams,
  StoreStats,
  KvCodec,
  CodecStats,
  CodecChunk,
  AquaPredictorTables,
} from './backend/types.js';
export {
  AbortError,
  BackendUnavailableError,
  DeviceError,
  DisposedError,
  HogwildError,
  InternalError,
  InvalidArgumentError,
  ModelFormatError,
  OutOfMemoryError,
  OutOfRangeError,
  TokenizerError,
  UnsupportedError,
} from './errors.js';
export type { HogwildErrorCode } from './errors.js';
export { loadModel, Model, Generation } from './model/model.js';
export type {
  ChatMessage,
  GenerateChunk,
  GenerateOptions,
  GenerateResult,
  LoadModelOptions,
  LoadProgress,
  PerplexityOptions,
  PerplexityResult,
  StopReason,
} from './model/model.js';
export type { ModelConfig, Architecture } from './model/config.js';
export type { SamplingOptions } from './engine/sampling.js';
export type { Tokenizer } from './tokenizer/types.js';
export {
  HogwildRun,
  HogwildSolve,
  HogwildCache,
  COMBINED,
  CONTIGUOUS,
  INTERLEAVED,
  LAYOUTS,
  BOXED_ANSWER,
  DEFAULT_FORCE_ANSWER,
  DEFAULT_NAMES,
  DEFAULT_OPENERS,
  DEFAULT_SELF_CHECK,
  DEFAULT_STEP_HEADER,
  DEFAULT_SYSTEM_PROMPT,
  PLAIN_PROMPT_FORMAT,
  endsStep,
  lastBoxed,
} from './hogwild/index.js';
export type {
  AnswerFormat,
  BlockRef,
  HeaderPrefill,
  HogwildCacheOptions,
  HogwildEvent,
  HogwildOptions,
  HogwildResult,
  HogwildSnapshot,
  HogwildStep,
  HogwildStopReason,
  HogwildWorkerResult,
  LayoutName,
  LayoutSpec,
  PickTokenContext,
  SolveOptions,
} from './hogwild/index.js';
export { calibrateAquaKV, loadAquaPredictors, writeAquaPredictors, aquaModelIdentity, AQUA_PREDICTORS_FORMAT } from './aqua/calibrate.js';
export type { AquaPredictors, CalibrateOptions, CalibrateProgress, CalibrateResult, LayerStats } from './aqua/calibrate.js';
export { resolveKvCache, checkAquaPredictors } from './aqua/cache.js';
export type { KvCacheOption } from './aqua/cache.js';
export { aquaGridFor, higgsBitsPerValue } from './aqua/bits.js';
