// The host's int8 dot-product peak: the limit of the cpu prefill of the block formats whose GEMM
// multiplies int8 codes by int8 activations (Q8_0, Q4_0, IQ4_NL, MXFP4, Q4_K, Q6_K: kernels/cpu/
// quant_matmul.hpp), as the FMA peak (fma_probe.hpp) is the limit of the f32 GEMM.
// The probe runs the instruction sequence those kernels run: AVX-512 VNNI vpdpbusd on zmm where
// the compiler targets AVX-512 VNNI and BW (the GEMM's 16-token panels), else AVX2's runs on ymm
// (quant_matmul.hpp's dot_groups: 8 vpmaddubsw whose pair sums are added as s16, then one
// vpmaddwd + vpaddd widening them; before those runs each vpmaddubsw had its own vpmaddwd, and this
// probe ran that triple: a limit 1.6x too low for the 4-bit formats' runs). Counted as 2
// operations per multiply-add, so that it divides the same 2 · parameters per token as the FMA
// peak.
#pragma once

#include <moe/bench/fma_probe.hpp>
#include <moe/core/format.hpp>
#include <moe/core/parallel.hpp>
#include <moe/core/tensor.hpp>
#include <moe/kernels/kernels.hpp>

#include <algorithm>
#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace moe::bench {

namespace detail {
inline volatile std::int32_t int8_probe_sink = 0;  // keeps the probe's results alive
}  // namespace detail

// Whether the cpu backend's prefill GEMM of weights of type t multiplies in int8 on this target.
inline bool cpu_prefill_is_int8(DType t) noexcept {
  bool on = false;
  visit_format<backend::cpu>(t, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_block_format_v<T>) on = kernels::cpu_quant::kIgemm<T>;
  });
  return on;
}

// Median int8 operations/s (2 per u8 x s8 multiply-add) over `runs` timed runs of `iterations`
// instruction groups per chain and thread (independent chains, in registers), after one untimed
// run; 0 where AVX2 is not targeted (no integer kernels).
inline double measure_int8_peak(index_t iterations, int runs) {
#if defined(__AVX2__)
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512F__)
  constexpr int kChains = 12;          // vpdpbusd's latency x throughput, as the FMA probe
  constexpr double kMacsPerStep = 64;  // one zmm vpdpbusd
#else
  constexpr int kChains = 4;
  constexpr int kRun = 8;              // vpmaddubsw per widening, as Q4_0's and Q4_K's runs
  constexpr double kMacsPerStep = 32;  // one ymm vpmaddubsw (+ vpaddw, and 1/8 of vpmaddwd + vpaddd)
  iterations = std::max<index_t>(kRun, iterations / kRun * kRun);
#endif
  const auto run = [&] {
    std::int32_t total = 0;
#if defined(_OPENMP)
#pragma omp parallel reduction(+ : total)
#endif
    {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512F__)
      __m512i acc[kChains];
      for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_epi32(c);
      const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
      for (index_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
        for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
      }
      __m512i s = acc[0];
      for (int c = 1; c < kChains; ++c) s = _mm512_add_epi32(s, acc[c]);
      total += _mm512_reduce_add_epi32(s);
#else
      // The products do not depend on the accumulators, so the chains are throughput-bound; each
      // chain has its own operand, made opaque every step so the products cannot be hoisted or
      // shared (4 chains: 4 operands, 4 s16 run sums, 4 s32 accumulators and 2 constants fit the
      // 16 ymm registers). Named variables, not arrays: GCC kept arrays partly in memory, and the
      // stores and reloads of the accumulators halved the rate.
      static_assert(kChains == 4, "the chains below are written out");
      __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0;
      __m256i a0 = _mm256_set1_epi8(3), a1 = _mm256_set1_epi8(4), a2 = _mm256_set1_epi8(5), a3 = _mm256_set1_epi8(6);
      const __m256i b = _mm256_set1_epi8(-2), ones = _mm256_set1_epi16(1);
      const index_t n = iterations / kRun;
      for (index_t it = 0; it < n; ++it) {
        __m256i h0 = _mm256_setzero_si256(), h1 = h0, h2 = h0, h3 = h0;
#pragma GCC unroll 8
        for (int k = 0; k < kRun; ++k) {
          __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3));
          h0 = _mm256_add_epi16(h0, _mm256_maddubs_epi16(a0, b)), h1 = _mm256_add_epi16(h1, _mm256_maddubs_epi16(a1, b));
          h2 = _mm256_add_epi16(h2, _mm256_maddubs_epi16(a2, b)), h3 = _mm256_add_epi16(h3, _mm256_maddubs_epi16(a3, b));
        }
        c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(h0, ones)), c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(h1, ones));
        c2 = _mm256_add_epi32(c2, _mm256_madd_epi16(h2, ones)), c3 = _mm256_add_epi32(c3, _mm256_madd_epi16(h3, ones));
      }
      const __m256i s = _mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3));
      alignas(32) std::int32_t lanes[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
      for (const std::int32_t v : lanes) total += v;
#endif
    }
    detail::int8_probe_sink = total;
  };
  const double ops = 2.0 * kMacsPerStep * kChains * static_cast<double>(iterations) * max_threads();
  return ops / detail::median_seconds(run, runs);
#else
  (void)iterations, (void)runs;
  return 0.0;
#endif
}

}  // namespace moe::bench
