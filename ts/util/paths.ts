/**
 * Locating the hogwild-kv package on disk (for build/Release/hwkv.node, prebuilds/, package.json).
 *
 * Works from the TypeScript sources (tsx), from the tsup bundles dist/index.js (ESM) and dist/index.cjs
 * (CJS): start at this module's directory (`__dirname` where CommonJS or tsup's shim defines it, else
 * `import.meta.url`) and walk up to the first package.json whose name is "hogwild-kv". Falls back to
 * resolving `hogwild-kv/package.json` from the working directory (an application that bundled this code).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_NAME = 'hogwild-kv';

let cachedRoot: string | undefined;

/** The directory of this module, or undefined where neither CommonJS nor ESM tells it. */
function moduleDir(): string | undefined {
  if (typeof __dirname === 'string' && __dirname.length > 0) return __dirname;
  try {
    const url = import.meta.url;
    if (typeof url === 'string' && url.startsWith('file:')) return path.dirname(fileURLToPath(url));
  } catch {
    // import.meta unavailable (CJS bundle without shims)
  }
  return undefined;
}

function isPackageDir(dir: string): boolean {
  try {
    const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown };
    return pkg.name === PACKAGE_NAME;
  } catch {
    return false;
  }
}

function walkUp(start: string): string | undefined {
  let dir = path.resolve(start);
  for (;;) {
    if (isPackageDir(dir)) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

function fromResolution(): string | undefined {
  try {
    const req = createRequire(path.join(process.cwd(), 'noop.js'));
    return path.dirname(req.resolve(`${PACKAGE_NAME}/package.json`));
  } catch {
    return undefined;
  }
}

/**
 * The hogwild-kv package root: the directory holding its package.json. Cached after the first call.
 * Throws an Error when it cannot be found (code bundled away from its package and not installed).
 */
export function packageRoot(): string {
  if (cachedRoot !== undefined) return cachedRoot;
  const here = moduleDir();
  const found = (here !== undefined ? walkUp(here) : undefined) ?? fromResolution();
  if (found === undefined) {
    throw new Error(
      `cannot find the ${PACKAGE_NAME} package directory (searched up from ${here ?? 'an unknown module location'} ` +
        `and resolved '${PACKAGE_NAME}/package.json' from ${process.cwd()})`,
    );
  }
  cachedRoot = found;
  return found;
}

/** A path inside the package root. */
export function packagePath(...parts: string[]): string {
  return path.join(packageRoot(), ...parts);
}
