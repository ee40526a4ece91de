/**
 * Backend discovery and selection: listBackends() reports every backend with the reason it can or cannot
 * be used; createBackend() picks one (auto: cuda, then native, then wasm).
 */
import { BackendUnavailableError, InvalidArgumentError } from '../errors.js';
import { CoreBackend } from './backend.js';
import { loadCudaRaw } from './cuda.js';
import { loadNativeAddon } from './native.js';
import type { RawApi } from './raw.js';
import type { Backend, BackendChoice, BackendName, BackendStatus, CreateBackendOptions } from './types.js';
import { loadWasmRaw } from './wasm.js';

export const BACKEND_ORDER: readonly BackendName[] = ['cuda', 'native', 'wasm'];
const CHOICES: readonly BackendChoice[] = ['auto', ...BACKEND_ORDER];

interface Probe {
  raw?: RawApi;
  reason?: string;
  details: Record<string, unknown>;
}

function parseInfo(raw: RawApi): Record<string, unknown> {
  try {
    return JSON.parse(raw.buildInfo()) as Record<string, unknown>;
  } catch {
    return {};
  }
}

async function probe(name: BackendName): Promise<Probe> {
  switch (name) {
    case 'cuda': {
      const r = loadCudaRaw();
      if ('error' in r) return { reason: r.error, details: {} };
      return { raw: r.raw, details: { library: r.libPath, ...parseInfo(r.raw) } };
    }
    case 'native': {
      const r = loadNativeAddon();
      if ('error' in r) return { reason: r.error, details: {} };
      return { raw: r.addon.cpu, details: { ...parseInfo(r.addon.cpu), cpu: r.addon.cpuFeatures() } };
    }
    case 'wasm': {
      try {
        const raw = await loadWasmRaw();
        return { raw, details: parseInfo(raw) };
      } catch (e) {
        return { reason: `WebAssembly module failed to load: ${(e as Error).message}`, details: {} };
      }
    }
  }
}

/** Every backend with whether it can be used here, why not, and what was found. */
export async function listBackends(): Promise<BackendStatus[]> {
  const out: BackendStatus[] = [];
  for (const name of BACKEND_ORDER) {
    const p = await probe(name);
    out.push(p.raw ? { name, available: true, details: p.details } : { name, available: false, reason: p.reason, details: p.details });
  }
  return out;
}

let warnedWasmFallback = false;

function resolveChoice(opt: BackendChoice | undefined): BackendChoice {
  const env = process.env.HOGWILD_BACKEND;
  const choice = opt ?? (env && env.length > 0 ? (env as BackendChoice) : 'auto');
  if (!CHOICES.includes(choice)) {
    const from = opt === undefined ? 'HOGWILD_BACKEND' : 'backend';
    throw new InvalidArgumentError(`${from} must be one of ${CHOICES.join(', ')}; got '${String(choice)}'`);
  }
  return choice;
}

/**
 * Create a backend. `auto` (the default, or `HOGWILD_BACKEND`) tries cuda, native, wasm in this order and
 * records why each was passed over in `backend.details.passedOver`. Asking for an unavailable backend
 * throws BackendUnavailableError naming the cause and the fix.
 */
export async function createBackend(options: CreateBackendOptions = {}): Promise<Backend> {
  const choice = resolveChoice(options.backend);
  if (choice !== 'auto') {
    const p = await probe(choice);
    if (!p.raw) throw new BackendUnavailableError(choice, `${choice} backend unavailable: ${p.reason}`);
    return new CoreBackend(choice, p.raw, { library: p.details.library, cpu: p.details.cpu });
  }
  const passedOver: { name: BackendName; reason: string }[] = [];
  for (const name of BACKEND_ORDER) {
    const p = await probe(name);
    if (p.raw) {
      if (name === 'wasm' && passedOver.some((x) => x.name === 'native') && !warnedWasmFallback) {
        warnedWasmFallback = true;
        const why = passedOver.find((x) => x.name === 'native')!.reason;
        process.emitWarning(`hogwild-kv: using the WebAssembly backend (slower) because the native addon is unavailable: ${why}`, {
          code: 'HOGWILD_WASM_FALLBACK',
        });
      }
      return new CoreBackend(name, p.raw, { library: p.details.library, cpu: p.details.cpu, passedOver });
    }
    passedOver.push({ name, reason: p.reason ?? 'unavailable' });
    options.onSkip?.(name, p.reason ?? 'unavailable');
  }
  throw new BackendUnavailableError(
    'auto',
    `no backend is available: ${passedOver.map((x) => `${x.name}: ${x.reason}`).join('; ')}`,
  );
}
