// Threads for the kernels: torch's thread count, chunks handed out on demand.
//
// On a shared machine one of our threads is often descheduled for several milliseconds. A
// static split (at::parallel_for) then waits for its half, and any OpenMP region ends with a
// barrier that waits for a late thread even when it has nothing left to do. Two schemes:
//
// * parallel_chunks: OpenMP, dynamic schedule (the running thread takes over the chunks of a
//   late one; the closing barrier remains). For kernels that call BLAS: inside an OpenMP region
//   MKL runs single-threaded instead of opening a team per call.
// * ChunkPool::run: our own workers and no join barrier. The caller takes part and returns as
//   soon as every chunk is done; a worker that wakes late finds no chunk and sleeps again, so
//   only a chunk already claimed by a descheduled worker is waited for. For kernels that call
//   nothing threaded (BLAS must not be called from these workers).
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include <pthread.h>
#include <vector>

namespace equiscale {

inline int64_t chunk_size(int64_t n, int64_t grain, int threads) {
  // about 8 chunks per thread, never below the grain
  return std::max(std::max<int64_t>(1, grain), (n + 8 * threads - 1) / (8 * threads));
}

// Calls f(begin, end) on disjoint ranges covering [0, n), each of at least `grain` items (except
// the last), in parallel when there is more than one grain's worth of work per thread.
template <typename F>
void parallel_chunks(int64_t n, int64_t grain, const F& f) {
  if (n <= 0) return;
  const int threads = at::get_num_threads();
  if (threads <= 1 || n < 2 * std::max<int64_t>(1, grain) || at::in_parallel_region()) {
    f(0, n);
    return;
  }
  const int64_t chunk = chunk_size(n, grain, threads);
  const int64_t chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t c = 0; c < chunks; ++c) f(c * chunk, std::min(n, (c + 1) * chunk));
}

class ChunkPool {
 public:
  using Job = std::function<void(int64_t, int64_t)>;

  // One pool per process, never destroyed (its workers block forever at exit). A forked child
  // (e.g. a DataLoader worker) has none of the parent's workers: it starts with a fresh state.
  static ChunkPool& instance() {
    static std::once_flag once;
    std::call_once(once, [] {
      current() = new ChunkPool();
      pthread_atfork(nullptr, nullptr, [] { current() = new ChunkPool(); });
    });
    return *current();
  }

  // f(begin, end) over [0, n) in chunks of about n / (8 threads), at least `grain` each.
  void run(int64_t n, int64_t grain, const Job& f) {
    if (n <= 0) return;
    const int threads = at::get_num_threads();
    if (threads <= 1 || n < 2 * std::max<int64_t>(1, grain) || at::in_parallel_region()) {
      f(0, n);
      return;
    }
    std::lock_guard<std::mutex> one_job(run_mutex_);
    const int64_t chunk = chunk_size(n, grain, threads);
    const int64_t chunks = (n + chunk - 1) / chunk;
    uint32_t gen;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (int(workers_.size()) < threads - 1) {
        const int index = int(workers_.size());
        workers_.emplace_back([this, index] { worker(index); });
      }
      gen = ++gen_;
      job_ = &f;
      n_ = n;
      chunk_ = chunk;
      chunks_ = chunks;
      active_ = threads - 1;
      done_.store(0, std::memory_order_relaxed);
      next_.store(uint64_t(gen) << 32, std::memory_order_release);
    }
    wake_.notify_all();
    claim(gen, f, n, chunk, chunks);
    // A worker still holds a chunk: yield rather than sleep. On a busy machine a sleeping caller
    // waits milliseconds for the scheduler to wake it (measured: the 2-thread harmonics fell
    // from 1.09x to 0.79x sphericart), while a yield hands the core to the worker if they share it.
    while (done_.load(std::memory_order_acquire) < chunks) std::this_thread::yield();
  }

 private:
  ChunkPool() = default;

  // The pool in use. In a forked child the parent's threads do not exist and its locks may be
  // held by them: the child gets a new pool (the old one is leaked on purpose; destroying
  // joinable std::threads would abort).
  static ChunkPool*& current() {
    static ChunkPool* pool = nullptr;
    return pool;
  }

  // Runs chunks of generation `gen` until none is left (or a newer job has started).
  void claim(uint32_t gen, const Job& f, int64_t n, int64_t chunk, int64_t chunks) {
    for (;;) {
      uint64_t cur = next_.load(std::memory_order_acquire);
      do {
        if (uint32_t(cur >> 32) != gen || int64_t(cur & 0xffffffffu) >= chunks) return;
      } while (!next_.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel));
      const int64_t c = int64_t(cur & 0xffffffffu);
      f(c * chunk, std::min(n, (c + 1) * chunk));
      done_.fetch_add(1, std::memory_order_release);
    }
  }

  void worker(int index) {
    uint32_t seen = 0;
    for (;;) {
      const Job* job;
      int64_t n, chunk, chunks;
      uint32_t gen;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return gen_ != seen; });
        seen = gen = gen_;
        if (index >= active_) continue;  // fewer threads asked for than workers exist
        job = job_;
        n = n_;
        chunk = chunk_;
        chunks = chunks_;
      }
      // the job outlives every chunk claimed under its generation (run waits for them)
      claim(gen, *job, n, chunk, chunks);
    }
  }

  std::mutex run_mutex_, mutex_;
  std::condition_variable wake_;
  std::vector<std::thread> workers_;
  const Job* job_ = nullptr;
  int64_t n_ = 0, chunk_ = 1, chunks_ = 0;
  int active_ = 0;
  uint32_t gen_ = 0;
  std::atomic<uint64_t> next_{0};  // (generation << 32) | next chunk
  std::atomic<int64_t> done_{0};
};

}  // namespace equiscale
