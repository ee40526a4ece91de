/**
 * Hogwild! cache layouts as data: which blocks each worker sees, in which order.
 *
 * A view is a list of block references:
 *   'common'          the shared block: the prompt, then (when the layout merges) every finished step
 *   'header:<id>'     a small shared block holding fixed text (prefilled once, in context)
 *   'worker:<j>'      worker j's write block (its current step, or its whole workspace when nothing merges)
 *   'self'            the worker's own write block; every view ends with it
 * Keys stay at block-local positions; each worker's queries are rotated per block by the core, so a block
 * can sit at a different offset in every view and nothing is re-rotated on read.
 */
import { InvalidArgumentError } from '../errors.js';

export type BlockRef = 'common' | 'self' | `worker:${number}` | `header:${string}`;

export interface LayoutSpec {
  /** Shown in results and the CLI. */
  name: string;
  /**
   * true: a finished step is moved into the common block (keys re-positioned by the merge) and the worker's
   * block starts empty; false: steps stay in the worker's block, which grows for the whole run.
   */
  mergeFinishedSteps: boolean;
  /** One view per worker for a given worker count (each ends with 'self'), or a fixed list of views. */
  views: ((workers: number) => BlockRef[][]) | BlockRef[][];
  /** Default text of each header block used by the views (overridable by `HogwildOptions.headers`). */
  headers?: Record<string, string>;
  /** Text appended to the prompt in the common block before the first finished step (e.g. a heading). */
  historyHeading?: string;
}

const others = (w: number, n: number): BlockRef[] => {
  const out: BlockRef[] = [];
  for (let j = 0; j < n; j++) if (j !== w) out.push(`worker:${j}`);
  return out;
};

/** Common history, then the other workers' current steps, then the own current step (the default). */
export const COMBINED: LayoutSpec = {
  name: 'combined',
  mergeFinishedSteps: true,
  views: (n) => Array.from({ length: n }, (_, w): BlockRef[] => ['common', 'header:others', ...others(w, n), 'header:own', 'self']),
  headers: {
    others: '\n\n## Steps the other workers are writing right now\n\n',
    own: '\n\n## My step in progress\n\n',
  },
  historyHeading: '## Finished steps, oldest first\n\n',
};

/** The prompt, then every other worker's whole workspace, then the own workspace; nothing is merged. */
export const CONTIGUOUS: LayoutSpec = {
  name: 'contiguous',
  mergeFinishedSteps: false,
  views: (n) => Array.from({ length: n }, (_, w): BlockRef[] => ['common', ...others(w, n), 'header:own', 'self']),
  headers: { own: '\n\n## My own workspace\n\n' },
};

/** Only finished steps are shared (step-wise synchrony): common history, then the own current step. */
export const INTERLEAVED: LayoutSpec = {
  name: 'interleaved',
  mergeFinishedSteps: true,
  views: (n) => Array.from({ length: n }, (): BlockRef[] => ['common', 'header:own', 'self']),
  headers: { own: '\n\n## My step in progress\n\n' },
  historyHeading: '## Finished steps, oldest first\n\n',
};

export const LAYOUTS: Readonly<Record<string, LayoutSpec>> = { combined: COMBINED, contiguous: CONTIGUOUS, interleaved: INTERLEAVED };

export type LayoutName = 'combined' | 'contiguous' | 'interleaved';

export function resolveLayout(layout: LayoutName | LayoutSpec | undefined): LayoutSpec {
  if (layout === undefined) return COMBINED;
  if (typeof layout === 'string') {
    const l = LAYOUTS[layout];
    if (!l) throw new InvalidArgumentError(`unknown layout '${layout}' (combined, contiguous, interleaved, or a LayoutSpec)`);
    return l;
  }
  if (!layout || typeof layout !== 'object' || typeof layout.name !== 'string') throw new InvalidArgumentError('layout must be a name or a LayoutSpec');
  return layout;
}

/** The views of a layout for `workers` workers, checked: every view ends with 'self', no block twice, refs valid. */
export function layoutViews(layout: LayoutSpec, workers: number): BlockRef[][] {
  const views = typeof layout.views === 'function' ? layout.views(workers) : layout.views;
  if (!Array.isArray(views) || views.length !== workers) {
    throw new InvalidArgumentError(`layout '${layout.name}' gives ${Array.isArray(views) ? views.length : 'no'} views for ${workers} workers`);
  }
  views.forEach((v, w) => {
    if (!Array.isArray(v) || v.length === 0 || v[v.length - 1] !== 'self') throw new InvalidArgumentError(`layout '${layout.name}': view of worker ${w} must end with 'self'`);
    const seen = new Set<string>();
    for (const r of v) {
      const key = r === 'self' ? `worker:${w}` : r;
      if (seen.has(key)) throw new InvalidArgumentError(`layout '${layout.name}': view of worker ${w} lists ${r} twice`);
      seen.add(key);
      if (r === 'common' || r === 'self') continue;
      const m = /^worker:(\d+)$/.exec(r);
      if (m) {
        const j = Number(m[1]);
        if (j >= workers) throw new InvalidArgumentError(`layout '${layout.name}': view of worker ${w} refers to worker ${j} of ${workers}`);
        continue;
      }
      if (/^header:.+$/.test(r)) continue;
      throw new InvalidArgumentError(`layout '${layout.name}': unknown block reference '${String(r)}'`);
    }
  });
  return views;
}

/** Header ids used by these views, in order of first appearance (view 0 first). */
export function layoutHeaders(views: BlockRef[][]): string[] {
  const out: string[] = [];
  for (const v of views) for (const r of v) if (r.startsWith('header:') && !out.includes(r.slice(7))) out.push(r.slice(7));
  return out;
}
