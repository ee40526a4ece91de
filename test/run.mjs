#!/usr/bin/env node
/**
 * Test entry (`npm test` = `npm run build && node test/run.mjs`).
 *
 *   node test/run.mjs [filter]
 *
 * Runs every test file under test/ (name *.test.{ts,mts,js,mjs}; test/ref, test/helpers and test/fixtures
 * hold no tests) with uvu and tsx, one process per file, so a file that fails to load cannot hide the
 * others. `filter` is a regular expression matched against the file path relative to test/.
 * Output is streamed. One seed is chosen per run (or taken from HOGWILD_TEST_SEED) and passed to every
 * file, so a failing run can be replayed.
 *
 * uvu counts tests: `Total` (tests run), `Passed`, `Skipped` (test.skip). Failed = Total - Passed; a file
 * that exits non-zero without a failed test (load error, crash, early exit) counts as one failure.
 * Skipped = uvu's skips + the distinct `SKIP <what>: <reason>` lines the tests print for backends or
 * features that are not available.
 *
 * The LAST line printed is exactly `N passed, N failed, N skipped`; the exit code is non-zero on any failure.
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');

// `uvu -r tsx test` also loads this file as a "suite": only act when run directly.
const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const full = join(dir, name);
    const rel = relative(here, full).split(sep).join('/');
    if (statSync(full).isDirectory()) {
      if (['ref', 'helpers', 'fixtures', 'node_modules'].includes(rel)) continue;
      out.push(...findTests(full));
    } else if (/\.test\.[cm]?[jt]sx?$/.test(name)) {
      out.push(rel);
    }
  }
  return out;
}

const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');
const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function runFile(rel, env, timeoutS) {
  return new Promise((done) => {
    const args = [join(root, 'node_modules', 'uvu', 'bin.js'), '-r', 'tsx', 'test', `^${escapeRe(rel)}$`];
    const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    const timer = setTimeout(() => {
      text += `\nrun.mjs: ${rel} exceeded ${timeoutS} s, killed\n`;
      child.kill('SIGKILL');
    }, timeoutS * 1000);
    child.stdout.on('data', (d) => {
      process.stdout.write(d);
      text += d.toString();
    });
    child.stderr.on('data', (d) => {
      process.stderr.write(d);
      text += d.toString();
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code: code ?? (signal ? 128 : 1), text: stripAnsi(text) });
    });
  });
}

function lastNumber(text, label) {
  const all = [...text.matchAll(new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'gm'))];
  return all.length ? Number(all[all.length - 1][1]) : undefined;
}

async function main() {
  const filter = process.argv[2] ? new RegExp(process.argv[2]) : null;
  const files = findTests(here).filter((f) => !filter || filter.test(f));
  const seed = process.env.HOGWILD_TEST_SEED || String((Math.random() * 0x100000000) >>> 0);
  const env = { ...process.env, HOGWILD_TEST_SEED: seed };
  if (!('FORCE_COLOR' in process.env) && !process.stdout.isTTY) env.FORCE_COLOR = '0';
  const timeoutS = Number(process.env.HOGWILD_TEST_TIMEOUT_S || 600);
  console.log(`test seed ${seed} (replay with HOGWILD_TEST_SEED=${seed}); ${files.length} file(s)${filter ? ` matching /${filter.source}/` : ''}`);

  let passed = 0;
  let failed = 0;
  let uvuSkipped = 0;
  const skipLines = new Set();
  const rows = [];
  for (const f of files) {
    const t0 = Date.now();
    const { code, text } = await runFile(f, env, timeoutS);
    const total = lastNumber(text, 'Total');
    const ok = lastNumber(text, 'Passed');
    const sk = lastNumber(text, 'Skipped') ?? 0;
    for (const m of text.matchAll(/^SKIP (\S.*)$/gm)) skipLines.add(m[1].trim());
    let p = 0;
    let fl = 0;
    let note = '';
    if (total === undefined || ok === undefined) {
      fl = 1;
      note = `no uvu summary (exit ${code}): the file failed to load or crashed`;
    } else {
      p = ok;
      fl = total - ok;
      if (code !== 0 && fl === 0) {
        fl = 1;
        note = `exit ${code} although every test passed`;
      }
    }
    passed += p;
    failed += fl;
    uvuSkipped += sk;
    rows.push(`  ${fl ? 'FAIL' : 'ok  '} ${f}: ${p} passed, ${fl} failed, ${sk} skipped (${((Date.now() - t0) / 1000).toFixed(1)} s)${note ? ` — ${note}` : ''}`);
  }
  console.log('\nsummary by file:');
  for (const r of rows) console.log(r);
  if (skipLines.size) {
    console.log('skipped (not available here):');
    for (const s of skipLines) console.log(`  SKIP ${s}`);
  }
  if (failed) console.log(`replay: HOGWILD_TEST_SEED=${seed} node test/run.mjs${process.argv[2] ? ` '${process.argv[2]}'` : ''}`);
  process.exitCode = failed > 0 || files.length === 0 ? 1 : 0;
  console.log(`${passed} passed, ${failed} failed, ${uvuSkipped + skipLines.size} skipped`);
}

if (isMain) await main();
