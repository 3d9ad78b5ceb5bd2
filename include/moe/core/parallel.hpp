// Thread helpers over OpenMP. Without OpenMP everything runs on the calling thread, with the
// same results (every parallel loop here writes disjoint outputs, so results do not depend on
// the thread count).
#pragma once

#include <algorithm>
#include <cstddef>

#if defined(_OPENMP)
#include <omp.h>
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

inline void set_num_threads(int n) noexcept {
#if defined(_OPENMP)
  if (n > 0) omp_set_num_threads(n);
#else
  (void)n;
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

}  // namespace moe
