// The host's FMA peak (FLOP/s of f32 vector FMAs on every thread), the limit of compute-bound
// kernels and of prefill on the CPU (shared by bench_kernels and moe-bench).
#pragma once

#include <moe/core/parallel.hpp>
#include <moe/core/tensor.hpp>

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <chrono>
#include <vector>

namespace moe::bench {

namespace detail {
inline volatile float fma_probe_sink = 0.0f;  // keeps the probe's results alive

// The median wall time of `runs` (at least 1) timed calls of run(), after one untimed call.
template <class F>
double median_seconds(F&& run, int runs) {
  run();
  std::vector<double> t;
  for (int i = 0; i < std::max(runs, 1); ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}
}  // namespace detail

// FMA peak: 12 independent chains of vector FMAs per thread, all in registers. 12 covers latency x
// throughput of current cores (8 on Skylake..Sapphire Rapids and Zen 2..4, 10 on Haswell), and 12
// chains plus the two operands fit AVX2's 16 vector registers: with 16 chains they spill, and the
// "peak" measured on an AVX2 machine was half the real one (GEMM ran at 110% of it).
// Returns the median FLOP/s (2 per lane per FMA) of `runs` timed runs of `iterations` FMAs per
// chain and thread, after one untimed run.
inline double measure_fma_peak(index_t iterations, int runs) {
  using Batch = xsimd::batch<float, xsimd::default_arch>;
  constexpr int kChains = 12;
  const auto run = [&] {
    float total = 0.0f;
#if defined(_OPENMP)
#pragma omp parallel reduction(+ : total)
#endif
    {
      Batch acc[kChains];
#pragma GCC unroll 12
      for (int c = 0; c < kChains; ++c) acc[c] = Batch(static_cast<float>(c) * 1e-3f);
      const Batch a(0.999f), b(1e-3f);
      for (index_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
        for (int c = 0; c < kChains; ++c) acc[c] = xsimd::fma(acc[c], a, b);
      }
      Batch s(0.0f);
      for (int c = 0; c < kChains; ++c) s += acc[c];
      total += xsimd::hadd(s);
    }
    detail::fma_probe_sink = total;
  };
  const double flops = 2.0 * Batch::size * kChains * static_cast<double>(iterations) * max_threads();
  return flops / detail::median_seconds(run, runs);
}

}  // namespace moe::bench
