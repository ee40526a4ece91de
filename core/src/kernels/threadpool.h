// threadpool.h — fixed-size worker pool with a low-latency parallel_for, for per-layer kernel dispatch.
//
// Model: the pool owns (n_threads - 1) workers; the calling thread is thread 0 and always takes part, so
// a pool of size 1 runs everything inline with no synchronisation at all. A dispatch publishes a job
// (function pointer + context + task count) by bumping a generation counter; workers spin on that
// counter for a while (spin_us, default 200 µs — long enough to bridge the serial gaps between the
// matmuls of one decode step) and then sleep on a condition variable. Tasks are handed out with one
// atomic fetch_add each, so uneven tasks and preempted threads (2-core machines that also run a
// compiler) balance themselves. parallel_for returns when every task has finished.
//
// Not re-entrant: fn must not call parallel_for on the same pool. One dispatching thread at a time
// (the engine's thread); concurrent parallel_for calls from different threads are serialised by a mutex.
//
// Under emscripten without pthreads (no __EMSCRIPTEN_PTHREADS__) the pool compiles to a serial loop
// (size() == 1), chosen at compile time: HWKV_POOL_THREADS is 0 there.
#ifndef HWKV_KERNELS_THREADPOOL_H
#define HWKV_KERNELS_THREADPOOL_H

#include <cstdint>
#include <type_traits>

#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
#define HWKV_POOL_THREADS 0
#else
#define HWKV_POOL_THREADS 1
#endif

namespace hwkv {

class ThreadPool {
 public:
  // fn(ctx, task, thread): task in [0, n_tasks), thread in [0, size()) (0 = the caller), stable for
  // the duration of one task (use it to index per-thread scratch).
  using TaskFn = void (*)(void* ctx, int64_t task, int thread);

  // n_threads: total threads including the caller; <= 0 means std::thread::hardware_concurrency()
  // (or 1 if unknown). Clamped to [1, 256]. Always 1 without thread support.
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Microseconds a worker busy-waits for the next job before sleeping (0 = sleep at once).
  void set_spin_us(int us);
  int spin_us() const { return spin_us_; }

  // Runs fn(ctx, i, thread) for every i in [0, n_tasks) and returns when all are done. n_tasks <= 0
  // is a no-op; n_tasks == 1 (or a pool of size 1) runs inline on the caller.
  void run(int64_t n_tasks, TaskFn fn, void* ctx);

  // Convenience wrapper: f(int64_t task, int thread).
  template <class F>
  void parallel_for(int64_t n_tasks, F&& f) {
    using Fd = typename std::remove_reference<F>::type;
    run(n_tasks, [](void* c, int64_t i, int t) { (*static_cast<Fd*>(c))(i, t); },
        const_cast<void*>(static_cast<const void*>(&f)));
  }

  struct Impl;

 private:
  int n_threads_ = 1;
  int spin_us_ = 200;
  Impl* impl_ = nullptr;
};

// Process-wide default pool (created on first use with hardware concurrency threads).
ThreadPool& default_pool();

}  // namespace hwkv

#endif
