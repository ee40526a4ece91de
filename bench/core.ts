/**
 * Core-primitive throughput on every available backend (`npm run bench:core`, `-- --json` for JSON only).
 *
 * Rows: rope apply, pack/unpack (bits 2, 3, 4, 8, 16), FWHT (n = 128, 1024, 8192), store append and merge,
 * view attention (n_kv_head 8, head_dim 128, GQA 4, views of 1 and 4 sequences sharing a 4096-token prompt
 * block plus small private blocks), and the attention of one Hogwild! decode step on the bench:hogwild model
 * geometry (attn_hogwild_w1/2/4: 12 layers, 2048-token shared prompt, W workers; GFLOP/s). Columns: native (SIMD), native (forced scalar), wasm (SIMD), cuda when
 * present. Each cell: median over repeated timed samples after a warm-up. The WASM/native ratio of every row
 * is computed in the same run. See bench/README.md.
 *
 * Options: --json (JSON only), --quick (fewer samples), --only=<regex> (rows whose op matches).
 */
import { createBackend, listBackends } from '../ts/index.ts';
import type { Backend, KvStore, RopeParams } from '../ts/backend/types.ts';
import os from 'node:os';

const args = process.argv.slice(2);
const JSON_ONLY = args.includes('--json');
const QUICK = args.includes('--quick');
const ONLY = args.find((a) => a.startsWith('--only='))?.slice(7);
const onlyRe = ONLY ? new RegExp(ONLY) : null;
const SAMPLES = QUICK ? 3 : 7;
const SAMPLE_MS = QUICK ? 20 : 30; // each sample runs the op repeatedly for at least this long
const log = (s: string) => {
  if (!JSON_ONLY) console.log(s);
};

// deterministic inputs (benchmarks do not need fresh randomness)
let seed = 12345;
function rnd(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32 - 0.5;
}
function f32(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rnd() * 2;
  return a;
}

interface Prepared {
  run(): void;
  dispose?(): void;
}
interface OpDef {
  op: string;
  params: string;
  /** work per run(), in `unit`s */
  work: number;
  unit: string;
  prepare(be: Backend): Prepared;
}

const ROPE: RopeParams = { headDim: 128, style: 'neox', theta: 500000, scaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 8192 } };

function defs(): OpDef[] {
  const out: OpDef[] = [];
  {
    const nTok = 512;
    const nHead = 32;
    const x = f32(nTok * nHead * 128);
    const pos = Int32Array.from({ length: nTok }, (_, i) => 1000 + i);
    out.push({
      op: 'rope_apply',
      params: `tok=${nTok} heads=${nHead} d=128 neox llama3`,
      work: (nTok * nHead * 128) / 1e6,
      unit: 'Melem/s',
      prepare: (be) => ({ run: () => be.ropeApply(ROPE, x, nTok, nHead, pos) }),
    });
  }
  for (const bits of [2, 3, 4, 8, 16]) {
    const n = 1 << 20;
    const codes = new Uint16Array(n);
    for (let i = 0; i < n; i++) codes[i] = (rnd() + 0.5) * 2 ** bits;
    out.push({ op: `pack_bits${bits}`, params: `n=${n}`, work: n / 1e6, unit: 'Mcode/s', prepare: (be) => ({ run: () => void be.packBits(codes, bits) }) });
    out.push({
      op: `unpack_bits${bits}`,
      params: `n=${n}`,
      work: n / 1e6,
      unit: 'Mcode/s',
      prepare: (be) => {
        const words = be.packBits(codes, bits);
        return { run: () => void be.unpackBits(words, bits, n) };
      },
    });
  }
  for (const n of [128, 1024, 8192]) {
    const total = 1 << 20;
    const x = f32(total);
    out.push({ op: `fwht_n${n}`, params: `rows=${total / n}`, work: total / 1e6, unit: 'Melem/s', prepare: (be) => ({ run: () => be.fwht(x, n, 1 / Math.sqrt(n)) }) });
  }
  const storeParams = { nLayer: 1, nKvHead: 8, headDim: 128, pageTokens: 64 };
  {
    const nTok = 256;
    const k = f32(nTok * 8 * 128);
    const v = f32(nTok * 8 * 128);
    out.push({
      op: 'store_append',
      params: `tok=${nTok} kvh=8 d=128 rope`,
      work: nTok / 1e3,
      unit: 'Ktok/s',
      prepare: (be) => {
        const st = be.createStore(storeParams);
        const b = st.createBlock();
        return {
          run: () => {
            st.append(b, nTok, k, v, ROPE);
            st.truncate(b, 0);
          },
          dispose: () => st.dispose(),
        };
      },
    });
    out.push({
      op: 'store_merge',
      params: `src=${nTok} into dst=1024 kvh=8 d=128 rope`,
      work: nTok / 1e3,
      unit: 'Ktok/s',
      prepare: (be) => {
        const st = be.createStore(storeParams);
        const dst = st.createBlock();
        const src = st.createBlock();
        st.append(dst, 1024, f32(1024 * 8 * 128), f32(1024 * 8 * 128), ROPE);
        st.append(src, nTok, k, v, ROPE);
        return {
          run: () => {
            st.merge(dst, src, ROPE);
            st.truncate(dst, 1024);
          },
          dispose: () => st.dispose(),
        };
      },
    });
  }
  for (const nSeq of [1, 4]) {
    const prompt = 4096;
    const priv = 24;
    const nHead = 32;
    // keys attended per call: each sequence sees the prompt, every private block (own + others)
    const keysPerSeq = prompt + nSeq * priv + 8;
    out.push({
      op: `attn_views_seq${nSeq}`,
      params: `prompt=${prompt} private=${priv}/seq kvh=8 heads=${nHead} d=128 decode`,
      work: (nSeq * keysPerSeq) / 1e6,
      unit: 'Mkey/s',
      prepare: (be) => {
        const st: KvStore = be.createStore(storeParams);
        const p = st.createBlock();
        st.append(p, prompt, f32(prompt * 8 * 128), f32(prompt * 8 * 128), ROPE);
        const hdr = st.createBlock();
        st.append(hdr, 8, f32(8 * 8 * 128), f32(8 * 8 * 128), ROPE);
        const own = Array.from({ length: nSeq }, () => {
          const b = st.createBlock();
          st.append(b, priv, f32(priv * 8 * 128), f32(priv * 8 * 128), ROPE);
          return b;
        });
        const views = own.map((b, s) => [p, ...own.filter((_, i) => i !== s), hdr, b]);
        const positions = views.map(() => [keysPerSeq - 1]);
        const q = f32(nSeq * nHead * 128);
        const batch = { views, positions };
        return { run: () => void st.attention(0, ROPE, batch, q, nHead, 1 / Math.sqrt(128)), dispose: () => st.dispose() };
      },
    });
  }
  // Hogwild! decode at long context, the attention of one whole decode step on the bench:hogwild model geometry
  // (12 layers, 4 KV heads, 12 heads, head_dim 64, f32 KV): W workers, one query row each, 'combined' layout
  // (shared 2048-token prompt, two 8-token headers, one 16-token block per worker seen by every worker). K/V of
  // all layers is 48 MiB, so the prompt streams from memory as in the engine. Unit: GFLOP/s of attention
  // arithmetic (2 flops per multiply-add of Q.K and of P.V).
  for (const W of [1, 2, 4]) {
    const prompt = 2048, hdr = 8, priv = 16, nHead = 12, kvh = 4, d = 64, nLayer = 12;
    const rope64: RopeParams = { headDim: d, style: 'neox', theta: 10000 };
    const keysPerSeq = prompt + 2 * hdr + W * priv;
    out.push({
      op: `attn_hogwild_w${W}`,
      params: `prompt=${prompt} W=${W} layers=${nLayer} kvh=${kvh} heads=${nHead} d=${d} decode step`,
      work: (nLayer * W * keysPerSeq * nHead * d * 4) / 1e9,
      unit: 'GFLOP/s',
      prepare: (be) => {
        const st: KvStore = be.createStore({ nLayer, nKvHead: kvh, headDim: d, pageTokens: 64 });
        const fill = (n: number) => {
          const b = st.createBlock();
          st.append(b, n, f32(nLayer * n * kvh * d), f32(nLayer * n * kvh * d), rope64);
          return b;
        };
        const p = fill(prompt);
        const h1 = fill(hdr);
        const h2 = fill(hdr);
        const own = Array.from({ length: W }, () => fill(priv));
        const views = own.map((b) => [p, ...own.filter((x) => x !== b), h1, h2, b]);
        const positions = views.map(() => [keysPerSeq - 1]);
        const q = f32(W * nHead * d);
        const batch = { views, positions };
        const scale = 1 / Math.sqrt(d);
        return {
          run: () => {
            for (let l = 0; l < nLayer; l++) st.attention(l, rope64, batch, q, nHead, scale);
          },
          dispose: () => st.dispose(),
        };
      },
    });
  }
  return out.filter((d) => !onlyRe || onlyRe.test(d.op));
}

/** Median milliseconds per run() over SAMPLES samples of at least SAMPLE_MS each, after a warm-up. */
function measure(p: Prepared): { medianMs: number; samples: number[]; iters: number } {
  p.run();
  let iters = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) p.run();
    const dt = performance.now() - t0;
    if (dt >= SAMPLE_MS || iters >= 1 << 20) break;
    iters = Math.min(1 << 20, Math.max(iters * 2, Math.ceil((iters * SAMPLE_MS) / Math.max(dt, 0.01))));
  }
  const samples: number[] = [];
  for (let s = 0; s < SAMPLES; s++) {
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) p.run();
    samples.push((performance.now() - t0) / iters);
  }
  const sorted = [...samples].sort((a, b) => a - b);
  return { medianMs: sorted[Math.floor(sorted.length / 2)]!, samples, iters };
}

interface Column {
  key: string;
  backend: Backend;
  scalar: boolean;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const statuses = await listBackends();
  const columns: Column[] = [];
  const skipped: Record<string, string> = {};
  const backendInfo: Record<string, unknown> = {};
  for (const st of statuses) {
    if (!st.available) {
      skipped[st.name] = st.reason ?? 'unavailable';
      log(`SKIP ${st.name}: ${skipped[st.name]}`);
      continue;
    }
    const be = await createBackend({ backend: st.name });
    backendInfo[st.name] = be.details;
    if (st.name === 'cuda') columns.push({ key: 'cuda', backend: be, scalar: false });
    else {
      columns.push({ key: `${st.name}`, backend: be, scalar: false });
      if (st.name === 'native' && be.setForceScalar) columns.push({ key: 'native_scalar', backend: be, scalar: true });
    }
  }
  const order = ['native', 'native_scalar', 'wasm', 'cuda'];
  columns.sort((a, b) => order.indexOf(a.key) - order.indexOf(b.key));

  const rows: {
    op: string;
    params: string;
    unit: string;
    results: Record<string, { medianMs: number; throughput: number; iters: number } | { error: string }>;
    wasmOverNative?: number;
    simdOverScalar?: number;
  }[] = [];
  for (const d of defs()) {
    const results: (typeof rows)[number]['results'] = {};
    for (const c of columns) {
      c.backend.setForceScalar?.(c.scalar);
      let prepared: Prepared | undefined;
      try {
        prepared = d.prepare(c.backend);
        const m = measure(prepared);
        results[c.key] = { medianMs: m.medianMs, throughput: d.work / (m.medianMs / 1000), iters: m.iters };
      } catch (e) {
        results[c.key] = { error: (e as Error).message };
      } finally {
        prepared?.dispose?.();
        c.backend.setForceScalar?.(false);
      }
    }
    const tp = (k: string) => {
      const r = results[k];
      return r && 'throughput' in r ? r.throughput : undefined;
    };
    const row: (typeof rows)[number] = { op: d.op, params: d.params, unit: d.unit, results };
    if (tp('wasm') !== undefined && tp('native') !== undefined) row.wasmOverNative = tp('wasm')! / tp('native')!;
    if (tp('native') !== undefined && tp('native_scalar') !== undefined) row.simdOverScalar = tp('native')! / tp('native_scalar')!;
    rows.push(row);
    if (!JSON_ONLY) process.stderr.write('.');
  }
  if (!JSON_ONLY) process.stderr.write('\n');

  const blob = {
    date: new Date().toISOString(),
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    samples: SAMPLES,
    sampleMs: SAMPLE_MS,
    backends: backendInfo,
    skipped,
    columns: columns.map((c) => c.key),
    rows,
    seconds: (performance.now() - t0) / 1000,
  };

  if (!JSON_ONLY) {
    const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toPrecision(3));
    const head = ['op', 'params', 'unit', ...columns.map((c) => c.key), 'wasm/native', 'simd/scalar'];
    const table = rows.map((r) => [
      r.op,
      r.params,
      r.unit,
      ...columns.map((c) => {
        const x = r.results[c.key];
        return !x ? '-' : 'error' in x ? 'ERR' : fmt(x.throughput);
      }),
      r.wasmOverNative !== undefined ? r.wasmOverNative.toFixed(2) : '-',
      r.simdOverScalar !== undefined ? r.simdOverScalar.toFixed(2) : '-',
    ]);
    const widths = head.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
    const line = (cells: string[]) => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
    log(`hogwild-kv core bench — ${blob.cpu} (${blob.cores} cores), node ${blob.node}; median of ${SAMPLES} samples (throughput, higher is better)`);
    log(line(head));
    log(widths.map((w) => '-'.repeat(w)).join('  '));
    for (const t of table) log(line(t));
    for (const r of rows) for (const [k, x] of Object.entries(r.results)) if ('error' in x) log(`ERR ${r.op} on ${k}: ${x.error}`);
    log(`(${blob.seconds.toFixed(1)} s)`);
    log('JSON:');
  }
  console.log(JSON.stringify(blob, null, JSON_ONLY ? 2 : 0));
  for (const c of columns) c.backend.dispose();
}

await main();
