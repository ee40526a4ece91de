/**
 * `hogwild perplexity`: mean NLL and perplexity of a text file (each chunk starts with BOS).
 */
import { readFileSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { InvalidArgumentError } from '../errors.js';
import { intOption, interruptSignal, loadWithProgress, type ModelCliOptions } from './common.js';

export interface PerplexityCliOptions extends ModelCliOptions {
  file: string;
  context?: string;
  chunkChars?: string;
  maxChunks?: string;
}

export async function perplexityCommand(o: PerplexityCliOptions): Promise<void> {
  const ac = interruptSignal();
  let text: string;
  try {
    text = readFileSync(o.file, 'utf8');
  } catch (e) {
    throw new InvalidArgumentError(`--file ${o.file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const model = await loadWithProgress(o, ac.signal);
  const bar =
    !o.json && process.stderr.isTTY
      ? new cliProgress.SingleBar({ format: 'perplexity {bar} {value}/{total} chunks', stream: process.stderr, clearOnComplete: true }, cliProgress.Presets.shades_classic)
      : null;
  let started = false;
  try {
    const t0 = performance.now();
    const r = await model.perplexity(text, {
      context: intOption('context', o.context, 2) ?? 512,
      chunkChars: intOption('chunk-chars', o.chunkChars, 1),
      maxChunks: intOption('max-chunks', o.maxChunks, 1),
      signal: ac.signal,
      onProgress: (done, total) => {
        if (!bar) return;
        if (!started) {
          bar.start(total, 0);
          started = true;
        }
        bar.update(done);
      },
    });
    if (started) bar?.stop();
    const seconds = (performance.now() - t0) / 1000;
    const out = { file: o.file, backend: model.backend.name, ...r, seconds };
    if (o.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    else
      process.stdout.write(
        `${o.file}: ${r.tokens} tokens in ${r.chunks} chunks, mean NLL ${r.meanNll.toFixed(4)} nats/token, perplexity ${r.perplexity.toFixed(4)} (${seconds.toFixed(1)} s, ${model.backend.name})\n`,
      );
  } finally {
    model.dispose();
  }
}
