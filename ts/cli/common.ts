/**
 * Shared pieces of the model commands: options, loading with a progress bar, abort on Ctrl-C.
 */
import cliProgress from 'cli-progress';
import { InvalidArgumentError } from '../errors.js';
import type { BackendChoice } from '../backend/types.js';
import { loadModel, type KvCacheOption, type Model } from '../model/model.js';

export interface ModelCliOptions {
  model: string;
  backend?: string;
  threads?: string;
  tokenizer?: string;
  json?: boolean;
  /** --kv: f32 | f16 | uniform:BITS | higgs:BITS | aqua[:BITS] */
  kv?: string;
  /** --predictors FILE (for --kv aqua) */
  predictors?: string;
}

/**
 * The KV cache of --kv / --predictors: 'f32', 'f16', 'uniform:2', 'higgs:3', 'aqua:2' (BITS optional for aqua:
 * the predictor file's grid). --predictors is required for aqua and rejected for the others.
 */
export function kvCacheOption(kv: string | undefined, predictors: string | undefined): KvCacheOption | undefined {
  if (kv === undefined) {
    if (predictors !== undefined) throw new InvalidArgumentError('--predictors needs --kv aqua[:BITS]');
    return undefined;
  }
  const m = /^(f32|f16|uniform|higgs|aqua)(?::(\d+(?:\.\d+)?))?$/.exec(kv.trim());
  if (!m) throw new InvalidArgumentError(`--kv must be f32, f16, uniform:BITS, higgs:BITS or aqua[:BITS], got '${kv}'`);
  const type = m[1] as 'f32' | 'f16' | 'uniform' | 'higgs' | 'aqua';
  const bits = m[2] !== undefined ? Number(m[2]) : undefined;
  if (type === 'aqua') {
    if (!predictors) throw new InvalidArgumentError('--kv aqua needs --predictors FILE (made by `hogwild calibrate`)');
    return { type, predictors, ...(bits !== undefined ? { bits } : {}) };
  }
  if (predictors !== undefined) throw new InvalidArgumentError(`--predictors is only used with --kv aqua (got --kv ${kv})`);
  if (type === 'f32' || type === 'f16') {
    if (bits !== undefined) throw new InvalidArgumentError(`--kv ${type} takes no bits`);
    return { type };
  }
  return { type, bits: bits ?? 2 };
}

export function intOption(name: string, v: string | undefined, min = 0): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`--${name} must be an integer >= ${min}, got '${v}'`);
  return n;
}

export function numOption(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`--${name} must be a number, got '${v}'`);
  return n;
}

/** An AbortController wired to Ctrl-C (first press aborts, second exits). */
export function interruptSignal(): AbortController {
  const ac = new AbortController();
  let count = 0;
  process.on('SIGINT', () => {
    count++;
    if (count > 1) process.exit(130);
    ac.abort();
  });
  return ac;
}

export async function loadWithProgress(o: ModelCliOptions, signal?: AbortSignal): Promise<Model> {
  const showBar = !o.json && process.stderr.isTTY;
  const bar = showBar
    ? new cliProgress.SingleBar(
        { format: 'loading {bar} {percentage}% | {value}/{total} MiB', stream: process.stderr, hideCursor: true, clearOnComplete: true },
        cliProgress.Presets.shades_classic,
      )
    : null;
  let started = false;
  try {
    const kvCache = kvCacheOption(o.kv, o.predictors);
    return await loadModel(o.model, {
      backend: o.backend as BackendChoice | undefined,
      ...(kvCache ? { kvCache } : {}),
      threads: intOption('threads', o.threads, 1),
      tokenizer: o.tokenizer,
      signal,
      onProgress: (p) => {
        if (!bar) return;
        const mib = (b: number) => Math.round(b / 2 ** 20);
        if (!started) {
          bar.start(mib(p.totalBytes), 0);
          started = true;
        }
        bar.update(mib(p.loadedBytes));
      },
    });
  } finally {
    if (started) bar?.stop();
  }
}
