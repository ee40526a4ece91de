/**
 * Shared pieces of the model commands: options, loading with a progress bar, abort on Ctrl-C.
 */
import cliProgress from 'cli-progress';
import { InvalidArgumentError } from '../errors.js';
import type { BackendChoice } from '../backend/types.js';
import { loadModel, type Model } from '../model/model.js';

export interface ModelCliOptions {
  model: string;
  backend?: string;
  threads?: string;
  tokenizer?: string;
  json?: boolean;
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
    return await loadModel(o.model, {
      backend: o.backend as BackendChoice | undefined,
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
