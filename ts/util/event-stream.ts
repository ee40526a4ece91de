/**
 * A running task that emits events and ends with a result: iterate it (`for await`) for the events, or await
 * `result`. The one implementation behind `Generation` (model.generate) and `HogwildSolve` (model.hogwild).
 */
import { AbortError } from '../errors.js';

export interface EventStreamOptions {
  /** Aborting rejects `result` at once with this message (the task finishes in the background). */
  signal?: AbortSignal;
  abortMessage?: string;
  /** true: when the task ends with an AbortError, events still queued are dropped and iteration throws now. */
  dropQueuedOnAbort?: boolean;
}

export class EventStream<E, R> implements AsyncIterable<E> {
  readonly result: Promise<R>;
  private readonly queue: E[] = [];
  private waiter: (() => void) | null = null;
  private done = false;
  private error: unknown = null;
  private readonly dropOnAbort: boolean;

  /** @internal */
  constructor(run: (emit: (e: E) => void) => Promise<R>, opts: EventStreamOptions = {}) {
    const { signal } = opts;
    this.dropOnAbort = opts.dropQueuedOnAbort ?? false;
    this.result = new Promise<R>((resolve, reject) => {
      let settled = false;
      const finish = (e: unknown, r?: R) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        this.done = true;
        if (e !== null) {
          this.error = e;
          if (this.dropOnAbort && e instanceof AbortError) this.queue.length = 0;
          reject(e);
        } else {
          resolve(r!);
        }
        this.wake();
      };
      const onAbort = () => finish(new AbortError(opts.abortMessage ?? 'aborted'));
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) onAbort();
      run((e) => {
        if (settled) return;
        this.queue.push(e);
        this.wake();
      }).then(
        (r) => finish(null, r),
        (e: unknown) => finish(e),
      );
    });
    // an un-awaited result must not become an unhandled rejection when the iterator is used
    this.result.catch(() => undefined);
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<E> {
    for (;;) {
      if (this.dropOnAbort && this.error instanceof AbortError) throw this.error;
      if (this.queue.length > 0) {
        yield this.queue.shift()!;
        continue;
      }
      if (this.done) {
        if (this.error) throw this.error;
        return;
      }
      await new Promise<void>((r) => (this.waiter = r));
    }
  }
}
