// Lists C++ sources for binding.gyp, so new core files are picked up without editing the gyp file.
//   node bindings/napi/sources.cjs core          -> core/src/**/*.cpp, except ISA directories core/src/simd/<isa>/
//   node bindings/napi/sources.cjs avx2          -> core/src/simd/avx2/**/*.cpp
//   node bindings/napi/sources.cjs napi          -> bindings/napi/*.cpp
//   add --count to print only the number of files.
// Paths are relative to the package root (the directory of binding.gyp), '/'-separated, one per line.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');

function walk(rel, skip) {
  const abs = path.join(root, rel);
  let entries;
  try {
    entries = fs.readdirSync(abs, { withFileTypes: true });
  } catch {
    return [];
  }
  const out = [];
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const r = rel + '/' + e.name;
    if (e.isDirectory()) {
      if (!skip(r)) out.push(...walk(r, skip));
    } else if (e.isFile() && /\.(cpp|cc)$/.test(e.name)) {
      out.push(r);
    }
  }
  return out;
}

const what = process.argv[2];
const count = process.argv.includes('--count');
let files;
if (what === 'core') files = walk('core/src', (d) => /^core\/src\/simd\/[^/]+$/.test(d));
else if (what === 'avx2') files = walk('core/src/simd/avx2', () => false);
else if (what === 'napi') files = walk('bindings/napi', () => true);
else {
  process.stderr.write('usage: node bindings/napi/sources.cjs core|avx2|napi\n');
  process.exit(2);
}
if (count) process.stdout.write(String(files.length) + '\n');
else process.stdout.write(files.join('\n') + (files.length ? '\n' : ''));
