// Threads for the kernels: torch's thread count, dynamic scheduling.
//
// at::parallel_for gives each thread one equal range (static). On a shared machine one thread
// is often descheduled for a while and the other then waits at the barrier; handing out small
// chunks on demand lets the running thread take over the rest. OpenMP here is the runtime torch
// loaded (libgomp.so.1 resolves to torch's copy), so torch.set_num_threads applies.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

namespace equiscale {

// Calls f(begin, end) on disjoint ranges covering [0, n), each of at least `grain` items (except
// the last), in parallel when there is more than one grain's worth of work per thread.
template <typename F>
void parallel_chunks(int64_t n, int64_t grain, const F& f) {
  if (n <= 0) return;
  const int threads = at::get_num_threads();
  grain = std::max<int64_t>(1, grain);
  if (threads <= 1 || n < 2 * grain || at::in_parallel_region()) {
    f(0, n);
    return;
  }
  // about 8 chunks per thread, never below the grain
  const int64_t chunk = std::max(grain, (n + 8 * threads - 1) / (8 * threads));
  const int64_t chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t c = 0; c < chunks; ++c) f(c * chunk, std::min(n, (c + 1) * chunk));
}

}  // namespace equiscale
