// xsimd rotary position embedding, in place, in both pairings (half_split and interleaved).
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/parallel.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cpu/simd.hpp"
#include "moe/kernels/reference/rope.hpp"

#include <algorithm>

#include "moe/kernels/cpu/warnings_push.hpp"

namespace moe::kernels {

namespace cpu_detail {

// Rotates pairs (i, i + half) of one head: a' = a·c - b·s, b' = b·c + a·s.
template <class Arch>
inline void rope_half_split(float* v, const float* c, const float* s, index_t half) noexcept {
  using B = FloatBatch<Arch>;
  constexpr index_t L = B::size;
  index_t i = 0;
  for (; i + L <= half; i += L) {
    const B a = B::load_unaligned(v + i), b = B::load_unaligned(v + half + i);
    const B cv = B::load_unaligned(c + i), sv = B::load_unaligned(s + i);
    (a * cv - b * sv).store_unaligned(v + i);
    (b * cv + a * sv).store_unaligned(v + half + i);
  }
  for (; i < half; ++i) {
    const float a = v[i], b = v[half + i];
    v[i] = a * c[i] - b * s[i];
    v[half + i] = b * c[i] + a * s[i];
  }
}

// Rotates pairs (2i, 2i + 1) of one head.
template <class Arch>
inline void rope_interleaved(float* v, const float* c, const float* s, index_t half) noexcept {
  index_t i = 0;
#if defined(__AVX512F__)
  if constexpr (kIsAvx512<Arch>) {
    // 8 pairs per step: duplicate each cos/sin to both lanes of its pair, swap the lanes of every
    // pair, and let fmaddsub subtract in even lanes (a·c - b·s) and add in odd ones (b·c + a·s).
    // (maskz forms with a full mask: the plain intrinsics trip GCC 12's -Wmaybe-uninitialized.)
    constexpr __mmask16 kAll = 0xffff, kLow8 = 0x00ff;
    const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    for (; i + 8 <= half; i += 8) {
      const __m512 x = _mm512_loadu_ps(v + 2 * i);
      const __m512 cv = _mm512_maskz_permutexvar_ps(kAll, dup, _mm512_maskz_loadu_ps(kLow8, c + i));
      const __m512 sv = _mm512_maskz_permutexvar_ps(kAll, dup, _mm512_maskz_loadu_ps(kLow8, s + i));
      const __m512 swapped = _mm512_maskz_permute_ps(kAll, x, 0xB1);  // (a, b) -> (b, a) per pair
      _mm512_storeu_ps(v + 2 * i, _mm512_fmaddsub_ps(x, cv, _mm512_mul_ps(swapped, sv)));
    }
  }
#endif
  for (; i < half; ++i) {
    const float a = v[2 * i], b = v[2 * i + 1];
    v[2 * i] = a * c[i] - b * s[i];
    v[2 * i + 1] = b * c[i] + a * s[i];
  }
}

}  // namespace cpu_detail

// x [n_tokens, n_heads, head_dim] f32, rotated in place on the first rotary_dim = 2*cos.extent(1)
// dims of each head; cos, sin [n_tokens, rotary_dim/2]. Same contract as the reference.
template <class Arch>
void rope(backend::cpu_simd<Arch>, View<float, 3> x, View<const float, 2> cos,
          View<const float, 2> sin, RopePairing pairing) {
  detail::check_rope(x, cos, sin);
  const index_t n_tokens = x.extent(0), n_heads = x.extent(1), half = cos.extent(1);
  if (half == 0) return;
  const index_t grain = std::max<index_t>(1, (index_t{1} << 14) / std::max<index_t>(n_heads * half, 1));
  parallel_for_chunks(n_tokens, grain, [&](index_t t_begin, index_t t_end) {
    for (index_t t = t_begin; t < t_end; ++t) {
      const float* c = cos.data() + t * cos.stride(0);
      const float* s = sin.data() + t * sin.stride(0);
      for (index_t h = 0; h < n_heads; ++h) {
        float* v = x.data() + t * x.stride(0) + h * x.stride(1);
        if (pairing == RopePairing::half_split) {
          cpu_detail::rope_half_split<Arch>(v, c, s, half);
        } else {
          cpu_detail::rope_interleaved<Arch>(v, c, s, half);
        }
      }
    }
  });
}

}  // namespace moe::kernels

#include "moe/kernels/cpu/warnings_pop.hpp"
