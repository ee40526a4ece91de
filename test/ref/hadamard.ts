/**
 * Reference Walsh–Hadamard transform: the unnormalised Sylvester matrix H_n[i][j] = (-1)^popcount(i & j),
 * applied as a plain O(n^2) matrix-vector product per row, in double precision.
 */
export function popcount(x: number): number {
  let c = 0;
  while (x) {
    c += x & 1;
    x >>>= 1;
  }
  return c;
}

export function hadamardEntry(i: number, j: number): number {
  return popcount(i & j) % 2 === 0 ? 1 : -1;
}

/** y[rows, n] = scale * H_n x[rows, n]; returns a new Float64Array. */
export function refFwht(x: ArrayLike<number>, n: number, scale = 1): Float64Array {
  const rows = x.length / n;
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < n; i++) {
      let acc = 0;
      for (let j = 0; j < n; j++) acc += hadamardEntry(i, j) * x[r * n + j]!;
      out[r * n + i] = scale * acc;
    }
  }
  return out;
}

/** Recursive Sylvester construction H_{2n} = [[H, H], [H, -H]]: a second formulation for self-tests. */
export function sylvesterMatrix(n: number): number[][] {
  if (n === 1) return [[1]];
  const h = sylvesterMatrix(n / 2);
  const m = n / 2;
  const out: number[][] = [];
  for (let i = 0; i < n; i++) {
    const row: number[] = [];
    for (let j = 0; j < n; j++) {
      const s = i >= m && j >= m ? -1 : 1;
      row.push(s * h[i % m]![j % m]!);
    }
    out.push(row);
  }
  return out;
}
