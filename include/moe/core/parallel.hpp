// Thread helpers over OpenMP. Without OpenMP everything runs on the calling thread, with the
// same results (every parallel loop here writes disjoint outputs, so results do not depend on
// the thread count).
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/limits.hpp"

#include <algorithm>
#include <cstddef>

#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__linux__)
#include <sched.h>
#endif

namespace moe {

// Number of threads a parallel region will use.
inline int max_threads() noexcept {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// Sets the threads of the following parallel regions: 1 <= n <= limits::kMaxThreads, else
// kInvalidArgument (libgomp ends the process when it cannot create a thread, so an absurd count
// is refused here rather than there).
inline void set_num_threads(int n) {
  require(n >= 1 && n <= limits::kMaxThreads, ErrorCode::kInvalidArgument, "thread count must be in [1, {}], got {}",
          limits::kMaxThreads, n);
#if defined(_OPENMP)
  omp_set_num_threads(n);
#endif
}

// Calls f(begin, end) on contiguous chunks of [0, n) split across the OpenMP team; each chunk
// holds at least `grain` items so small loops stay on one thread.
template <class F>
void parallel_for_chunks(std::size_t n, std::size_t grain, F&& f) {
  if (n == 0) return;
  grain = std::max<std::size_t>(grain, 1);
  const std::size_t max_chunks = (n + grain - 1) / grain;
  const auto n_threads = static_cast<std::size_t>(std::min<std::size_t>(max_threads(), max_chunks));
  if (n_threads <= 1) {
    f(std::size_t{0}, n);
    return;
  }
#if defined(_OPENMP)
#pragma omp parallel num_threads(static_cast<int>(n_threads))
  {
    const auto t = static_cast<std::size_t>(omp_get_thread_num());
    const auto nt = static_cast<std::size_t>(omp_get_num_threads());
    const std::size_t begin = n * t / nt;
    const std::size_t end = n * (t + 1) / nt;
    if (begin < end) f(begin, end);
  }
#else
  f(std::size_t{0}, n);
#endif
}

// Pins OpenMP thread i of the team (max_threads() threads) to the i-th CPU this process may run
// on, wrapping around when there are more threads than CPUs; pinned threads keep their caches
// and make timings repeatable (benchmarks, long-running servers). Linux only: returns false
// elsewhere, or if the affinity calls fail. The calling thread is pinned too (it is thread 0), so
// threads it creates later inherit that one CPU: call this after choosing the thread count.
inline bool pin_threads() {
#if defined(__linux__)
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return false;
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  }
  if (cpus.empty()) return false;
  bool ok = true;
  auto pin = [&](int thread) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus[static_cast<std::size_t>(thread) % cpus.size()], &one);
    return sched_setaffinity(0, sizeof(one), &one) == 0;
  };
#if defined(_OPENMP)
#pragma omp parallel reduction(&& : ok)
  ok = pin(omp_get_thread_num()) && ok;
#else
  ok = pin(0);
#endif
  return ok;
#else
  return false;
#endif
}

}  // namespace moe
