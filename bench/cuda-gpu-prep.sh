#!/usr/bin/env bash
# Prepares what bench/cuda-gpu.sh needs on the GPU machine (which has no Node.js and no npm registry), here,
# in git-excluded folders of the checkout; then carry [".gpu", ".gpurun"] (about 40 MB of the 64 MiB allowed):
#   .gpu/          node for the GPU machine (made by the workplace's gpu-prep.sh; GPU_PREP=path/to/it)
#   .gpurun/hwkv.node       the native addon built here (the CUDA tests compare against it)
#   .gpurun/node_modules/   the runtime dependencies + uvu + tsx, with their dependencies (flat copy)
#   .gpurun/shared/         the reference models and corpus the CUDA-enabled suites read (HOGWILD_SHARED / ../shared)
# Usage: bash bench/cuda-gpu-prep.sh   (then, on the GPU machine: bash bench/cuda-gpu.sh)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
prep="${GPU_PREP:-$root/../shared/tools/gpu-prep.sh}"
if [ -f "$prep" ]; then bash "$prep"; else echo "cuda-gpu-prep: $prep not found: make .gpu/ yourself (node + enter.sh)" >&2; fi
grep -qxF '/.gpurun/' .git/info/exclude 2>/dev/null || echo '/.gpurun/' >> .git/info/exclude

npm run build:native >/dev/null
rm -rf .gpurun/node_modules .gpurun/shared
mkdir -p .gpurun/node_modules .gpurun/shared/models
cp build/Release/hwkv.node .gpurun/hwkv.node

# dependency closure of the runtime dependencies (node-addon-api is build-only) plus the test runner and tsx
node - <<'NODE'
const fs = require('fs');
const path = require('path');
const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8'));
const roots = [...Object.keys(pkg.dependencies ?? {}).filter((d) => d !== 'node-addon-api'), 'uvu', 'tsx'];
// resolved as Node does: a package nested under its dependent's node_modules wins over the top-level one, and a
// nested copy travels inside its parent's folder (so an unused top-level version of it is not copied)
const seen = new Set();
const stack = roots.map((name) => ['node_modules', name]);
while (stack.length) {
  const [from, name] = stack.pop();
  let dir = null;
  for (let base = from; ; base = path.dirname(path.dirname(base))) {
    const cand = path.join(base, name);
    if (fs.existsSync(cand)) { dir = cand; break; }
    if (base === 'node_modules') break;
  }
  if (!dir || seen.has(dir)) continue; // missing: an optional dependency for another platform
  seen.add(dir);
  const p = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  for (const d of Object.keys({ ...(p.dependencies ?? {}), ...(p.optionalDependencies ?? {}) })) stack.push([path.join(dir, 'node_modules'), d]);
}
const top = [...seen].filter((d) => d.split('node_modules').length === 2);
for (const dir of top) fs.cpSync(dir, path.join('.gpurun', dir), { recursive: true, dereference: true });
console.log(`cuda-gpu-prep: ${seen.size} packages (${top.length} top-level): ${[...seen].map((d) => d.slice(13)).sort().join(' ')}`);
NODE

shared="${HOGWILD_SHARED:-$root/../shared}"
if [ -d "$shared/models" ]; then
  cp -r "$shared/models/." .gpurun/shared/models/   # stories260K, babyllama (~7 MB)
  [ -d "$shared/corpora" ] && cp -r "$shared/corpora" .gpurun/shared/
else
  echo "cuda-gpu-prep: $shared/models not found (the suites that need it will SKIP there)" >&2
fi
du -sh .gpu .gpurun 2>/dev/null || true
echo 'ready: run(command="bash bench/cuda-gpu.sh", carry=[".gpu", ".gpurun"])'
