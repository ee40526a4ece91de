/**
 * `hogwild calibrate`: fit AQUA-KV predictors on a text file and write them as safetensors.
 */
import { existsSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { calibrateAquaKV, type CalibrateResult } from '../aqua/calibrate.js';
import { InvalidArgumentError } from '../errors.js';
import { intOption, interruptSignal, loadWithProgress, numOption, type ModelCliOptions } from './common.js';

export interface CalibrateCliOptions extends ModelCliOptions {
  data: string[];
  out: string;
  bits?: string;
  grid?: string;
  layer0?: string;
  /** commander's --no-layer0-center */
  layer0Center?: boolean;
  tokens?: string;
  holdOut?: string;
  chunk?: string;
  damping?: string;
  seed?: string;
}

/** The per-layer table: relMSE of the plain quantizer vs with the predictor, train and validation. */
export function formatCalibrationTable(r: CalibrateResult): string {
  const f = (x: number) => x.toFixed(4).padStart(8);
  const lines = [
    `${r.trainTokens} train / ${r.valTokens} validation tokens; relMSE = |Y^ - Y|^2 / |Y|^2 (plain: quantizer alone; resid: what the predictor leaves; rec: predictor + quantized residual)`,
    'layer |  K plain tr/val   |  K resid tr/val   |   K rec tr/val    |  V plain tr/val   |  V resid tr/val   |   V rec tr/val',
  ];
  for (const s of r.layers) {
    const p = (x: { train: number; val: number }) => `${f(x.train)} ${f(x.val)}`;
    lines.push(`${String(s.layer).padStart(5)} | ${p(s.kPlain)} | ${p(s.kPred)} | ${p(s.kRec)} | ${p(s.vPlain)} | ${p(s.vPred)} | ${p(s.vRec)}`);
  }
  return lines.join('\n');
}

export async function calibrateCommand(o: CalibrateCliOptions): Promise<void> {
  const ac = interruptSignal();
  const files = Array.isArray(o.data) ? o.data : [o.data];
  for (const f of files) if (!existsSync(f)) throw new InvalidArgumentError(`--data ${f}: no such file`);
  const model = await loadWithProgress(o, ac.signal);
  const bar =
    !o.json && process.stderr.isTTY
      ? new cliProgress.SingleBar(
          { format: 'calibrate {phase} {bar} {percentage}% | {value}/{total}', stream: process.stderr, clearOnComplete: true, hideCursor: true },
          cliProgress.Presets.shades_classic,
        )
      : null;
  let phase = '';
  try {
    const t0 = performance.now();
    const r = await calibrateAquaKV(model, {
      files,
      out: o.out,
      bits: intOption('bits', o.bits, 1),
      grid: o.grid,
      layer0: o.layer0,
      layer0Center: o.layer0Center !== false,
      tokens: intOption('tokens', o.tokens, 2),
      holdOut: numOption('hold-out', o.holdOut),
      chunkTokens: intOption('chunk', o.chunk, 2),
      damping: numOption('damping', o.damping),
      seed: intOption('seed', o.seed, 0),
      signal: ac.signal,
      onProgress: (p) => {
        if (!bar) return;
        const name = p.phase === 'capture' ? 'capture K/V' : `fit layer ${p.layer}`;
        if (phase === '' || (p.phase !== phase && p.phase === 'fit')) {
          if (phase !== '') bar.stop();
          bar.start(p.total, 0, { phase: name });
          phase = p.phase;
        }
        bar.update(p.done, { phase: name });
      },
    });
    if (phase !== '') bar?.stop();
    const seconds = (performance.now() - t0) / 1000;
    if (o.json) process.stdout.write(`${JSON.stringify({ out: o.out, backend: model.backend.name, seconds, metadata: r.metadata, layers: r.layers }, null, 2)}\n`);
    else process.stdout.write(`${formatCalibrationTable(r)}\nwrote ${o.out} (${seconds.toFixed(1)} s, ${model.backend.name})\n`);
  } finally {
    model.dispose();
  }
}
