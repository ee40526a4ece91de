/**
 * Hogwild! inference: several workers (instances of one model) generate in parallel through one shared KV
 * cache and see each other's tokens as soon as they are produced. See docs/HOGWILD.md.
 */
export { HogwildCache } from './cache.js';
export type { HogwildCacheOptions, HeaderPrefill } from './cache.js';
export { COMBINED, CONTIGUOUS, INTERLEAVED, LAYOUTS, layoutViews, resolveLayout } from './layout.js';
export type { BlockRef, LayoutName, LayoutSpec } from './layout.js';
