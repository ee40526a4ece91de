/**
 * The published entry points work as built by tsup: dist/index.js through ESM import() and dist/index.cjs
 * through require() (createRequire). Each exposes listBackends / createBackend / loadModel and runs a real
 * computation on every CPU backend: the llama fixture's logits against transformers' reference, and a
 * typed error that is an instance of that build's own ModelFormatError. package.json's "exports" map is
 * checked to point at these files.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readSafetensorsHeader, readSafetensorsTensorData } from '../ts/formats/safetensors.ts';
import { skipLine } from './helpers/backends.ts';

const ESM = path.resolve('dist/index.js');
const CJS = path.resolve('dist/index.cjs');
const LLAMA = path.resolve('test/fixtures/hf/llama');
const S = suite('package');

interface Api {
  listBackends(): Promise<{ name: string; available: boolean }[]>;
  createBackend(o: { backend: string }): Promise<unknown>;
  loadModel(p: string, o?: { backend?: unknown }): Promise<{ logits(ids: number[]): Promise<Float32Array>; dispose(): void }>;
  ModelFormatError: new (...a: never[]) => Error;
  HogwildError: new (...a: never[]) => Error;
}

async function exercise(label: string, api: Api): Promise<string[]> {
  for (const k of ['listBackends', 'createBackend', 'loadModel'] as const) assert.type(api[k], 'function', `${label}: ${k}`);
  const h = readSafetensorsHeader(path.join(LLAMA, 'reference.safetensors'));
  const ids = Array.from(new Int32Array(readSafetensorsTensorData(h, 'input_ids').slice().buffer));
  const want = new Float32Array(readSafetensorsTensorData(h, 'logits').slice().buffer);
  const report: string[] = [];
  const statuses = await api.listBackends();
  assert.equal(statuses.map((s) => s.name).sort(), ['cuda', 'native', 'wasm'], `${label}: backends`);
  for (const st of statuses.filter((s) => s.name !== 'cuda')) {
    if (!st.available) {
      skipLine(`package/${label}/${st.name}`, 'backend unavailable');
      continue;
    }
    const backend = await api.createBackend({ backend: st.name });
    const m = await api.loadModel(LLAMA, { backend });
    try {
      const got = await m.logits(ids);
      let d = 0;
      let mx = 0;
      for (let i = 0; i < want.length; i++) {
        d = Math.max(d, Math.abs(got[i]! - want[i]!));
        mx = Math.max(mx, Math.abs(want[i]!));
      }
      assert.is(got.length, want.length);
      assert.ok(d / mx <= 1e-4, `${label}/${st.name}: logits rel err ${d / mx}`);
      report.push(`${label}/${st.name}=${(d / mx).toExponential(1)}`);
    } finally {
      m.dispose();
    }
    let err: unknown;
    try {
      await api.loadModel(path.join(LLAMA, 'no-such-file.gguf'), { backend });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof api.ModelFormatError && err instanceof api.HogwildError, `${label}: typed error from the build: ${String(err)}`);
  }
  return report;
}

S('dist/index.js (ESM import) and dist/index.cjs (require) both load models and compute', async () => {
  if (!existsSync(ESM) || !existsSync(CJS)) {
    skipLine('package', 'dist/ not built (run `npm run build`; `npm test` builds it)');
    return;
  }
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { exports: Record<string, { import: { default: string }; require: { default: string } }> };
  assert.is(path.resolve(pkg.exports['.']!.import.default), ESM);
  assert.is(path.resolve(pkg.exports['.']!.require.default), CJS);

  const esm = (await import(pathToFileURL(ESM).href)) as Api & { [Symbol.toStringTag]?: string };
  const req = createRequire(path.resolve('package.json'));
  const cjs = req(CJS) as Api;
  assert.is(Object.prototype.toString.call(esm), '[object Module]', 'ESM namespace');
  assert.ok(esm.loadModel !== cjs.loadModel, 'two separate builds were loaded');
  const report = [...(await exercise('esm', esm)), ...(await exercise('cjs', cjs))];
  // the package name resolves to the same files through "exports"
  const self = req.resolve('hogwild-kv');
  assert.is(self, CJS);
  console.log(`\nMAXERR package logits: ${report.join(' ')}`);
});

S.run();
