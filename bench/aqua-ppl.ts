/**
 * bench/aqua-ppl.ts — quality of the compressed KV caches: perplexity and KL divergence to the exact cache for
 * f16, uniform 2/3/4-bit, HIGGS 2/3-bit without predictors (plus HIGGS on AQUA's own grid), and AQUA-KV with
 * predictors calibrated on a disjoint part of the data.
 *
 *   node --import tsx bench/aqua-ppl.ts [--backend=native|wasm] [--models=stories,babyllama,fixture]
 *                                       [--windows=N] [--calib-tokens=N] [--json]
 *
 * Data (fixed, documented in bench/RESULTS.md):
 *   stories260K  GGUF tokenizer. Evaluation: ../shared/corpora/tinystories_val.txt characters [0, 150000),
 *                tokenized once, cut into windows of 512 tokens (BOS + 511), the first 24 windows.
 *                Calibration: characters [200000, end) (disjoint), at most 100k tokens, 512-token chunks.
 *   babyllama    llama2.c checkpoint (model5000.bin + tok105.bin, read by loadModel), character tokenizer
 *                (tok105.bin pieces, a leading space as run.c adds); context 256: windows of 256 tokens (BOS + 255),
 *                same character ranges as stories260K (first 40 windows), calibration at most 100k tokens.
 *   fixture      test/fixtures/hf/llama (random weights: PPL is meaningless, KL is the number): seeded random token
 *                ids, 16 windows of 512 for evaluation and 60k other random ids for calibration.
 * Cache settings for every compressed type: pageTokens 16, sinks 4 (-> the first 16-token page exact), buffer 64,
 * chunks of 32 tokens; each window is fed in forward calls of 32 tokens, so later tokens attend to the chunks
 * encoded after earlier calls (most of a window ends up compressed: see the "compressed" column).
 * Columns: bits/value and bytes/token of the compressed tokens only (codes + fp16 scales/zeros; sinks and
 * buffer excluded), ratio to f16 (2 bytes x nLayer x (Ck + Cv) per token), PPL over every predicted token,
 * relative PPL change vs the exact f32 cache, mean KL(exact || cache) over every predicted position (nats).
 */
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createBackend, loadModel, type Model } from '../ts/index.ts';
import type { CoreKvStore } from '../ts/backend/backend.ts';
import { calibrateAquaKV, type AquaPredictors } from '../ts/aqua/calibrate.ts';
import { aquaGridFor } from '../ts/aqua/bits.ts';
import { gaussianGrid, gridByName } from '../ts/aqua/grids.ts';
import type { KvCacheOption } from '../ts/aqua/cache.ts';

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const JSON_ONLY = argv.includes('--json');
const SHARED = process.env.HOGWILD_SHARED ?? path.resolve('..', 'shared');
const TEXT = readFileSync(path.join(SHARED, 'corpora', 'tinystories_val.txt'), 'utf8');
const MODELS = (opt('models') ?? 'stories,babyllama,fixture').split(',');
const CALIB_TOKENS = Number(opt('calib-tokens') ?? 100000);
const STEP = 32;
const CACHE = { sinks: 4, buffer: 64, chunkTokens: 32 };
const log = (s: string) => {
  if (!JSON_ONLY) console.log(s);
};
const progress = (s: string) => process.stderr.write(`${s}\n`);

function rngIds(seed: number, n: number, vocab: number): number[] {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(3 + (s % (vocab - 3)));
  }
  return out;
}

interface Spec {
  name: string;
  model: Model;
  windows: number[][];
  calib: { tokenIds: number[]; chunkTokens: number };
}

async function specs(backend: Awaited<ReturnType<typeof createBackend>>, tmp: string): Promise<Spec[]> {
  const out: Spec[] = [];
  const win = (ids: number[], bos: number, ctx: number, n: number) => {
    const w: number[][] = [];
    for (let i = 0; i + ctx - 1 <= ids.length && w.length < n; i += ctx - 1) w.push([bos, ...ids.slice(i, i + ctx - 1)]);
    return w;
  };
  if (MODELS.includes('stories')) {
    const m = await loadModel(path.join(SHARED, 'models', 'stories260K', 'stories260K.gguf'), { backend, pageTokens: 16 });
    const bos = m.tokenizer!.bosId!;
    const ev = m.tokenize(TEXT.slice(0, 150000), { addSpecial: false });
    const cal = m.tokenize(TEXT.slice(200000), { addSpecial: false }).slice(0, CALIB_TOKENS);
    out.push({ name: 'stories260K', model: m, windows: win(ev, bos, 512, Number(opt('windows') ?? 24)), calib: { tokenIds: cal, chunkTokens: 512 } });
  }
  if (MODELS.includes('babyllama')) {
    const dir = path.join(SHARED, 'models', 'babyllama');
    const m = await loadModel(path.join(dir, 'model5000.bin'), { backend, pageTokens: 16 });
    const info = { seqLen: m.config.contextLength };
    // one id per character (the vocabulary has no multi-character pieces); characters outside it are dropped
    const idOf = new Map<string, number>();
    for (let i = 3; i < m.config.nVocab; i++) {
      const p = m.tokenizer!.tokenToPiece(i);
      if (p.length === 1 && !idOf.has(p)) idOf.set(p, i);
    }
    const enc = (t: string) => {
      const ids: number[] = [];
      for (const ch of ` ${t}`) {
        const id = idOf.get(ch);
        if (id !== undefined) ids.push(id);
      }
      return ids;
    };
    const ev = enc(TEXT.slice(0, 150000));
    const cal = enc(TEXT.slice(200000)).slice(0, CALIB_TOKENS);
    out.push({ name: 'babyllama', model: m, windows: win(ev, 1, info.seqLen, Number(opt('windows') ?? 40)), calib: { tokenIds: cal, chunkTokens: info.seqLen } });
  }
  if (MODELS.includes('fixture')) {
    const m = await loadModel(path.join('test', 'fixtures', 'hf', 'llama'), { backend, pageTokens: 16 });
    const V = m.config.nVocab;
    const ev = rngIds(12345, 512 * 16, V);
    const cal = rngIds(777, Math.min(60000, CALIB_TOKENS), V);
    out.push({ name: 'fixture llama (random weights)', model: m, windows: win(ev, 1, 512, Number(opt('windows') ?? 16)), calib: { tokenIds: cal, chunkTokens: 512 } });
  }
  return out;
}

interface Row {
  model: string;
  cache: string;
  bitsPerValue: number | null;
  bytesPerToken: number | null;
  ratioToF16: number | null;
  compressedFraction: number;
  ppl: number;
  relPpl: number;
  kl: number;
}

async function windowLogits(m: Model, store: CoreKvStore, ids: number[]): Promise<{ logits: Float32Array; stats: ReturnType<CoreKvStore['codecStats']> }> {
  const rt = m.runtime;
  const V = m.config.nVocab;
  const block = await rt.exclusive(() => store.createBlock());
  try {
    const out = new Float32Array(ids.length * V);
    for (let i = 0; i < ids.length; i += STEP) out.set(await rt.forward([{ view: [block], tokens: ids.slice(i, i + STEP) }], 'all', undefined, store), i * V);
    return { logits: out, stats: store.codecStats() };
  } finally {
    await rt.exclusive(() => store.freeBlock(block));
  }
}

function logSoftmax(row: Float32Array): Float64Array {
  let m = -Infinity;
  for (const x of row) m = Math.max(m, x);
  let s = 0;
  for (const x of row) s += Math.exp(x - m);
  const l = m + Math.log(s);
  return Float64Array.from(row, (x) => x - l);
}

async function evaluate(spec: Spec, label: string, kv: KvCacheOption | null, exact: Float32Array[] | null, sink: Float32Array[]): Promise<Row> {
  const m = spec.model;
  const V = m.config.nVocab;
  const store = kv ? m.runStore(kv) : m.runtime.store;
  let nll = 0;
  let count = 0;
  let kl = 0;
  let bytes = 0;
  let values = 0;
  let tokC = 0;
  let tokAll = 0;
  try {
    for (let w = 0; w < spec.windows.length; w++) {
      const ids = spec.windows[w]!;
      const { logits, stats } = await windowLogits(m, store, ids);
      if (!exact) sink.push(logits);
      bytes += stats.bytesCompressed;
      values += stats.valuesCompressed;
      tokC += stats.tokensCompressed;
      tokAll += ids.length;
      for (let i = 0; i + 1 < ids.length; i++) {
        const lp = logSoftmax(logits.subarray(i * V, (i + 1) * V));
        nll -= lp[ids[i + 1]!]!;
        count++;
        if (exact) {
          const lq = logSoftmax(exact[w]!.subarray(i * V, (i + 1) * V));
          for (let j = 0; j < V; j++) kl += Math.exp(lq[j]!) * (lq[j]! - lp[j]!);
        }
      }
    }
  } finally {
    if (kv) await m.runtime.exclusive(() => store.dispose());
  }
  const c = m.config;
  const f16PerToken = 2 * c.nLayer * 2 * c.nKvHead * c.headDim;
  const bpt = tokC > 0 ? bytes / tokC : null;
  return {
    model: spec.name,
    cache: label,
    bitsPerValue: values > 0 ? (8 * bytes) / values : null,
    bytesPerToken: bpt,
    ratioToF16: bpt !== null ? bpt / f16PerToken : null,
    compressedFraction: tokC / tokAll,
    ppl: Math.exp(nll / count),
    relPpl: 0,
    kl: exact ? kl / count : 0,
  };
}

const backend = await createBackend({ backend: (opt('backend') ?? 'native') as 'native' });
const tmp = mkdtempSync(path.join(tmpdir(), 'aqua-ppl-'));
const rows: Row[] = [];
const calibInfo: Record<string, unknown>[] = [];
try {
  for (const spec of await specs(backend, tmp)) {
    const m = spec.model;
    const C = m.config.nKvHead * m.config.headDim;
    const nTok = spec.windows.reduce((a, w) => a + w.length, 0);
    progress(`${spec.name}: ${spec.windows.length} windows, ${nTok} tokens; C = ${C}; calibrating ...`);
    const cal = async (bits: number, layer0: string): Promise<AquaPredictors> => {
      const t0 = performance.now();
      const r = await calibrateAquaKV(m, { tokenIds: spec.calib.tokenIds, chunkTokens: spec.calib.chunkTokens, bits, layer0 });
      const s = (performance.now() - t0) / 1000;
      const mean = (f: (l: (typeof r.layers)[number]) => number) => r.layers.slice(1).reduce((a, l) => a + f(l), 0) / Math.max(1, r.layers.length - 1);
      calibInfo.push({
        model: spec.name,
        bits,
        grid: r.grid.name,
        layer0,
        trainTokens: r.trainTokens,
        valTokens: r.valTokens,
        seconds: Number(s.toFixed(1)),
        kRecVal: mean((l) => l.kRec.val),
        kPlainVal: mean((l) => l.kPlain.val),
        vRecVal: mean((l) => l.vRec.val),
        vPlainVal: mean((l) => l.vPlain.val),
      });
      progress(`  calibrated ${bits} bits (${r.grid.name}, layer 0 ${layer0}) in ${s.toFixed(1)} s on ${r.trainTokens}+${r.valTokens} tokens`);
      return r;
    };
    const p2 = await cal(2, 'gauss-d2-n256');
    const p2c = await cal(2, 'gauss-d4-n256');
    const p3 = await cal(3, 'gauss-d2-n256');
    const g2 = aquaGridFor(2, C);
    const common = CACHE;
    const configs: [string, KvCacheOption][] = [
      ['f16', { type: 'f16' }],
      ['uniform 4-bit', { type: 'uniform', bits: 4, ...common }],
      ['uniform 3-bit', { type: 'uniform', bits: 3, ...common }],
      ['uniform 2-bit', { type: 'uniform', bits: 2, ...common }],
      ['HIGGS 3-bit (d2-n64, no predictors)', { type: 'higgs', bits: 3, ...common }],
      ['HIGGS 2-bit (d2-n16, no predictors)', { type: 'higgs', bits: 2, ...common }],
      [`HIGGS ${g2.name.slice(6)} (AQUA-2's grid, no predictors)`, { type: 'higgs', grid: g2, layer0Grid: gaussianGrid(2, 256), ...common }],
      [`HIGGS ${g2.name.slice(6)}, layer 0 d4-n256 (no predictors)`, { type: 'higgs', grid: g2, layer0Grid: gridByName('gauss-d4-n256'), ...common }],
      [`AQUA-KV 2 (${p2.grid.name!.slice(6)}, layer 0 d2-n256)`, { type: 'aqua', predictors: p2, ...common }],
      [`AQUA-KV 2 (${p2c.grid.name!.slice(6)}, layer 0 d4-n256)`, { type: 'aqua', predictors: p2c, ...common }],
      [`AQUA-KV 3 (${p3.grid.name!.slice(6)}, layer 0 d2-n256)`, { type: 'aqua', predictors: p3, ...common }],
    ];
    const exact: Float32Array[] = [];
    const ref = await evaluate(spec, 'f32 (exact)', null, null, exact);
    ref.relPpl = 0;
    rows.push(ref);
    for (const [label, kv] of configs) {
      const r = await evaluate(spec, label, kv, exact, []);
      r.relPpl = r.ppl / ref.ppl - 1;
      rows.push(r);
      progress(`  ${label}: PPL ${r.ppl.toFixed(4)} KL ${r.kl.toExponential(3)}`);
    }
    m.dispose();
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
  backend.dispose();
}

const fmt = (x: number | null, d: number) => (x === null ? '-' : x.toFixed(d));
log(`backend ${opt('backend') ?? 'native'}; cache: pageTokens 16, sinks ${CACHE.sinks} (one page exact), buffer ${CACHE.buffer}, chunks ${CACHE.chunkTokens}; forward steps ${STEP}`);
log('| model | KV cache | bits/value | bytes/token | vs f16 | compressed | PPL | rel. PPL | KL (nats) |');
log('|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  log(
    `| ${r.model} | ${r.cache} | ${fmt(r.bitsPerValue, 3)} | ${fmt(r.bytesPerToken, 1)} | ${r.ratioToF16 === null ? '-' : `1/${(1 / r.ratioToF16).toFixed(2)}`} | ${(100 * r.compressedFraction).toFixed(0)}% | ${r.ppl.toFixed(4)} | ${r.cache.startsWith('f32') ? '-' : `${(100 * r.relPpl).toFixed(2)}%`} | ${r.cache.startsWith('f32') ? '-' : r.kl.toExponential(2)} |`,
  );
}
log('\ncalibration (mean over layers >= 1 of held-out relative MSE: reconstruction with predictor vs plain HIGGS):');
for (const c of calibInfo) log(`  ${JSON.stringify(c)}`);
if (JSON_ONLY) console.log(JSON.stringify({ rows, calibration: calibInfo }, null, 2));
