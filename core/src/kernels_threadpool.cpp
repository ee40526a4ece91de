// kernels_threadpool.cpp — see kernels/threadpool.h.
#include "kernels/threadpool.h"

#include <algorithm>

#if HWKV_POOL_THREADS
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>
#endif

namespace hwkv {

#if HWKV_POOL_THREADS
namespace {
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}
}  // namespace

struct ThreadPool::Impl {
  // Written by the dispatcher before the generation bump (release), read by workers after (acquire).
  TaskFn fn = nullptr;
  void* ctx = nullptr;
  int64_t n_tasks = 0;
  std::atomic<int> spin_us{200};
  std::atomic<bool> stop{false};

  alignas(64) std::atomic<uint64_t> gen{0};      // bumped once per job
  alignas(64) std::atomic<int64_t> next{0};      // next task index of the current job
  // Job admission word: bits 16..63 the job's generation, bit 15 "closed", bits 0..14 the number of
  // workers admitted to the job and not yet done. A worker joins with a CAS only while the job is open;
  // the dispatcher closes it once every task has been claimed and then waits only for admitted workers,
  // so a worker that is asleep or preempted never delays a job it did not join.
  alignas(64) std::atomic<uint64_t> word{0};
  static constexpr uint64_t kClosed = 1u << 15;
  static constexpr uint64_t kCount = kClosed - 1;
  alignas(64) std::atomic<int> n_sleeping{0};    // workers blocked (or about to block) on cv

  std::mutex m;
  std::condition_variable cv;
  std::mutex dispatch_m;  // one dispatcher at a time
  std::vector<std::thread> threads;

  void drain(int tid) {
    const TaskFn f = fn;
    void* c = ctx;
    const int64_t n = n_tasks;
    for (;;) {
      const int64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) break;
      f(c, i, tid);
    }
  }

  void worker(int tid) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t g = gen.load(std::memory_order_acquire);
      if (g == seen) {
        const int budget = spin_us.load(std::memory_order_relaxed);
        if (budget > 0) {
          const auto t0 = std::chrono::steady_clock::now();
          const auto limit = std::chrono::microseconds(budget);
          for (unsigned it = 1;; ++it) {
            cpu_relax();
            g = gen.load(std::memory_order_acquire);
            if (g != seen) break;
            if ((it & 127) == 0 && std::chrono::steady_clock::now() - t0 > limit) break;
          }
        }
        if (g == seen) {
          std::unique_lock<std::mutex> lk(m);
          n_sleeping.fetch_add(1, std::memory_order_seq_cst);
          cv.wait(lk, [&] { return (g = gen.load(std::memory_order_seq_cst)) != seen; });
          n_sleeping.fetch_sub(1, std::memory_order_relaxed);
        }
      }
      seen = g;
      if (stop.load(std::memory_order_acquire)) return;
      uint64_t w = word.load(std::memory_order_acquire);
      for (;;) {
        if ((w >> 16) != g || (w & kClosed)) break;
        if (word.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
          drain(tid);
          word.fetch_sub(1, std::memory_order_acq_rel);
          break;
        }
      }
    }
  }

  void publish() {
    gen.fetch_add(1, std::memory_order_seq_cst);
    if (n_sleeping.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> lk(m); }
      cv.notify_all();
    }
  }
};

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) {
    const unsigned hc = std::thread::hardware_concurrency();
    n_threads = hc ? static_cast<int>(hc) : 1;
  }
  n_threads_ = std::min(std::max(n_threads, 1), 256);
  if (n_threads_ == 1) return;
  impl_ = new Impl();
  impl_->threads.reserve(static_cast<size_t>(n_threads_ - 1));
  for (int t = 1; t < n_threads_; ++t) impl_->threads.emplace_back([this, t] { impl_->worker(t); });
}

ThreadPool::~ThreadPool() {
  if (!impl_) return;
  impl_->stop.store(true, std::memory_order_release);
  impl_->publish();
  for (auto& th : impl_->threads) th.join();
  delete impl_;
}

void ThreadPool::set_spin_us(int us) {
  spin_us_ = std::max(us, 0);
  if (impl_) impl_->spin_us.store(spin_us_, std::memory_order_relaxed);
}

void ThreadPool::run(int64_t n_tasks, TaskFn fn, void* ctx) {
  if (n_tasks <= 0) return;
  if (!impl_ || n_tasks == 1) {
    for (int64_t i = 0; i < n_tasks; ++i) fn(ctx, i, 0);
    return;
  }
  Impl& p = *impl_;
  std::lock_guard<std::mutex> dl(p.dispatch_m);
  p.fn = fn;
  p.ctx = ctx;
  p.n_tasks = n_tasks;
  p.next.store(0, std::memory_order_relaxed);
  const uint64_t g = p.gen.load(std::memory_order_relaxed) + 1;
  p.word.store(g << 16, std::memory_order_release);
  p.publish();  // gen becomes g
  p.drain(0);
  // Every task is claimed: close admission, then wait for the admitted workers. Yield now and then: on
  // an oversubscribed machine a preempted worker may need this core to finish its task.
  p.word.fetch_or(Impl::kClosed, std::memory_order_acq_rel);
  for (unsigned it = 1; (p.word.load(std::memory_order_acquire) & Impl::kCount) != 0; ++it) {
    cpu_relax();
    if ((it & 1023) == 0) std::this_thread::yield();
  }
}

#else  // no threads: serial

struct ThreadPool::Impl {};

ThreadPool::ThreadPool(int) { n_threads_ = 1; }
ThreadPool::~ThreadPool() { (void)impl_; }
void ThreadPool::set_spin_us(int us) { spin_us_ = std::max(us, 0); }
void ThreadPool::run(int64_t n_tasks, TaskFn fn, void* ctx) {
  for (int64_t i = 0; i < n_tasks; ++i) fn(ctx, i, 0);
}

#endif

ThreadPool& default_pool() {
  static ThreadPool pool(0);
  return pool;
}

}  // namespace hwkv
