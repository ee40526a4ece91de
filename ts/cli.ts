/**
 * The `hogwild` command line. One module per command under ts/cli/.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { HogwildError } from './errors.js';
import { formatInspect, inspect } from './cli/inspect.js';
import { chatCommand, generateCommand } from './cli/generate.js';
import { perplexityCommand } from './cli/perplexity.js';
import { calibrateCommand } from './cli/calibrate.js';
import { solveCommand } from './cli/solve.js';
import { packageRoot } from './util/paths.js';

function version(): string {
  try {
    return (JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

const program = new Command();
program.name('hogwild').description('Hogwild! parallel inference and AQUA-KV compressed KV caches').version(version());

program
  .command('inspect')
  .description('show the backends available here (CUDA, native, WASM), CPU features and GPUs')
  .option('--json', 'print JSON')
  .action(async (opts: { json?: boolean }) => {
    const report = await inspect(version());
    process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatInspect(report)}\n`);
  });

const modelOpts = (c: Command) =>
  c
    .requiredOption('-m, --model <path>', 'GGUF file, Hugging Face folder or llama2.c .bin')
    .option('--tokenizer <path>', 'llama2.c checkpoints: the tokenizer.bin (default: tokenizer.bin or the only tok*.bin beside the model)')
    .option('-b, --backend <name>', 'auto | cuda | native | wasm (default: $HOGWILD_BACKEND or auto)')
    .option('-t, --threads <n>', 'CPU threads (default: all cores)')
    .option('--kv <type>', 'KV cache: f32 | f16 | uniform:BITS | higgs:BITS | aqua[:BITS] (default f32)')
    .option('--predictors <file>', 'AQUA-KV predictors for --kv aqua (from `hogwild calibrate`)')
    .option('--json', 'print JSON');
const samplingOpts = (c: Command) =>
  c
    .option('-n, --max-tokens <n>', 'maximum new tokens', '256')
    .option('--temperature <t>', 'sampling temperature (0 = greedy)', '0')
    .option('--top-k <k>', 'top-k')
    .option('--top-p <p>', 'top-p')
    .option('--min-p <p>', 'min-p')
    .option('--seed <n>', 'random seed')
    .option('--stop <text...>', 'stop strings');

samplingOpts(modelOpts(program.command('generate').description('complete a prompt (streams the text)').argument('<prompt>', 'the prompt'))).action(
  (prompt: string, opts) => generateCommand(prompt, opts),
);
samplingOpts(modelOpts(program.command('chat').description('interactive chat with the model\'s chat template')))
  .option('--system <text>', 'system message')
  .action((opts) => chatCommand(opts));
modelOpts(program.command('perplexity').description('perplexity of a text file (each chunk starts with BOS)'))
  .requiredOption('-f, --file <path>', 'text file')
  .option('-c, --context <n>', 'tokens per chunk', '512')
  .option('--chunk-chars <n>', 'pack the text lines into chunks of at most this many characters (joined by newlines; each chunk starts with BOS; 1200 is the stories260K protocol)')
  .option('--max-chunks <n>', 'only the first N chunks')
  .action((opts) => perplexityCommand(opts));

modelOpts(program.command('calibrate').description('AQUA-KV: fit the inter-layer K/V predictors on calibration text (writes safetensors)'))
  .requiredOption('-d, --data <files...>', 'calibration text file(s)')
  .requiredOption('-o, --out <path>', 'output .safetensors file')
  .option('--bits <n>', 'target bits per value incl. fp16 scales (picks the main HIGGS grid, see ts/aqua/bits.ts)', '2')
  .option('--grid <name>', 'main grid (overrides --bits), e.g. gauss-d2-n16')
  .option('--layer0 <mode>', "layer 0: a grid name or 'exact'", 'gauss-d2-n256')
  .option('--no-layer0-center', "layer 0 on a grid: quantize K/V as they are (the reference code) instead of minus their calibration mean")
  .option('--tokens <n>', 'use at most N tokens')
  .option('--hold-out <f>', 'held-out fraction of chunks', '0.1')
  .option('--chunk <n>', 'tokens per chunk incl. BOS', '512')
  .option('--damping <f>', 'ridge damping relative to mean(diag XᵀX)', '1e-3')
  .option('--seed <n>', 'split seed', '0')
  .action((opts) => calibrateCommand(opts));

modelOpts(program.command('solve').description('Hogwild!: several workers of the model solve a problem together over one shared KV cache').argument('<problem>', 'the problem'))
  .option('-w, --workers <n>', 'number of workers', '2')
  .option('--layout <name>', 'cache layout: combined | contiguous | interleaved', 'combined')
  .option('--names <list>', 'worker names, comma-separated (default Alice,Bob,Carol,…)')
  .option('--max-forward-passes <n>', 'budget of inference steps (batched forward passes)', '4096')
  .option('--self-check-every <n>', 'ask a worker whether it duplicates work every N generated tokens (0 = never)')
  .option('--snapshots <list>', 'also report the answer at these budgets, e.g. 1024,2048')
  .option('--temperature <t>', 'sampling temperature (0 = greedy)', '0')
  .option('--top-p <p>', 'top-p')
  .option('--seed <n>', 'random seed')
  .option('--no-chat-template', 'use the plain-text prompt format even if the model has a chat template')
  .action((problem: string, opts) => solveCommand(problem, opts));

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof HogwildError) {
    process.stderr.write(`hogwild: ${e.message}\n`);
    process.exit(1);
  }
  throw e;
});
