/**
 * HogwildCache: the shared attention cache of one Hogwild! run, at the token level (no tokenizer needed).
 *
 * Blocks in the model's block store (or a store of its own): one common block, one write block per worker,
 * and one block per header. Every worker's view is resolved from the layout (see layout.ts). One `step()`
 * is ONE batched model forward of all workers: per layer, every worker's new K/V is written into its block
 * first, then every worker attends over its view, so a worker sees what the others write in the same call.
 *
 * A token mirror of every block is kept, so the cache can always be laid out as plain token sequences
 * (transcripts, the final-answer prompt, tests against a materialized reference).
 */
import { DisposedError, InvalidArgumentError } from '../errors.js';
import type { CoreKvStore } from '../backend/backend.js';
import type { ForwardSequence, LogitsMode, ModelRuntime } from '../model/runtime.js';
import { layoutHeaders, layoutViews, resolveLayout, type BlockRef, type LayoutName, type LayoutSpec } from './layout.js';

export interface HogwildCacheOptions {
  workers: number;
  layout?: LayoutName | LayoutSpec;
  /** Store to hold the blocks; defaults to the runtime's own store. */
  store?: CoreKvStore;
}

export type HeaderPrefill = 'in-context' | 'standalone';

export class HogwildCache {
  readonly workers: number;
  readonly layout: LayoutSpec;
  readonly views: BlockRef[][];
  readonly headerIds: string[];
  readonly store: CoreKvStore;
  /** Block id of the common block. */
  readonly common: number;
  /** Block id of each worker's write block. */
  readonly own: number[];
  /** Block id of each header block. */
  readonly headers: Map<string, number>;
  private readonly runtime: ModelRuntime;
  private readonly mirror = new Map<number, number[]>();
  private disposed = false;
  /** Batched forward calls made through step() (prefill excluded). */
  forwardPasses = 0;

  constructor(runtime: ModelRuntime, options: HogwildCacheOptions) {
    const W = options.workers;
    if (!Number.isInteger(W) || W < 1 || W > 64) throw new InvalidArgumentError(`workers must be an integer in [1, 64], got ${String(W)}`);
    this.runtime = runtime;
    this.workers = W;
    this.layout = resolveLayout(options.layout);
    this.views = layoutViews(this.layout, W);
    this.headerIds = layoutHeaders(this.views);
    this.store = options.store ?? runtime.store;
    const made: number[] = [];
    try {
      const mk = () => {
        const b = this.store.createBlock();
        made.push(b);
        this.mirror.set(b, []);
        return b;
      };
      this.common = mk();
      this.own = Array.from({ length: W }, mk);
      this.headers = new Map(this.headerIds.map((h) => [h, mk()]));
    } catch (e) {
      for (const b of made) this.store.freeBlock(b);
      throw e;
    }
  }

  /**
   * Create a cache under the model's lock (blocks are created between forwards, so a forward still in flight,
   * e.g. of an aborted generation, is waited for). The constructor creates them at once.
   */
  static create(runtime: ModelRuntime, options: HogwildCacheOptions): Promise<HogwildCache> {
    return runtime.exclusive(() => new HogwildCache(runtime, options));
  }

  private live(): void {
    if (this.disposed) throw new DisposedError('hogwild cache');
  }

  private resolve(w: number, r: BlockRef): number {
    if (r === 'common') return this.common;
    if (r === 'self') return this.own[w]!;
    if (r.startsWith('worker:')) return this.own[Number(r.slice(7))]!;
    return this.headers.get(r.slice(7))!;
  }

  /** Block ids of worker w's view (the last one is its write block). */
  view(w: number): number[] {
    return this.views[w]!.map((r) => this.resolve(w, r));
  }

  /** Tokens held by a block (a copy). */
  blockTokens(block: number): number[] {
    return (this.mirror.get(block) ?? []).slice();
  }

  /** Worker w's view laid out as one token sequence. */
  viewTokens(w: number): number[] {
    return this.view(w).flatMap((b) => this.mirror.get(b)!);
  }

  /** Length of worker w's view in tokens. */
  viewLength(w: number): number {
    return this.view(w).reduce((s, b) => s + this.mirror.get(b)!.length, 0);
  }

  /**
   * Fill the common block with the prompt and the header blocks with their text. Headers are prefilled in
   * context (each after the blocks that precede it in the first view that lists it, all worker blocks being
   * empty then), or standalone (each from position 0 with no context, as one reference script does).
   */
  async prefill(
    common: ReadonlyArray<number>,
    headers: Readonly<Record<string, ReadonlyArray<number>>>,
    options: { chunk?: number; signal?: AbortSignal; headerPrefill?: HeaderPrefill } = {},
  ): Promise<{ tokens: number; forwards: number }> {
    this.live();
    const chunk = options.chunk ?? 256;
    let tokens = 0;
    let forwards = 0;
    const feed = async (view: number[], ids: ReadonlyArray<number>) => {
      for (let i = 0; i < ids.length; i += chunk) {
        const part = ids.slice(i, i + chunk);
        await this.runtime.forward([{ view, tokens: part }], 'none', options.signal, this.store);
        this.mirror.get(view[view.length - 1]!)!.push(...part);
        tokens += part.length;
        forwards++;
      }
    };
    await feed([this.common], common);
    for (const h of this.headerIds) {
      const ids = headers[h];
      if (!ids) throw new InvalidArgumentError(`no text for header block '${h}'`);
      const block = this.headers.get(h)!;
      let view = [block];
      if ((options.headerPrefill ?? 'in-context') === 'in-context') {
        const w = this.views.findIndex((v) => v.includes(`header:${h}`));
        const refs = this.views[w]!;
        view = refs.slice(0, refs.indexOf(`header:${h}`) + 1).map((r) => this.resolve(w, r));
      }
      await feed(view, ids);
    }
    return { tokens, forwards };
  }

  /**
   * One batched forward of all workers: worker w's `feeds[w]` (>= 1 token) are written into its block and
   * attended from its view. Returns logits: one row per worker ('last') or per fed token ('all', in worker order).
   */
  async step(feeds: ReadonlyArray<ReadonlyArray<number>>, logits: LogitsMode = 'last', signal?: AbortSignal, reuse = false): Promise<Float32Array> {
    const out = await this.stepWith(feeds, (seqs) => this.runtime.forward(seqs, logits, signal, this.store, reuse ? this.stepLogits : undefined));
    if (reuse) this.stepLogits = out;
    return out;
  }

  /** step()'s logits buffer, rewritten by the next step(reuse = true) (the run consumes each before the next). */
  private stepLogits: Float32Array | undefined;

  /**
   * step() returning each worker's greedy pick (its last row's argmax, ties to the lowest id) instead of
   * logits: the backend picks (ModelRuntime.forwardArgmax), no logits come back.
   */
  async stepArgmax(feeds: ReadonlyArray<ReadonlyArray<number>>, signal?: AbortSignal): Promise<Int32Array> {
    return this.stepWith(feeds, async (seqs) => (await this.runtime.forwardArgmax(seqs, 'last', signal, this.store)).ids);
  }

  private async stepWith<T>(feeds: ReadonlyArray<ReadonlyArray<number>>, run: (seqs: ForwardSequence[]) => Promise<T>): Promise<T> {
    this.live();
    if (feeds.length !== this.workers) throw new InvalidArgumentError(`step needs ${this.workers} token lists, got ${feeds.length}`);
    feeds.forEach((f, w) => {
      if (!f || f.length < 1) throw new InvalidArgumentError(`worker ${w} must be fed at least one token per step`);
    });
    const seqs = feeds.map((tokens, w) => ({ view: this.view(w), tokens: tokens as number[] }));
    const out = await run(seqs);
    // the forward succeeded: every write block grew (on failure the core leaves the store unchanged)
    feeds.forEach((f, w) => this.mirror.get(this.own[w]!)!.push(...f));
    this.forwardPasses++;
    return out;
  }

  /**
   * Worker w finished its step. With a merging layout the step is appended to the common block (keys rotated
   * by +len(common) by the store, never recomputed) and the worker's block is emptied. Returns the tokens
   * that moved (empty when the layout does not merge). Runs under the model's lock, between forwards.
   */
  async finishStep(w: number): Promise<number[]> {
    this.live();
    const own = this.own[w]!;
    if (!this.layout.mergeFinishedSteps) return [];
    return this.runtime.exclusive(() => {
      const moved = this.mirror.get(own)!;
      if (moved.length > 0) this.store.merge(this.common, own, this.runtime.config.rope);
      this.store.truncate(own, 0);
      this.mirror.get(this.common)!.push(...moved);
      this.mirror.set(own, []);
      return moved;
    });
  }

  /** True when every block's length in the store equals its token mirror (a cheap consistency check). */
  consistent(): boolean {
    if (this.disposed) return false;
    for (const [b, ids] of this.mirror) if (this.store.blockLength(b) !== ids.length) return false;
    return true;
  }

  /** Every block id this cache owns. */
  blocks(): number[] {
    return [...this.mirror.keys()];
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Free every block: now, or (if a forward of someone else is in flight) under the model's lock after it. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const blocks = [...this.mirror.keys()];
    this.mirror.clear();
    const later: number[] = [];
    for (const b of blocks) {
      try {
        this.store.freeBlock(b);
      } catch {
        later.push(b); // store busy (a forward in flight) or already gone (model disposed first)
      }
    }
    if (later.length > 0) {
      this.runtime
        .exclusive(() => {
          for (const b of later) this.store.freeBlock(b);
        })
        .catch(() => undefined);
    }
  }
}
