// Building blocks of the cpu_simd kernels: xsimd batch aliases, the instruction-set checks, and
// loading weights of any element type widened to an f32 batch (bf16 by a 16-bit shift, f16 by
// F16C / AVX-512 vcvtph2ps, with a portable scalar fallback for other targets).
#pragma once

#include "moe/core/dtype.hpp"
#include "moe/kernels/reference/arguments.hpp"

#include <xsimd/xsimd.hpp>

#include <cstddef>
#include <cstring>
#include <type_traits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "moe/kernels/cpu/warnings_push.hpp"

namespace moe::kernels::cpu_detail {

template <class Arch>
using FloatBatch = xsimd::batch<float, Arch>;

// Which intrinsic path an Arch may take. Each path is additionally compiled only when the compiler
// targets that instruction set (#if on __AVX512F__ / __AVX2__ / __F16C__), so a binary built for
// an older CPU keeps the portable xsimd code.
template <class Arch>
inline constexpr bool kIsAvx512 = std::is_base_of_v<xsimd::avx512f, Arch>;
template <class Arch>
inline constexpr bool kIsAvx2 = std::is_base_of_v<xsimd::avx2, Arch>;

// Loads FloatBatch<Arch>::size consecutive weights from p (any alignment), widened exactly to f32.
template <class Arch, class W>
inline FloatBatch<Arch> load_widened(const W* p) noexcept {
  using B = FloatBatch<Arch>;
  if constexpr (std::is_same_v<W, float>) {
    return B::load_unaligned(p);
  } else if constexpr (std::is_same_v<W, bf16>) {
    // bf16 is the top half of an f32: zero-extend each 16-bit lane to 32 bits and shift left 16.
#if defined(__AVX512F__)
    if constexpr (kIsAvx512<Arch>) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      // (maskz forms with a full mask: the plain intrinsics trip GCC 12's -Wmaybe-uninitialized
      // on their internal _mm512_undefined_* operand; the generated code is the same.)
      constexpr __mmask16 kAll = 0xffff;
      return B(_mm512_castsi512_ps(
          _mm512_maskz_slli_epi32(kAll, _mm512_maskz_cvtepu16_epi32(kAll, h), 16)));
    } else
#endif
#if defined(__AVX2__)
    if constexpr (kIsAvx2<Arch>) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      return B(_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
    } else
#endif
    {
      alignas(64) float tmp[B::size];
      for (std::size_t i = 0; i < B::size; ++i) tmp[i] = to_float(p[i]);
      return B::load_aligned(tmp);
    }
  } else if constexpr (std::is_same_v<W, f16>) {
    // vcvtph2ps converts exactly (subnormals, Inf and NaN included), like moe::to_float(f16).
#if defined(__AVX512F__)
    if constexpr (kIsAvx512<Arch>) {
      constexpr __mmask16 kAll = 0xffff;  // maskz form: see the bf16 case
      return B(_mm512_maskz_cvtph_ps(kAll, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
    } else
#endif
#if defined(__F16C__) && defined(__AVX__)
    if constexpr (kIsAvx2<Arch>) {
      return B(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    } else
#endif
    {
      alignas(64) float tmp[B::size];
      for (std::size_t i = 0; i < B::size; ++i) tmp[i] = to_float(p[i]);
      return B::load_aligned(tmp);
    }
  } else {
    static_assert(dependent_false<W>, "load_widened: weights must be float, bf16 or f16");
  }
}

// Largest lane of a batch.
template <class Arch>
inline float max_lane(const FloatBatch<Arch>& v) noexcept {
  alignas(64) float tmp[FloatBatch<Arch>::size];
  v.store_aligned(tmp);
  float m = tmp[0];
  for (std::size_t i = 1; i < FloatBatch<Arch>::size; ++i) m = tmp[i] > m ? tmp[i] : m;
  return m;
}

// Software prefetch of the cache line holding p (no-op where unsupported).
inline void prefetch(const void* p) noexcept {
#if defined(__GNUC__)
  __builtin_prefetch(p, 0, 3);
#else
  (void)p;
#endif
}

}  // namespace moe::kernels::cpu_detail

#include "moe/kernels/cpu/warnings_pop.hpp"
