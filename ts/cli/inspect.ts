/**
 * `hogwild inspect`: what this machine offers (backends, CPU features, GPU) and why a backend is not used.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { listBackends } from '../backend/select.js';
import type { BackendStatus } from '../backend/types.js';

export interface InspectReport {
  version: string;
  node: string;
  platform: string;
  cpu: { model: string; cores: number; features: string[] };
  memoryBytes: number;
  gpus: { name: string; memoryBytes: number; driver?: string }[];
  backends: BackendStatus[];
  selectedByAuto: string | null;
  env: { HOGWILD_BACKEND?: string };
}

const INTERESTING = ['sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx_vnni', 'neon', 'asimd'];

function cpuFeatures(): string[] {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const line = info.split('\n').find((l) => l.startsWith('flags') || l.startsWith('Features'));
    if (!line) return [];
    const flags = new Set(line.split(':')[1]!.trim().split(/\s+/));
    return INTERESTING.filter((f) => flags.has(f));
  } catch {
    return [];
  }
}

/** GPUs seen by the driver (nvidia-smi), independent of whether our CUDA library is built. */
function gpusFromDriver(): InspectReport['gpus'] {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=name,memory.total,driver_version', '--format=csv,noheader,nounits'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5000,
    });
    return out
      .trim()
      .split('\n')
      .filter((l) => l.trim().length > 0)
      .map((l) => {
        const [name, mem, driver] = l.split(',').map((s) => s.trim());
        return { name: name ?? 'unknown', memoryBytes: Number(mem) * 1024 * 1024, driver };
      });
  } catch {
    return [];
  }
}

export async function inspect(version: string): Promise<InspectReport> {
  const backends = await listBackends();
  const env = process.env.HOGWILD_BACKEND;
  let selected: string | null = null;
  if (env && backends.some((b) => b.name === env)) selected = backends.find((b) => b.name === env)!.available ? env : null;
  else selected = backends.find((b) => b.available)?.name ?? null;
  const cpus = os.cpus();
  return {
    version,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpu: { model: cpus[0]?.model ?? 'unknown', cores: cpus.length, features: cpuFeatures() },
    memoryBytes: os.totalmem(),
    gpus: gpusFromDriver(),
    backends,
    selectedByAuto: selected,
    env: env ? { HOGWILD_BACKEND: env } : {},
  };
}

function gib(n: number): string {
  return `${(n / 1024 ** 3).toFixed(1)} GiB`;
}

export function formatInspect(r: InspectReport): string {
  const lines: string[] = [];
  lines.push(`hogwild-kv ${r.version}  (node ${r.node}, ${r.platform})`);
  lines.push(`CPU     ${r.cpu.model}, ${r.cpu.cores} threads, ${gib(r.memoryBytes)} RAM`);
  lines.push(`        features: ${r.cpu.features.join(' ') || '(unknown)'}`);
  if (r.gpus.length === 0) lines.push('GPU     none found (nvidia-smi not available or no NVIDIA GPU)');
  for (const g of r.gpus) lines.push(`GPU     ${g.name}, ${gib(g.memoryBytes)}${g.driver ? `, driver ${g.driver}` : ''}`);
  lines.push('');
  lines.push('Backends (auto order):');
  for (const b of r.backends) {
    const mark = b.available ? 'yes' : 'no ';
    const d = b.details as Record<string, unknown>;
    const extra: string[] = [];
    if (typeof d.simd === 'string') extra.push(`simd ${d.simd}`);
    if (typeof d.device === 'string') extra.push(String(d.device));
    if (typeof d.memory_bytes === 'number') extra.push(gib(d.memory_bytes));
    lines.push(`  ${b.name.padEnd(7)} ${mark}  ${b.available ? extra.join(', ') : b.reason}`);
  }
  lines.push('');
  lines.push(`auto selects: ${r.selectedByAuto ?? 'nothing (no backend available)'}${r.env.HOGWILD_BACKEND ? ` (HOGWILD_BACKEND=${r.env.HOGWILD_BACKEND})` : ''}`);
  return lines.join('\n');
}
