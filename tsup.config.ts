import { defineConfig } from 'tsup';

// The Node entry points: library (ESM + CJS + .d.ts) and the `hogwild` CLI (ESM, with shebang).
// The WASM-only browser/ESM bundle is built separately by rollup (rollup.config.mjs).
export default defineConfig([
  {
    entry: { index: 'ts/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    target: 'node20',
    platform: 'node',
    shims: true,
    sourcemap: true,
    clean: false,
    outDir: 'dist',
  },
  {
    entry: { cli: 'ts/cli.ts' },
    format: ['esm'],
    target: 'node20',
    platform: 'node',
    shims: true,
    sourcemap: false,
    clean: false,
    outDir: 'dist',
    banner: { js: '#!/usr/bin/env node' },
  },
]);
