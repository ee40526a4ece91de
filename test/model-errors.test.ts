/**
 * Bad model files and bad options give typed errors, never a crash, and leave nothing allocated:
 *  - ModelFormatError with the right FORMAT_* code and the file named, for an unknown architecture, a
 *    missing tensor, a wrong shape, a wrong dtype (safetensors and GGUF), a truncated safetensors / GGUF
 *    (cut at a random point each run, in the header and in the data), a malformed header, a bad magic,
 *    a nonexistent path;
 *  - InvalidArgumentError for bad loadModel / generate options and a bad backend name;
 *  - afterwards the backends still load and run the model exactly (logits vs transformers), and no model
 *    handle or KV store stayed alive in the backends.
 * Every broken file is a temporary copy; the fixtures are read-only.
 */
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { InvalidArgumentError, ModelFormatError, loadModel, type Backend } from '../ts/index.ts';
import { readSafetensorsHeader, readSafetensorsTensorData, writeSafetensors, type SafetensorsTensorInput } from '../ts/formats/safetensors.ts';
import { backendsUnderTest } from './helpers/backends.ts';
import { seededTest } from './helpers/harness.ts';
import { readFixtureWeights, writeFixtureGguf } from './helpers/quant.ts';
import type { Rng } from './helpers/rng.ts';

const FIX = path.resolve('test/fixtures/hf');
const LLAMA = path.join(FIX, 'llama');
const S = suite('model-errors');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'hwkv-errors-'));
S.after(() => rmSync(tmp, { recursive: true, force: true }));
const readJson = (f: string) => JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>;

let n = 0;
/** A writable copy of a fixture folder; `edit` may change it. */
function copyFixture(name = 'llama'): string {
  const dir = path.join(tmp, `${name}-${n++}`);
  cpSync(path.join(FIX, name), dir, { recursive: true });
  for (const f of ['config.json', 'model.safetensors']) {
    const p = path.join(dir, f);
    writeFileSync(p, readFileSync(p)); // drop the read-only mode copied from the fixture
  }
  return dir;
}

function tensorsOf(file: string): Map<string, SafetensorsTensorInput> {
  const h = readSafetensorsHeader(file);
  const out = new Map<string, SafetensorsTensorInput>();
  for (const [name, info] of h.tensorsByName) out.set(name, { dtype: info.dtype, shape: info.shape, data: readSafetensorsTensorData(h, name) });
  return out;
}

/** Counts of live model handles and KV stores in a backend (internal fields; -1 when not inspectable). */
function liveCounts(b: Backend): { models: number; stores: number } {
  const raw = (b as unknown as { raw?: { models?: Map<number, number> } }).raw;
  const stores = (b as unknown as { stores?: Set<unknown> }).stores;
  return { models: raw?.models instanceof Map ? raw.models.size : -1, stores: stores instanceof Set ? stores.size : -1 };
}

async function expectFormatError(what: string, p: string, code: string, backend: Backend, mention?: RegExp): Promise<ModelFormatError> {
  let err: unknown;
  try {
    const m = await loadModel(p, { backend });
    m.dispose();
  } catch (e) {
    err = e;
  }
  if (err === undefined) throw new Error(`${what}: loaded without error`);
  if (!(err instanceof ModelFormatError)) throw new Error(`${what}: expected ModelFormatError ${code}, got ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
  assert.is(err.code, code, `${what}: code (${err.message})`);
  const base = path.basename(p);
  assert.ok(err.message.includes(base) || err.message.includes(path.dirname(p)), `${what}: message names the file: ${err.message}`);
  if (mention) assert.match(err.message, mention, `${what}: message`);
  return err;
}

function cutAt(src: string, rng: Rng, lo: number, hi: number, name: string): string {
  const dst = path.join(tmp, `${n++}-${name}`);
  copyFileSync(src, dst);
  const at = rng.int(lo, hi);
  truncateSync(dst, at);
  return dst;
}

seededTest(S, 'model-errors', 'bad model files are ModelFormatError with the right code; nothing stays allocated; the backends still work', async (rng) => {
  const backends = (await backendsUnderTest()).filter((b) => b.name !== 'cuda');
  // ---- prepare broken inputs (once) ----
  const cases: [string, string, string, RegExp?][] = [];

  const arch = copyFixture();
  writeFileSync(path.join(arch, 'config.json'), JSON.stringify({ ...readJson(path.join(LLAMA, 'config.json')), model_type: 'gpt_neox' }));
  cases.push(['unknown architecture', arch, 'FORMAT_UNSUPPORTED_MODEL', /gpt_neox/]);

  const badJson = copyFixture();
  writeFileSync(path.join(badJson, 'config.json'), '{"model_type": "llama", ');
  cases.push(['malformed config.json', badJson, 'FORMAT_INVALID']);

  const weights = tensorsOf(path.join(LLAMA, 'model.safetensors'));
  const layer = rng.int(0, 2);
  const victim = rng.pick([`model.layers.${layer}.self_attn.k_proj.weight`, `model.layers.${layer}.mlp.up_proj.weight`, 'model.norm.weight', `model.layers.${layer}.input_layernorm.weight`]);
  const missing = copyFixture();
  writeSafetensors(path.join(missing, 'model.safetensors'), [...weights].filter(([k]) => k !== victim));
  cases.push([`missing tensor ${victim}`, missing, 'FORMAT_MISSING_TENSOR', new RegExp(victim.replace(/\./g, '\\.'))]);

  const shapeVictim = `model.layers.${layer}.self_attn.q_proj.weight`;
  const wrongShape = copyFixture();
  writeSafetensors(
    path.join(wrongShape, 'model.safetensors'),
    [...weights].map(([k, t]) => [k, k === shapeVictim ? { ...t, shape: [64, 256] } /* same bytes, wrong shape */ : t] as [string, SafetensorsTensorInput]),
  );
  cases.push(['wrong shape', wrongShape, 'FORMAT_MISSING_TENSOR', /shape/]);

  const wrongDtype = copyFixture();
  writeSafetensors(
    path.join(wrongDtype, 'model.safetensors'),
    [...weights].map(([k, t]) => [k, k === shapeVictim ? { ...t, dtype: 'I32' } : t] as [string, SafetensorsTensorInput]),
  );
  cases.push(['wrong dtype (I32 weight)', wrongDtype, 'FORMAT_MISSING_TENSOR', /I32/]);

  const stSize = statSync(path.join(LLAMA, 'model.safetensors')).size;
  const hdrLen = Number(readFileSync(path.join(LLAMA, 'model.safetensors')).readBigUInt64LE(0));
  const truncData = copyFixture();
  truncateSync(path.join(truncData, 'model.safetensors'), rng.int(8 + hdrLen + 1, stSize - 1));
  cases.push(['truncated safetensors (data)', truncData, 'FORMAT_TRUNCATED']);
  const truncHdr = copyFixture();
  truncateSync(path.join(truncHdr, 'model.safetensors'), rng.int(0, 8 + hdrLen - 1));
  cases.push(['truncated safetensors (header)', truncHdr, 'FORMAT_TRUNCATED']);
  const badHdr = copyFixture();
  const stBytes = readFileSync(path.join(LLAMA, 'model.safetensors'));
  const colons = [...stBytes.subarray(8, 8 + hdrLen).toString('latin1').matchAll(/":/g)].map((m) => 8 + m.index! + 1);
  stBytes[rng.pick(colons)] = 0x20; // a key without its ':' — no longer valid JSON
  writeFileSync(path.join(badHdr, 'model.safetensors'), stBytes);
  cases.push(['malformed safetensors header', badHdr, 'FORMAT_INVALID']);

  // GGUF: a valid file from the library writer, then broken copies
  const fx = readFixtureWeights(LLAMA, readJson);
  const good = path.join(tmp, 'llama-f32.gguf');
  writeFixtureGguf(fx, good, 'F32');
  const gSize = statSync(good).size;
  const dataStart = gSize - [...fx.tensors.values()].reduce((s, t) => s + t.data.byteLength, 0);
  cases.push(['truncated GGUF (data)', cutAt(good, rng, dataStart + 1, gSize - 1, 'cut-data.gguf'), 'FORMAT_TRUNCATED']);
  cases.push(['truncated GGUF (header)', cutAt(good, rng, 0, dataStart - 64, 'cut-hdr.gguf'), 'FORMAT_TRUNCATED']);
  const magic = path.join(tmp, 'magic.gguf');
  const gb = readFileSync(good);
  gb.write('GGUX', 0, 'latin1');
  writeFileSync(magic, gb);
  cases.push(['bad GGUF magic', magic, 'FORMAT_BAD_MAGIC']);
  const gMissing = path.join(tmp, 'missing.gguf');
  const fxMissing = { ...fx, tensors: new Map([...fx.tensors].filter(([k]) => k !== victim)) };
  writeFixtureGguf(fxMissing, gMissing, 'F32');
  cases.push(['GGUF missing tensor', gMissing, 'FORMAT_MISSING_TENSOR']);
  const gVecQ8 = path.join(tmp, 'norm-q8.gguf');
  writeFixtureGguf(fx, gVecQ8, 'F32', { typeOf: (k) => (k === 'model.norm.weight' ? 'Q8_0' : undefined) });
  cases.push(['GGUF vector stored as Q8_0', gVecQ8, 'FORMAT_MISSING_TENSOR', /output_norm/]);
  cases.push(['nonexistent path', path.join(tmp, 'no-such-model.gguf'), 'FORMAT_IO']);
  cases.push(['nonexistent folder', path.join(tmp, 'no-such-dir', 'x'), 'FORMAT_IO']);
  const notModel = path.join(tmp, 'empty-folder');
  cpSync(path.join(FIX, 'README.md'), path.join(notModel, 'README.md'));
  cases.push(['folder without config.json', notModel, 'FORMAT_INVALID']);

  for (const { name: bname, backend } of backends) {
    const before = liveCounts(backend);
    for (const [what, p, code, mention] of cases) await expectFormatError(`${bname}: ${what}`, p, code, backend, mention);
    const after = liveCounts(backend);
    assert.equal(after, before, `${bname}: live models/stores after the failures`);
    // the backend still loads and runs the real model exactly
    const ref = path.join(LLAMA, 'reference.safetensors');
    const rh = readSafetensorsHeader(ref);
    const ids = Array.from(new Int32Array(readSafetensorsTensorData(rh, 'input_ids').slice().buffer));
    const rb = readSafetensorsTensorData(rh, 'logits').slice();
    const want = new Float32Array(rb.buffer);
    const m = await loadModel(LLAMA, { backend });
    try {
      const got = await m.logits(ids);
      let d = 0;
      let mx = 0;
      for (let i = 0; i < got.length; i++) {
        d = Math.max(d, Math.abs(got[i]! - want[i]!));
        mx = Math.max(mx, Math.abs(want[i]!));
      }
      assert.ok(d / mx <= 1e-4, `${bname}: logits after the failures: ${d / mx}`);
    } finally {
      m.dispose();
    }
    assert.equal(liveCounts(backend), before, `${bname}: live models/stores after dispose`);
  }
});

S('bad options are InvalidArgumentError (before anything is allocated)', async () => {
  const backends = (await backendsUnderTest()).filter((b) => b.name !== 'cuda');
  const expectInvalid = async (what: string, fn: () => unknown, mention: RegExp) => {
    let err: unknown;
    try {
      await fn();
    } catch (e) {
      err = e;
    }
    if (!(err instanceof InvalidArgumentError)) throw new Error(`${what}: expected InvalidArgumentError, got ${err === undefined ? 'nothing' : `${(err as Error).constructor.name}: ${(err as Error).message}`}`);
    assert.match(err.message, mention, `${what}: message`);
  };
  await expectInvalid('backend name', () => loadModel(LLAMA, { backend: 'gpu' as never }), /backend.*gpu|gpu.*backend/i);
  for (const { name: bname, backend } of backends) {
    const before = liveCounts(backend);
    await expectInvalid(`${bname}: threads -1`, () => loadModel(LLAMA, { backend, threads: -1 }), /threads/);
    await expectInvalid(`${bname}: pageTokens 0`, () => loadModel(LLAMA, { backend, pageTokens: 0 }), /pageTokens/);
    await expectInvalid(`${bname}: kvCache q4`, () => loadModel(LLAMA, { backend, kvCache: { type: 'q4' as never } }), /kvCache/);
    assert.equal(liveCounts(backend), before, `${bname}: nothing allocated by refused loads`);
    const m = await loadModel(LLAMA, { backend });
    try {
      const ids = [1, 5, 9];
      await expectInvalid('maxTokens -1', () => m.generate(ids, { maxTokens: -1 }), /maxTokens/);
      await expectInvalid('maxTokens 1.5', () => m.generate(ids, { maxTokens: 1.5 }), /maxTokens/);
      await expectInvalid('topP 1.5', () => m.generate(ids, { topP: 1.5 }), /topP/);
      await expectInvalid('topP NaN', () => m.generate(ids, { topP: NaN }), /topP/);
      await expectInvalid('temperature -1', () => m.generate(ids, { temperature: -1 }), /temperature/);
      await expectInvalid('topK -2', () => m.generate(ids, { topK: -2 }), /topK/);
      await expectInvalid('minP 2', () => m.generate(ids, { minP: 2 }), /minP/);
      await expectInvalid('seed 0.5', () => m.generate(ids, { seed: 0.5 }), /seed/);
      await expectInvalid('empty stop string', () => m.generate(ids, { stop: [''] }), /stop/);
      await expectInvalid('prefillChunk 0', () => m.generate(ids, { prefillChunk: 0 }), /prefillChunk/);
      await expectInvalid('token id out of range', () => m.generate([1, 512]), /512/);
      await expectInvalid('empty prompt', () => m.generate([]), /empty/);
      await expectInvalid('chat without a template', () => m.chat([{ role: 'user', content: 'hi' }]), /chat template/);
      // the model still works
      const r = await m.generate(ids, { maxTokens: 4, stopOnEog: false }).result;
      assert.is(r.tokens.length, 4);
    } finally {
      m.dispose();
    }
    assert.equal(liveCounts(backend), before, `${bname}: live models/stores`);
  }
});

S.run();
