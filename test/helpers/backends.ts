/**
 * The backends a test run exercises.
 *
 *  - backendsUnderTest(): every backend listBackends() reports available, created with createBackend.
 *    Each backend that is not available prints one visible line `SKIP <name>: <reason>` (test/run.mjs counts
 *    them); nothing passes silently. A backend that is reported available but fails to create is an error.
 *  - variantsUnderTest(): the same, with the CPU backends (native, wasm) expanded into their SIMD and
 *    forced-scalar paths (`setForceScalar`). Every op test runs once per variant.
 *
 * Environment:
 *   HOGWILD_TEST_BACKENDS=native,wasm   restrict to these backends (the others print SKIP ... excluded)
 *   HOGWILD_TEST_MOCK=1                 add 'mock', a pure-TS backend over the float64 references (used to
 *                                       self-test this harness while no compiled backend exists)
 *   HOGWILD_TEST_ALLOW_NONE=1           do not fail when no backend at all is available
 */
// Static imports only: a dynamic import() next to the static ones would load a second copy of ts/errors.ts
// under `uvu -r tsx` (CommonJS require vs ESM import), and `instanceof` on the typed errors would fail.
import { createBackend, listBackends } from '../../ts/index.ts';
import type { Backend } from '../../ts/backend/types.ts';
import { createMockBackend } from './mock-backend.ts';

export interface BackendUnderTest {
  name: string;
  backend: Backend;
}

export interface Variant {
  /** e.g. native/simd, native/scalar, wasm/simd, cuda */
  label: string;
  name: string;
  backend: Backend;
  /** true: the forced-scalar CPU path; false: best SIMD (or not a CPU backend) */
  scalar: boolean;
  /** Put the backend into this variant's mode (call before using it). */
  activate(): void;
}

const printed = new Set<string>();

/** Print a visible skip line (once per process per text). */
export function skipLine(what: string, reason: string): void {
  const line = `SKIP ${what}: ${reason.replace(/\s+/g, ' ').trim()}`;
  if (printed.has(line)) return;
  printed.add(line);
  process.stdout.write(`\n${line}\n`); // own line even after uvu's unterminated suite header
}

let backendsPromise: Promise<BackendUnderTest[]> | undefined;

async function loadBackends(): Promise<BackendUnderTest[]> {
  const only = (process.env.HOGWILD_TEST_BACKENDS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const out: BackendUnderTest[] = [];
  const REAL = ['cuda', 'native', 'wasm'];
  if (only.length && !REAL.some((n) => only.includes(n))) {
    for (const n of REAL) skipLine(n, 'excluded by HOGWILD_TEST_BACKENDS');
  } else {
    await addRealBackends(only, out);
  }
  if (process.env.HOGWILD_TEST_MOCK === '1') {
    out.push({ name: 'mock', backend: createMockBackend() });
  }
  if (out.length === 0 && process.env.HOGWILD_TEST_ALLOW_NONE !== '1') {
    throw new Error('no backend is available to test (see the SKIP lines); set HOGWILD_TEST_ALLOW_NONE=1 to accept that');
  }
  return out;
}

async function addRealBackends(only: string[], out: BackendUnderTest[]): Promise<void> {
  const statuses = await listBackends();
  for (const st of statuses) {
    if (only.length && !only.includes(st.name)) {
      skipLine(st.name, 'excluded by HOGWILD_TEST_BACKENDS');
      continue;
    }
    if (!st.available) {
      skipLine(st.name, st.reason ?? 'unavailable (no reason given)');
      continue;
    }
    let backend: Backend;
    try {
      backend = await createBackend({ backend: st.name });
    } catch (e) {
      throw new Error(`listBackends() reports ${st.name} available, but createBackend failed: ${(e as Error).message}`);
    }
    out.push({ name: st.name, backend });
  }
}

/** Available backends (cached per process). */
export async function backendsUnderTest(): Promise<BackendUnderTest[]> {
  backendsPromise ??= loadBackends();
  try {
    return await backendsPromise;
  } catch (e) {
    // a fresh error per caller, so one test's message decorations do not leak into the next
    throw new Error(`could not load the backends: ${(e as Error).message}`, { cause: e });
  }
}

const CPU_BACKENDS = new Set(['native', 'wasm', 'mock']);

/** Backends expanded into SIMD / forced-scalar variants for the CPU backends. */
export async function variantsUnderTest(): Promise<Variant[]> {
  const bs = await backendsUnderTest();
  const out: Variant[] = [];
  for (const { name, backend } of bs) {
    if (!CPU_BACKENDS.has(name)) {
      out.push({ label: name, name, backend, scalar: false, activate: () => {} });
      continue;
    }
    const simd = String(backend.details.simd ?? 'unknown');
    out.push({ label: `${name}/simd(${simd})`, name, backend, scalar: false, activate: () => backend.setForceScalar?.(false) });
    if (typeof backend.setForceScalar === 'function') {
      out.push({ label: `${name}/scalar`, name, backend, scalar: true, activate: () => backend.setForceScalar!(true) });
    } else {
      skipLine(`${name}/scalar`, 'backend has no setForceScalar()');
    }
  }
  return out;
}

/** Run fn for every variant; errors are prefixed with the variant label. The backend is left in SIMD mode. */
export async function forEachVariant(fn: (v: Variant) => void | Promise<void>): Promise<void> {
  for (const v of await variantsUnderTest()) {
    v.activate();
    try {
      await fn(v);
    } catch (e) {
      const err = e as Error;
      if (err && typeof err.message === 'string') err.message = `[${v.label}] ${err.message}`;
      throw err;
    } finally {
      if (v.scalar) v.backend.setForceScalar?.(false);
    }
  }
}

/** The CUDA and native backends (CUDA-vs-native tests), or null after a visible SKIP line naming `what`. */
export async function cudaAndNative(what: string): Promise<{ cuda: Backend; native: Backend } | null> {
  const bs = await backendsUnderTest();
  // HOGWILD_TEST_CUDA_STANDIN=wasm: where CUDA is absent, run these suites with the WASM backend in its place, to
  // check the tests' own logic on a machine without a GPU (a dry run: it proves nothing about CUDA)
  const standIn = process.env.HOGWILD_TEST_CUDA_STANDIN;
  let cuda = bs.find((q) => q.name === 'cuda');
  if (!cuda && standIn) {
    cuda = bs.find((q) => q.name === standIn);
    if (cuda) skipLine(`${what} on CUDA`, `dry run: HOGWILD_TEST_CUDA_STANDIN=${standIn} stands in for CUDA`);
  }
  const native = bs.find((q) => q.name === 'native');
  if (!cuda || !native) {
    skipLine(what, `needs the cuda and native backends (cuda: ${cuda ? 'available' : 'unavailable'}, native: ${native ? 'available' : 'unavailable'})`);
    return null;
  }
  return { cuda: cuda.backend, native: native.backend };
}

/** Pairs of distinct backends (by name) for cross-backend agreement, e.g. native vs wasm. */
export async function backendPairs(a: string, b: string): Promise<[BackendUnderTest, BackendUnderTest] | null> {
  const bs = await backendsUnderTest();
  const x = bs.find((q) => q.name === a);
  const y = bs.find((q) => q.name === b);
  if (!x || !y) {
    skipLine(`${a}-vs-${b}`, `needs both backends (${a}: ${x ? 'available' : 'unavailable'}, ${b}: ${y ? 'available' : 'unavailable'})`);
    return null;
  }
  return [x, y];
}
