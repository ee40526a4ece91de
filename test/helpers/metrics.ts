/**
 * Error measures and assertions with useful failure messages.
 *   relMax  = max_i |a_i - r_i| / max_i |r_i|
 *   relNorm = ||a - r||_2 / ||r||_2
 * (when the reference is all zeros the denominators fall back to 1, i.e. absolute error).
 */
export interface ErrReport {
  relMax: number;
  relNorm: number;
  worstIndex: number;
  worstActual: number;
  worstRef: number;
}

export function compareArrays(actual: ArrayLike<number>, ref: ArrayLike<number>): ErrReport {
  if (actual.length !== ref.length) throw new Error(`length mismatch: actual ${actual.length}, reference ${ref.length}`);
  let maxD = 0;
  let maxR = 0;
  let sD = 0;
  let sR = 0;
  let worst = -1;
  for (let i = 0; i < ref.length; i++) {
    const a = actual[i]!;
    const r = ref[i]!;
    let d: number;
    if (a === r) d = 0; // also equal infinities
    else d = Math.abs(a - r);
    if (Number.isNaN(d)) d = Infinity;
    if (worst < 0 || d > maxD) {
      maxD = Math.max(maxD, d);
      worst = i;
    }
    if (Number.isFinite(r)) {
      maxR = Math.max(maxR, Math.abs(r));
      sR += r * r;
    }
    sD += Number.isFinite(d) ? d * d : Infinity;
  }
  const relMax = maxD / (maxR > 0 ? maxR : 1);
  const relNorm = Math.sqrt(sD) / (sR > 0 ? Math.sqrt(sR) : 1);
  return {
    relMax,
    relNorm,
    worstIndex: worst,
    worstActual: worst >= 0 ? actual[worst]! : NaN,
    worstRef: worst >= 0 ? ref[worst]! : NaN,
  };
}

/** Largest errors seen per label, reported at the end of a file (for the lead's summary). */
const worstSeen = new Map<string, number>();

/** max_i |a_i − r_i| / max_i |r_i| (Infinity for a non-finite difference; lengths must match). */
export function relMax(actual: ArrayLike<number>, ref: ArrayLike<number>): number {
  return compareArrays(actual, ref).relMax;
}

/** max_i |a_i − r_i| (lengths must match). */
export function maxAbsDiff(actual: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (actual.length !== ref.length) throw new Error(`length mismatch: actual ${actual.length}, reference ${ref.length}`);
  let d = 0;
  for (let i = 0; i < ref.length; i++) d = Math.max(d, Math.abs(actual[i]! - ref[i]!));
  return d;
}

/**
 * Mean KL(ref || got) over the rows [from, n) of two [n, V] logit matrices (each row log-softmaxed in float64),
 * and the largest |logit difference| over those rows.
 */
export function rowsKl(got: Float32Array, ref: Float32Array, V: number, from = 0): { kl: number; maxErr: number } {
  if (got.length !== ref.length) throw new Error(`length mismatch: got ${got.length}, reference ${ref.length}`);
  const n = ref.length / V;
  let kl = 0;
  let maxErr = 0;
  for (let r = from; r < n; r++) {
    const x = ref.subarray(r * V, (r + 1) * V);
    const y = got.subarray(r * V, (r + 1) * V);
    let mx = -Infinity;
    let my = -Infinity;
    for (let j = 0; j < V; j++) {
      mx = Math.max(mx, x[j]!);
      my = Math.max(my, y[j]!);
      maxErr = Math.max(maxErr, Math.abs(x[j]! - y[j]!));
    }
    let sx = 0;
    let sy = 0;
    for (let j = 0; j < V; j++) {
      sx += Math.exp(x[j]! - mx);
      sy += Math.exp(y[j]! - my);
    }
    const lx = mx + Math.log(sx);
    const ly = my + Math.log(sy);
    for (let j = 0; j < V; j++) kl += Math.exp(x[j]! - lx) * (x[j]! - lx - (y[j]! - ly));
  }
  return { kl: kl / (n - from), maxErr };
}

export function recordErr(label: string, err: number): void {
  worstSeen.set(label, Math.max(worstSeen.get(label) ?? 0, err));
}

export function worstErrors(): Map<string, number> {
  return worstSeen;
}

/** Print the worst relative errors measured in this process (one line per label). */
export function printWorstErrors(file: string): void {
  if (worstSeen.size === 0) return;
  const parts = [...worstSeen.entries()].map(([k, v]) => `${k}=${v.toExponential(2)}`);
  process.stdout.write(`\nMAXERR ${file}: ${parts.join(' ')}\n`);
  worstSeen.clear();
}

/** Assert relMax(actual, ref) <= tol. `what` names the quantity; `metricLabel` groups it for MAXERR output. */
export function expectClose(actual: ArrayLike<number>, ref: ArrayLike<number>, tol: number, what: string, metricLabel?: string): ErrReport {
  const r = compareArrays(actual, ref);
  if (metricLabel) recordErr(metricLabel, r.relMax);
  if (!(r.relMax <= tol)) {
    throw new Error(
      `${what}: relative error max|Δ|/max|ref| = ${r.relMax.toExponential(3)} > ${tol.toExponential(1)} ` +
        `(‖Δ‖/‖ref‖ = ${r.relNorm.toExponential(3)}; worst at [${r.worstIndex}]: got ${r.worstActual}, expected ${r.worstRef}; n=${ref.length})`,
    );
  }
  return r;
}

/** Assert exact equality element by element (for copies, bit streams, integer data). */
export function expectExact(actual: ArrayLike<number>, ref: ArrayLike<number>, what: string): void {
  if (actual.length !== ref.length) throw new Error(`${what}: length ${actual.length}, expected ${ref.length}`);
  for (let i = 0; i < ref.length; i++) {
    if (actual[i] !== ref[i] && !(Number.isNaN(actual[i]) && Number.isNaN(ref[i]))) {
      let count = 0;
      for (let j = i; j < ref.length; j++) if (actual[j] !== ref[j]) count++;
      throw new Error(`${what}: differs at [${i}]: got ${actual[i]}, expected ${ref[i]} (${count} of ${ref.length} elements differ)`);
    }
  }
}

/** lse check: the same -Infinity pattern, and |Δ| <= tol * max(1, |ref|) elsewhere (an absolute error of e in
 *  lse is a relative error of ~e in the softmax normaliser exp(lse)). Returns the worst measured ratio. */
export function expectLseClose(actual: ArrayLike<number>, ref: ArrayLike<number>, tol: number, what: string, metricLabel?: string): number {
  if (actual.length !== ref.length) throw new Error(`${what}: length ${actual.length}, expected ${ref.length}`);
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const a = actual[i]!;
    const r = ref[i]!;
    if (r === -Infinity || a === -Infinity) {
      if (a !== r) throw new Error(`${what}: [${i}] got ${a}, expected ${r} (-Infinity exactly where no key is visible)`);
      continue;
    }
    const e = Math.abs(a - r) / Math.max(1, Math.abs(r));
    if (!(e <= tol)) throw new Error(`${what}: [${i}] got ${a}, expected ${r}: |Δ|/max(1,|ref|) = ${e.toExponential(3)} > ${tol.toExponential(1)}`);
    worst = Math.max(worst, e);
  }
  if (metricLabel) recordErr(metricLabel, worst);
  return worst;
}
