/**
 * `hogwild solve`: several workers of one model solve a problem together (Hogwild! inference).
 *
 * On a terminal: a live view with one coloured line per worker (the tail of its current step), finished steps
 * printed above it as they complete, then the final answer. Piped: finished steps and the answer as plain text.
 * `--json`: the whole result as JSON.
 */
import type { HogwildOptions, HogwildResult } from '../hogwild/run.js';
import type { LayoutName } from '../hogwild/layout.js';
import { InvalidArgumentError } from '../errors.js';
import { intOption, interruptSignal, loadWithProgress, numOption, type ModelCliOptions } from './common.js';

export interface SolveCliOptions extends ModelCliOptions {
  workers?: string;
  layout?: string;
  names?: string;
  maxForwardPasses?: string;
  selfCheckEvery?: string;
  temperature?: string;
  topP?: string;
  seed?: string;
  snapshots?: string;
  chatTemplate?: boolean;
}

const COLORS = ['\x1b[36m', '\x1b[33m', '\x1b[35m', '\x1b[32m', '\x1b[34m', '\x1b[31m', '\x1b[96m', '\x1b[93m'];
const RESET = '\x1b[0m';
const BOLD = '\x1b[1m';
const DIM = '\x1b[2m';

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ⏎ ');
}

/** The live view: finished steps scroll above, one line per worker below, redrawn at most every 50 ms. */
class LiveView {
  private drawn = 0;
  private timer: NodeJS.Timeout | null = null;
  constructor(
    private readonly names: string[],
    private readonly cur: string[],
    private readonly out: NodeJS.WriteStream,
  ) {}

  private color(w: number): string {
    return COLORS[w % COLORS.length]!;
  }

  private clear(): void {
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}A\r\x1b[J`);
    this.drawn = 0;
  }

  private draw(): void {
    const cols = Math.max(20, this.out.columns ?? 80);
    let s = '';
    this.names.forEach((n, w) => {
      const head = `${n} ▸ `;
      const room = cols - head.length - 1;
      const t = oneLine(this.cur[w]!);
      s += `\x1b[2K${this.color(w)}${BOLD}${head}${RESET}${this.color(w)}${t.length > room ? `…${t.slice(t.length - room + 1)}` : t}${RESET}\n`;
    });
    this.out.write(s);
    this.drawn = this.names.length;
  }

  update(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.clear();
      this.draw();
    }, 50);
  }

  /** Print a line above the live area. */
  print(w: number | null, text: string): void {
    this.clear();
    this.out.write(w === null ? `${text}\n` : `${this.color(w)}${text}${RESET}\n`);
    this.draw();
  }

  end(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.clear();
  }
}

export async function solveCommand(problem: string, o: SolveCliOptions): Promise<void> {
  const workers = intOption('workers', o.workers, 1) ?? 2;
  const layout = (o.layout ?? 'combined') as LayoutName;
  if (!['combined', 'contiguous', 'interleaved'].includes(layout)) throw new InvalidArgumentError(`--layout must be combined, contiguous or interleaved, got '${o.layout}'`);
  const snapshots = o.snapshots ? o.snapshots.split(',').map((s) => intOption('snapshots', s.trim(), 1)!) : undefined;
  const opts: HogwildOptions = {
    workers,
    layout,
    names: o.names ? o.names.split(',').map((s) => s.trim()) : undefined,
    selfCheckEvery: intOption('self-check-every', o.selfCheckEvery, 0),
    chatTemplate: o.chatTemplate === false ? false : 'auto',
    sampling: {
      temperature: numOption('temperature', o.temperature) ?? 0,
      topP: numOption('top-p', o.topP),
      seed: intOption('seed', o.seed, 0),
    },
  };
  const ac = interruptSignal();
  const model = await loadWithProgress(o, ac.signal);
  const run = model.hogwild(opts);
  try {
    const solve = run.solve(problem, { maxForwardPasses: intOption('max-forward-passes', o.maxForwardPasses, 1) ?? 4096, signal: ac.signal, snapshots });
    const tty = !o.json && process.stdout.isTTY === true;
    const cur = run.names.map(() => '');
    const view = tty ? new LiveView(run.names, cur, process.stdout) : null;
    let result: HogwildResult;
    try {
      for await (const e of solve) {
        if (o.json) continue;
        if (e.type === 'token') {
          cur[e.worker] += e.text;
          view?.update();
        } else if (e.type === 'step-finished') {
          cur[e.worker] = '';
          const text = e.text.trimEnd();
          if (view) view.print(e.worker, text);
          else process.stdout.write(`${text}\n\n`);
        } else if (e.type === 'self-check' && e.phase === 'answered') {
          const line = `  [self-check] ${e.name}: ${e.answer}`;
          if (view) view.print(null, `${DIM}${line}${RESET}`);
        } else if (e.type === 'snapshot') {
          const s = e.snapshot;
          const line = `  [budget ${s.budget}] answer: ${s.answer ?? '(none)'} (${s.answerSource ?? '-'})`;
          if (view) view.print(null, `${DIM}${line}${RESET}`);
          else process.stdout.write(`${line}\n`);
        }
      }
      result = await solve.result;
    } finally {
      view?.end();
    }
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ problem, backend: model.backend.name, ...result }, null, 2)}\n`);
      return;
    }
    result.workers.forEach((w, i) => {
      const last = w.steps.at(-1);
      if (last && last.forwardPass < 0 && last.text.trim() !== '') {
        process.stdout.write(tty ? `${COLORS[i % COLORS.length]}${last.text.trimEnd()} …${RESET}\n` : `${last.text.trimEnd()} …\n`);
      }
    });
    const ans = result.answer ?? '(no answer)';
    const how = result.answerSource === 'worker' ? `from ${result.workers[result.answerWorker!]!.name}` : result.answerSource === 'forced' ? 'asked for at the end' : '';
    process.stdout.write(`\n${tty ? BOLD : ''}Answer: ${ans}${tty ? RESET : ''} ${how ? `(${how})` : ''}\n`);
    const t = result.timings;
    process.stderr.write(
      `[${model.backend.name}] ${workers} workers, ${result.layout}: ${result.forwardPasses} forward passes, ${result.totalTokens} tokens (${result.tokensPerWorker.join(' + ')}), ` +
        `${t.msPerForwardPass.toFixed(1)} ms/pass, ${t.tokensPerSecond.toFixed(1)} tok/s together; stop: ${result.stopReason}\n`,
    );
  } catch (e) {
    if (ac.signal.aborted) {
      process.stderr.write('\nstopped\n');
      return;
    }
    throw e;
  } finally {
    run.dispose();
    model.dispose();
  }
}
