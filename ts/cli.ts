/**
 * The `hogwild` command line. One module per command under ts/cli/.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { HogwildError } from './errors.js';
import { formatInspect, inspect } from './cli/inspect.js';
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

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof HogwildError) {
    process.stderr.write(`hogwild: ${e.message}\n`);
    process.exit(1);
  }
  throw e;
});
