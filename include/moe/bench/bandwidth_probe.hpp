// The host's read bandwidth, the limit of bandwidth-bound kernels and of decode on the CPU
// (shared by bench_kernels, bench_model and moe-bench).
#pragma once

#include <moe/moe.hpp>

#include <xsimd/xsimd.hpp>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include <chrono>
#include <vector>

namespace moe::bench {

// Read bandwidth: every thread sums its contiguous share of a buffer (first-touched by the same
// thread), reading 4 sub-ranges of it at once with one vector accumulator each: on this class of
// machine 4 concurrent streams per core read faster than 1 (more misses in flight) and about as
// fast as 8, so the limit is not understated.
class BandwidthProbe {
  using Batch = xsimd::batch<float, xsimd::default_arch>;


 public:
  explicit BandwidthProbe(moe::index_t bytes)
      : n_blocks_(bytes / sizeof(float) / kBlock), buf_(n_blocks_ * kBlock) {
    float* data = buf_.data();
    moe::parallel_for_chunks(n_blocks_, 1, [&](moe::index_t b, moe::index_t e) {
      for (moe::index_t i = b * kBlock; i < e * kBlock; ++i) data[i] = 1.0f;
    });
  }
  moe::index_t bytes() const { return buf_.size() * sizeof(float); }

  // Seconds for one pass over the buffer.
  double sample() const {
    const auto start = std::chrono::steady_clock::now();
    std::vector<float> partial(static_cast<std::size_t>(moe::max_threads()) * 16, 0.0f);
    const float* data = buf_.data();
    moe::parallel_for_chunks(n_blocks_, 1, [&](moe::index_t b, moe::index_t e) {
      const float* p = data + b * kBlock;
      const moe::index_t per_stream = (e - b) * kBlock / kStreams;  // a multiple of Batch::size
      Batch acc[kStreams];
      for (auto& a : acc) a = Batch(0.0f);
      for (moe::index_t i = 0; i < per_stream; i += Batch::size) {
#pragma GCC unroll 4
        for (moe::index_t s = 0; s < kStreams; ++s) acc[s] += Batch::load_aligned(p + s * per_stream + i);
      }
#if defined(_OPENMP)
      const int t = omp_get_thread_num();
#else
      const int t = 0;
#endif
      partial[static_cast<std::size_t>(t) * 16] = xsimd::hadd((acc[0] + acc[1]) + (acc[2] + acc[3]));
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    float total = 0.0f;
    for (float p : partial) total += p;
    sink_ = total;
    return s;
  }

 private:
  static constexpr moe::index_t kStreams = 4, kBlock = 4096;  // a share is a multiple of kBlock floats
  moe::index_t n_blocks_;
  moe::AlignedBuffer<float> buf_;
  mutable volatile float sink_ = 0.0f;  // keeps the sums alive
};

}  // namespace moe::bench
