/**
 * Hogwild! inference: several workers (instances of one model) generate in parallel through one shared KV
 * cache and see each other's tokens as soon as they are produced. See docs/HOGWILD.md.
 */
export { HogwildCache } from './cache.js';
export type { HogwildCacheOptions, HeaderPrefill } from './cache.js';
export { COMBINED, CONTIGUOUS, INTERLEAVED, LAYOUTS, layoutViews, resolveLayout } from './layout.js';
export type { BlockRef, LayoutName, LayoutSpec } from './layout.js';
export { HogwildRun, HogwildSolve } from './run.js';
export type {
  HogwildEvent,
  HogwildOptions,
  HogwildResult,
  HogwildSnapshot,
  HogwildStep,
  HogwildStopReason,
  HogwildWorkerResult,
  PickTokenContext,
  SolveOptions,
} from './run.js';
export {
  BOXED_ANSWER,
  DEFAULT_FORCE_ANSWER,
  DEFAULT_NAMES,
  DEFAULT_OPENERS,
  DEFAULT_SELF_CHECK,
  DEFAULT_STEP_HEADER,
  DEFAULT_SYSTEM_PROMPT,
  PLAIN_PROMPT_FORMAT,
  delimitersBalanced,
  encodeFragment,
  endsStep,
  lastBoxed,
} from './protocol.js';
export type { AnswerFormat } from './protocol.js';
