// rollup.config.mjs — the WebAssembly-only ESM bundle `hogwild-kv/wasm`:
//   dist/wasm/index.js    ts/wasm-entry.ts + CoreBackend + the emscripten glue (embedded), no Node imports
//   dist/wasm/hwkv.wasm   copied from prebuilds/wasm (build it with `npm run build:wasm`)
//   dist/wasm/index.d.ts  bundled declarations (rollup-plugin-dts)
// TypeScript is compiled with esbuild's transform API (type checking is `npm run typecheck`).
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { transform } from 'esbuild';
import { dts } from 'rollup-plugin-dts';

const root = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.join(root, 'dist', 'wasm');
const glue = path.join(root, 'prebuilds', 'wasm', 'hwkv.cjs');
const wasm = path.join(root, 'prebuilds', 'wasm', 'hwkv.wasm');

/** `./x.js` imported from a .ts file means `./x.ts` (NodeNext style specifiers). */
function tsResolve() {
  return {
    name: 'hwkv-ts-resolve',
    resolveId(source, importer) {
      if (!importer || !source.startsWith('.') || !source.endsWith('.js')) return null;
      const candidate = path.resolve(path.dirname(importer), source.slice(0, -3) + '.ts');
      return existsSync(candidate) ? candidate : null;
    },
  };
}

/** Strip types from .ts modules. */
function tsTransform() {
  return {
    name: 'hwkv-ts-transform',
    async transform(code, id) {
      if (!id.endsWith('.ts')) return null;
      const r = await transform(code, { loader: 'ts', format: 'esm', target: 'es2022', sourcefile: id, sourcemap: true });
      return { code: r.code, map: r.map };
    },
  };
}

/**
 * The emscripten CommonJS glue as an ES module whose default export is createHwkvModule. It runs inside a
 * function that shadows the CommonJS/Node globals (module, exports, require, process, __filename,
 * __dirname, define), so it never touches the file system: the bytes are always passed in (wasm.ts).
 */
function emscriptenGlue() {
  return {
    name: 'hwkv-emscripten-glue',
    resolveId(source, importer) {
      if (importer && source.endsWith('/hwkv.cjs') && path.resolve(path.dirname(importer), source) === glue) return glue;
      return null;
    },
    load(id) {
      if (path.resolve(id) !== glue) return null;
      if (!existsSync(glue)) this.error(`${glue} is missing: run \`npm run build:wasm\``);
      const code = readFileSync(glue, 'utf8');
      return {
        code:
          'const glueModule = { exports: {} };\n' +
          '(function (module, exports, require, process, __filename, __dirname, define) {\n' +
          code +
          '\n})(glueModule, glueModule.exports);\n' +
          'export default glueModule.exports;\n',
        map: { mappings: '' },
      };
    },
  };
}

/** Copy hwkv.wasm next to the bundle. */
function copyWasm() {
  return {
    name: 'hwkv-copy-wasm',
    writeBundle() {
      if (!existsSync(wasm)) this.error(`${wasm} is missing: run \`npm run build:wasm\``);
      mkdirSync(outDir, { recursive: true });
      copyFileSync(wasm, path.join(outDir, 'hwkv.wasm'));
    },
  };
}

export default [
  {
    input: 'ts/wasm-entry.ts',
    output: { file: 'dist/wasm/index.js', format: 'es', sourcemap: true },
    // Only loadWasmRaw (unused here, tree-shaken) imports Node built-ins.
    external: [/^node:/],
    plugins: [tsResolve(), emscriptenGlue(), tsTransform(), copyWasm()],
    onwarn(warning, warn) {
      // The glue is plain script code; `this` at its top level is not used for anything.
      if (warning.code === 'THIS_IS_UNDEFINED') return;
      warn(warning);
    },
  },
  {
    input: 'ts/wasm-entry.ts',
    output: { file: 'dist/wasm/index.d.ts', format: 'es' },
    external: [/^node:/],
    plugins: [tsResolve(), dts({ tsconfig: 'tsconfig.json' })],
  },
];
