/**
 * QuantOps over a CoreBackend's RawQuantApi: argument validation and typed errors (InvalidArgumentError,
 * OutOfRangeError, ...) once, for every backend. Parameter semantics (power-of-two sizes, divisibility,
 * bit widths) are checked by the core itself, so the messages are the same on native and WASM.
 *
 * Standalone helpers (higgsEncode(backend, ...), ridgeFit(backend, ...)) are exported for convenience.
 */
import { InvalidArgumentError, OutOfRangeError, UnsupportedError } from '../errors.js';
import { HIGGS_PARAMS_LEN, UNIFORM_PARAMS_LEN, type RawQuantApi } from '../backend/raw.js';
import type { Backend } from '../backend/types.js';
import type {
  HiggsConfig,
  HiggsEncoded,
  HiggsGrid,
  QuantOps,
  QuantSize,
  RidgeAccumulator,
  UniformConfig,
  UniformEncoded,
} from './types.js';

/** What QuantOps needs from CoreBackend (kept structural to avoid an import cycle). */
export interface QuantHost {
  readonly name: string;
  check(status: number): void;
  ensureLive(): void;
}

function isInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x);
}

function int(what: string, x: unknown, min: number, max: number): number {
  if (!isInt(x)) throw new InvalidArgumentError(`${what} must be an integer, got ${String(x)}`);
  if (x < min || x > max) throw new OutOfRangeError(`${what} must be in ${min}..${max}, got ${x}`);
  return x;
}

function arr<T>(what: string, a: unknown, cls: { new (n: number): T; name: string }): T {
  if (!(a instanceof (cls as unknown as new (n: number) => object))) throw new InvalidArgumentError(`${what} must be a ${cls.name}`);
  return a as T;
}

/** The default Hadamard group for C channels: the largest power of two <= 1024 dividing C. */
export function defaultGroup(channels: number): number {
  let g = 1;
  while (g < 1024 && channels % (g * 2) === 0) g *= 2;
  return g;
}

function gridPoints(grid: HiggsGrid): { dim: number; n: number; points: Float32Array } {
  if (grid === null || typeof grid !== 'object') throw new InvalidArgumentError('grid must be { dim, points }');
  const dim = grid.dim;
  if (dim !== 1 && dim !== 2 && dim !== 4 && dim !== 8) throw new InvalidArgumentError(`grid.dim must be 1, 2, 4 or 8, got ${String(dim)}`);
  const points = arr<Float32Array>('grid.points', grid.points, Float32Array);
  if (points.length % dim !== 0) throw new InvalidArgumentError(`grid.points.length (${points.length}) must be a multiple of grid.dim (${dim})`);
  return { dim, n: points.length / dim, points };
}

function bitsOf(n: number): number {
  return Math.round(Math.log2(n));
}

export class CoreQuantOps implements QuantOps {
  private readonly host: QuantHost;
  private readonly raw: RawQuantApi;

  constructor(host: QuantHost, raw: RawQuantApi) {
    this.host = host;
    this.raw = raw;
  }

  // ---- parameter encoding -------------------------------------------------------------------------

  private higgsParams(cfg: HiggsConfig): { hp: Float64Array; grid: Float32Array; channels: number } {
    if (cfg === null || typeof cfg !== 'object') throw new InvalidArgumentError('HIGGS config must be an object');
    const channels = int('channels', cfg.channels, 1, 0x7fffffff);
    const g = gridPoints(cfg.grid);
    const group = cfg.group === undefined ? defaultGroup(channels) : int('group', cfg.group, 1, 0x7fffffff);
    const seed = cfg.seed === undefined ? 0 : int('seed', cfg.seed, 0, 0xffffffff);
    if (cfg.signs !== undefined && typeof cfg.signs !== 'boolean') throw new InvalidArgumentError('signs must be a boolean');
    const hp = new Float64Array(HIGGS_PARAMS_LEN);
    hp[0] = channels;
    hp[1] = group;
    hp[2] = g.dim;
    hp[3] = g.n;
    hp[4] = cfg.signs === false ? 0 : 1;
    hp[5] = seed;
    return { hp, grid: g.points, channels };
  }

  private uniformParams(cfg: UniformConfig): { up: Float64Array; channels: number } {
    if (cfg === null || typeof cfg !== 'object') throw new InvalidArgumentError('uniform config must be an object');
    const channels = int('channels', cfg.channels, 1, 0x7fffffff);
    if (!isInt(cfg.bits)) throw new InvalidArgumentError(`bits must be an integer, got ${String(cfg.bits)}`);
    if (cfg.axis !== 'token' && cfg.axis !== 'channel') throw new InvalidArgumentError(`axis must be 'token' or 'channel', got ${String(cfg.axis)}`);
    if (!isInt(cfg.group)) throw new InvalidArgumentError(`group must be an integer, got ${String(cfg.group)}`);
    const up = new Float64Array(UNIFORM_PARAMS_LEN);
    up[0] = channels;
    up[1] = Math.max(-1, Math.min(cfg.bits, 1e9));
    up[2] = cfg.axis === 'token' ? 0 : 1;
    up[3] = Math.max(-1, Math.min(cfg.group, 0x7fffffff));
    return { up, channels };
  }

  private nTokOf(what: string, x: Float32Array, channels: number, nTok: number | undefined): number {
    arr<Float32Array>(what, x, Float32Array);
    if (nTok === undefined) {
      if (x.length % channels !== 0) throw new InvalidArgumentError(`${what}.length (${x.length}) must be a multiple of channels (${channels})`);
      return x.length / channels;
    }
    const n = int('nTok', nTok, 0, Number.MAX_SAFE_INTEGER);
    if (x.length !== n * channels) throw new InvalidArgumentError(`${what} must have nTok*channels = ${n * channels} elements, got ${x.length}`);
    return n;
  }

  private size(which: 'higgs' | 'uniform', params: Float64Array, nTok: number, channels: number, zeros: boolean): QuantSize {
    this.host.ensureLive();
    int('nTok', nTok, 0, Number.MAX_SAFE_INTEGER);
    const out = new Float64Array(2);
    this.host.check(which === 'higgs' ? this.raw.higgsSize(params, nTok, out) : this.raw.uniformSize(params, nTok, out));
    const codeWords = out[0]!;
    const halfValues = out[1]! * (zeros ? 2 : 1);
    const bytes = 4 * codeWords + 2 * halfValues;
    return { codeWords, halfValues, bytes, bitsPerValue: nTok > 0 ? (8 * bytes) / (nTok * channels) : NaN };
  }

  // ---- HIGGS ----------------------------------------------------------------------------------------

  higgsSize(cfg: HiggsConfig, nTok: number): QuantSize {
    const { hp, channels } = this.higgsParams(cfg);
    return this.size('higgs', hp, nTok, channels, false);
  }

  higgsEncode(cfg: HiggsConfig, x: Float32Array, nTok?: number): HiggsEncoded {
    const { hp, grid, channels } = this.higgsParams(cfg);
    const n = this.nTokOf('x', x, channels, nTok);
    const sz = this.size('higgs', hp, n, channels, false);
    const codes = new Uint32Array(sz.codeWords);
    const scales = new Uint16Array(sz.halfValues);
    this.host.check(this.raw.higgsEncode(hp, grid, x, n, codes, scales));
    return { nTok: n, codes, scales };
  }

  higgsDecode(cfg: HiggsConfig, enc: HiggsEncoded, out?: Float32Array, accumulate = false): Float32Array {
    const { hp, grid, channels } = this.higgsParams(cfg);
    if (enc === null || typeof enc !== 'object') throw new InvalidArgumentError('encoded must be { nTok, codes, scales }');
    const n = int('encoded.nTok', enc.nTok, 0, Number.MAX_SAFE_INTEGER);
    const codes = arr<Uint32Array>('encoded.codes', enc.codes, Uint32Array);
    const scales = arr<Uint16Array>('encoded.scales', enc.scales, Uint16Array);
    const sz = this.size('higgs', hp, n, channels, false);
    if (codes.length !== sz.codeWords) throw new InvalidArgumentError(`encoded.codes must have ${sz.codeWords} words for ${n} tokens, got ${codes.length}`);
    if (scales.length !== sz.halfValues) throw new InvalidArgumentError(`encoded.scales must have ${sz.halfValues} values for ${n} tokens, got ${scales.length}`);
    const y = out ?? new Float32Array(n * channels);
    arr<Float32Array>('out', y, Float32Array);
    if (y.length !== n * channels) throw new InvalidArgumentError(`out must have nTok*channels = ${n * channels} elements, got ${y.length}`);
    this.host.check(this.raw.higgsDecode(hp, grid, codes, scales, n, y, accumulate === true));
    return y;
  }

  gridNearest(grid: HiggsGrid, z: Float32Array): Uint16Array {
    this.host.ensureLive();
    const g = gridPoints(grid);
    arr<Float32Array>('z', z, Float32Array);
    if (z.length % g.dim !== 0) throw new InvalidArgumentError(`z.length (${z.length}) must be a multiple of grid.dim (${g.dim})`);
    const idx = new Uint16Array(z.length / g.dim);
    this.host.check(this.raw.gridNearest(g.points, g.n, g.dim, z, idx));
    return idx;
  }

  higgsSigns(seed: number, channels: number): Float32Array {
    this.host.ensureLive();
    int('seed', seed, 0, 0xffffffff);
    const s = new Float32Array(int('channels', channels, 0, 0x7fffffff));
    this.host.check(this.raw.higgsSigns(seed, s));
    return s;
  }

  // ---- Uniform ----------------------------------------------------------------------------------------

  uniformSize(cfg: UniformConfig, nTok: number): QuantSize {
    const { up, channels } = this.uniformParams(cfg);
    return this.size('uniform', up, nTok, channels, true);
  }

  uniformEncode(cfg: UniformConfig, x: Float32Array, nTok?: number): UniformEncoded {
    const { up, channels } = this.uniformParams(cfg);
    const n = this.nTokOf('x', x, channels, nTok);
    const sz = this.size('uniform', up, n, channels, true);
    const codes = new Uint32Array(sz.codeWords);
    const scales = new Uint16Array(sz.halfValues / 2);
    const zeros = new Uint16Array(sz.halfValues / 2);
    this.host.check(this.raw.uniformEncode(up, x, n, codes, scales, zeros));
    return { nTok: n, codes, scales, zeros };
  }

  uniformDecode(cfg: UniformConfig, enc: UniformEncoded, out?: Float32Array, accumulate = false): Float32Array {
    const { up, channels } = this.uniformParams(cfg);
    if (enc === null || typeof enc !== 'object') throw new InvalidArgumentError('encoded must be { nTok, codes, scales, zeros }');
    const n = int('encoded.nTok', enc.nTok, 0, Number.MAX_SAFE_INTEGER);
    const codes = arr<Uint32Array>('encoded.codes', enc.codes, Uint32Array);
    const scales = arr<Uint16Array>('encoded.scales', enc.scales, Uint16Array);
    const zeros = arr<Uint16Array>('encoded.zeros', enc.zeros, Uint16Array);
    const sz = this.size('uniform', up, n, channels, true);
    if (codes.length !== sz.codeWords) throw new InvalidArgumentError(`encoded.codes must have ${sz.codeWords} words for ${n} tokens, got ${codes.length}`);
    if (scales.length !== sz.halfValues / 2 || zeros.length !== sz.halfValues / 2) {
      throw new InvalidArgumentError(`encoded.scales and encoded.zeros must have ${sz.halfValues / 2} values each for ${n} tokens`);
    }
    const y = out ?? new Float32Array(n * channels);
    arr<Float32Array>('out', y, Float32Array);
    if (y.length !== n * channels) throw new InvalidArgumentError(`out must have nTok*channels = ${n * channels} elements, got ${y.length}`);
    this.host.check(this.raw.uniformDecode(up, codes, scales, zeros, n, y, accumulate === true));
    return y;
  }

  // ---- Ridge ------------------------------------------------------------------------------------------

  ridgeCreate(p: number, q: number): RidgeAccumulator {
    int('p', p, 0, 65535);
    int('q', q, 1, 65536);
    return { p, q, rows: 0, xtx: new Float64Array((p + 1) * (p + 1)), xty: new Float64Array((p + 1) * q), yy: new Float64Array(q) };
  }

  private checkAcc(acc: RidgeAccumulator): void {
    if (acc === null || typeof acc !== 'object') throw new InvalidArgumentError('accumulator must come from ridgeCreate');
    const { p, q } = acc;
    int('acc.p', p, 0, 65535);
    int('acc.q', q, 1, 65536);
    if (!(acc.xtx instanceof Float64Array) || acc.xtx.length !== (p + 1) * (p + 1)) throw new InvalidArgumentError('acc.xtx must be a Float64Array of (p+1)^2');
    if (!(acc.xty instanceof Float64Array) || acc.xty.length !== (p + 1) * q) throw new InvalidArgumentError('acc.xty must be a Float64Array of (p+1)*q');
    if (!(acc.yy instanceof Float64Array) || acc.yy.length !== q) throw new InvalidArgumentError('acc.yy must be a Float64Array of q');
  }

  ridgeAccumulate(acc: RidgeAccumulator, x: Float32Array, y: Float32Array, n?: number): void {
    this.host.ensureLive();
    this.checkAcc(acc);
    arr<Float32Array>('x', x, Float32Array);
    arr<Float32Array>('y', y, Float32Array);
    const rows = n === undefined ? y.length / acc.q : int('n', n, 0, Number.MAX_SAFE_INTEGER);
    if (!Number.isInteger(rows)) throw new InvalidArgumentError(`y.length (${y.length}) must be a multiple of q (${acc.q})`);
    if (y.length !== rows * acc.q) throw new InvalidArgumentError(`y must have n*q = ${rows * acc.q} elements, got ${y.length}`);
    if (x.length !== rows * acc.p) throw new InvalidArgumentError(`x must have n*p = ${rows * acc.p} elements, got ${x.length}`);
    this.host.check(this.raw.ridgeAccumulate(x, y, rows, acc.p, acc.q, acc.xtx, acc.xty, acc.yy));
    acc.rows += rows;
  }

  ridgeSolve(acc: RidgeAccumulator, lambdaRel = 1e-3): Float32Array {
    this.host.ensureLive();
    this.checkAcc(acc);
    if (typeof lambdaRel !== 'number' || !Number.isFinite(lambdaRel) || lambdaRel < 0) {
      throw new InvalidArgumentError(`lambdaRel must be a finite number >= 0, got ${String(lambdaRel)}`);
    }
    const w = new Float32Array((acc.p + 1) * acc.q);
    this.host.check(this.raw.ridgeSolve(acc.xtx, acc.xty, acc.p, acc.q, lambdaRel, w));
    return w;
  }

  linearApply(x: Float32Array, w: Float32Array, n: number, p: number, q: number): Float32Array {
    this.host.ensureLive();
    arr<Float32Array>('x', x, Float32Array);
    arr<Float32Array>('w', w, Float32Array);
    int('n', n, 0, Number.MAX_SAFE_INTEGER);
    int('p', p, 0, 65535);
    int('q', q, 1, 65536);
    if (x.length !== n * p) throw new InvalidArgumentError(`x must have n*p = ${n * p} elements, got ${x.length}`);
    if (w.length !== (p + 1) * q) throw new InvalidArgumentError(`w must have (p+1)*q = ${(p + 1) * q} elements, got ${w.length}`);
    const y = new Float32Array(n * q);
    this.host.check(this.raw.linearApply(x, n, p, q, w, y));
    return y;
  }
}

// ---- standalone helpers -----------------------------------------------------------------------------------

/** The backend's quantizer ops, or UnsupportedError. */
export function quantOf(backend: Backend): QuantOps {
  const q = backend.quant;
  if (!q) throw new UnsupportedError(`the ${backend.name} backend has no quantizers (rebuild it: hwkv_quant_api is missing)`);
  return q;
}

export const higgsEncode = (b: Backend, cfg: HiggsConfig, x: Float32Array, nTok?: number): HiggsEncoded => quantOf(b).higgsEncode(cfg, x, nTok);
export const higgsDecode = (b: Backend, cfg: HiggsConfig, enc: HiggsEncoded, out?: Float32Array, accumulate?: boolean): Float32Array =>
  quantOf(b).higgsDecode(cfg, enc, out, accumulate);
export const uniformEncode = (b: Backend, cfg: UniformConfig, x: Float32Array, nTok?: number): UniformEncoded => quantOf(b).uniformEncode(cfg, x, nTok);
export const uniformDecode = (b: Backend, cfg: UniformConfig, enc: UniformEncoded, out?: Float32Array, accumulate?: boolean): Float32Array =>
  quantOf(b).uniformDecode(cfg, enc, out, accumulate);

/**
 * One-shot ridge fit: W [(p+1), q] (last row = bias) for rows x [n, p] -> y [n, q], accumulated in chunks of
 * `chunkRows` rows (memory stays O(p² + p·q) in the core).
 */
export function ridgeFit(
  b: Backend,
  x: Float32Array,
  y: Float32Array,
  p: number,
  q: number,
  options: { lambdaRel?: number; chunkRows?: number } = {},
): { w: Float32Array; acc: RidgeAccumulator } {
  const ops = quantOf(b);
  const acc = ops.ridgeCreate(p, q);
  if (!(x instanceof Float32Array) || !(y instanceof Float32Array)) throw new InvalidArgumentError('x and y must be Float32Arrays');
  const n = y.length / q;
  if (!Number.isInteger(n) || x.length !== n * p) throw new InvalidArgumentError(`x [n, p] and y [n, q] disagree: x ${x.length}, y ${y.length}, p ${p}, q ${q}`);
  const chunk = options.chunkRows ?? 4096;
  int('chunkRows', chunk, 1, 1 << 30);
  for (let r = 0; r < n; r += chunk) {
    const m = Math.min(chunk, n - r);
    ops.ridgeAccumulate(acc, x.subarray(r * p, (r + m) * p), y.subarray(r * q, (r + m) * q), m);
  }
  return { w: ops.ridgeSolve(acc, options.lambdaRel ?? 1e-3), acc };
}

export { bitsOf as gridBits };
