// cpu_simd matrix products with weights in a ggml block format (quant/), and the cpu_simd entry
// points of the other ops that take a block-format weight.
//   * Q8_0, Q4_0, IQ4_NL, MXFP4 (x ActQ8) and Q4_K, Q6_K (x ggml's Q8_K) where AVX2 is targeted
//     (namespace igemm below): the activations are quantized once per call to int8 blocks (ActQ8:
//     32 elements, f32 scale and code sum), then integer u8 x s8 -> s32 dot products (AVX-512 VNNI
//     vpdpbusd where the compiler targets it, else AVX2 vpmaddubsw + vpmaddwd), for any token count:
//     a streaming kernel (4 weight rows decoded once per block, dotted with each of up to 16
//     tokens) below igemm_gemm_from<W>() tokens, and from there a register-blocked GEMM (8 decoded
//     weight rows x panels of 16 tokens in zmm under VNNI, 8 in ymm for AVX2). Both compute every
//     output by the same operations (one f32 fma per block on the block's exact integer dot), so
//     a token's output is bitwise independent of the tokens beside it and of the thread count.
//   * IQ4_XS (x Q8_K) up to 16 tokens: the older per-row integer kernel (dot_row); FP8 e4m3 rows
//     are widened to f32 by bit moves and dotted in f32 (8-bit floats gain nothing from int8
//     activations); the other formats dequantize a block to f32 and dot in f32.
//   * more tokens, the formats without an integer GEMM: the packed f32 GEMM of cpu/matmul.hpp,
//     dequantizing weight panels while packing (the packing cost is amortised over the tokens).
// Outputs are computed by the same operations whatever the thread count (bitwise independent).
// Accuracy: the integer paths differ from the f32 oracle by the activation rounding, at most
// Σ_blocks (max|x_b| / 254) · Σ_{i in b} |w_i| per output (tests/quant derive their bound from it).
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/format.hpp"
#include "moe/core/parallel.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cpu/matmul.hpp"
#include "moe/kernels/cpu/simd.hpp"
#include "moe/kernels/reference/quant_ops.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "moe/kernels/cpu/warnings_push.hpp"

namespace moe::kernels {

namespace cpu_quant {

// An activation block of 32 elements: x ≈ d·q, with the sum of the codes (for the formats whose
// codes carry an offset: Σ (q_w - 8)·q_a = Σ q_w·q_a - 8·Σ q_a).
struct ActQ8 {
  float d;
  std::int32_t sum;
  std::int8_t qs[32];
};
static_assert(sizeof(ActQ8) == 40);

// ggml's q8_0 rule with an f32 scale: d = max|x| / 127, q = round(x / d) (half away from zero,
// clamped to [-128, 127], NaN -> 0). The scalar rule; quantize_act below computes the same bytes.
inline void quantize_act_scalar(const float* x, ActQ8& a) noexcept {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  int sum = 0;
  for (int j = 0; j < 32; ++j) {
    a.qs[j] = quant::detail::round_to_int8(x[j] * id);
    sum += a.qs[j];
  }
  a.d = d, a.sum = sum;
}

// quantize_act_scalar's rule on 4 ymm vectors, lane by lane the same operations (so the same bytes
// and sums): the maximum skips NaN lanes as std::max(amax, NaN) does, round-half-away is trunc plus
// a step where |p - trunc(p)| >= 1/2 (the difference is exact), NaN lanes become 0. Activations
// are quantized on one thread before the parallel part of a matmul, so this is serial time.
inline void quantize_act(const float* x, ActQ8& a) noexcept {
#if defined(__AVX2__)
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 v[4];
  __m256 m = _mm256_setzero_ps();
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm256_loadu_ps(x + 8 * k);
    m = _mm256_max_ps(_mm256_and_ps(v[k], abs_mask), m);  // a NaN first operand gives m
  }
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  const float amax = _mm_cvtss_f32(h);
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const __m256 vid = _mm256_set1_ps(id), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  const __m256 sign_mask = _mm256_set1_ps(-0.0f), lo = _mm256_set1_ps(-128.0f), hi = _mm256_set1_ps(127.0f);
  __m256i q[4];
  for (int k = 0; k < 4; ++k) {
    const __m256 p = _mm256_mul_ps(v[k], vid);
    const __m256 t = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_and_ps(_mm256_sub_ps(p, t), abs_mask);
    const __m256 step = _mm256_and_ps(_mm256_cmp_ps(frac, half, _CMP_GE_OQ), _mm256_or_ps(_mm256_and_ps(p, sign_mask), one));
    __m256 r = _mm256_and_ps(_mm256_add_ps(t, step), _mm256_cmp_ps(p, p, _CMP_ORD_Q));
    r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
    q[k] = _mm256_cvttps_epi32(r);
  }
  // packs interleave 128-bit lanes: bytes [q0 0-3, q1 0-3, q2 0-3, q3 0-3 | q0 4-7, ...]; the
  // permute puts each vector's 8 codes back in order.
  const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.qs),
                      _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  __m256i sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  a.d = d, a.sum = _mm_cvtsi128_si32(s);
#else
  quantize_act_scalar(x, a);
#endif
}
// BlockQ8_K::quantize's rule (ggml's quantize_row_q8_K_ref) on ymm vectors, the same operations
// lane by lane (so the same bytes): amax skips NaN as the scalar `ax > amax` does, max is the first
// element of that magnitude with its sign, q = nearest_int(iscale·x) by the same magic-number add
// (no FMA contraction: MOE_QUANT_ROUND_AS_WRITTEN), clamped to [-128, 127]; bsums from the codes.
MOE_QUANT_ROUND_AS_WRITTEN_BEGIN
inline void quantize_act(const float* x, quant::BlockQ8_K& a) noexcept {
#if defined(__AVX2__)
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 m = _mm256_setzero_ps();
  for (int k = 0; k < 32; ++k) m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + 8 * k), abs_mask), m);
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  const float amax = _mm_cvtss_f32(h);
  if (amax == 0.0f) {
    quant::BlockQ8_K::quantize(x, a);  // the all-zero (or all-NaN) block
    return;
  }
  float max = 0.0f;
  const __m256 va = _mm256_set1_ps(amax);
  for (int k = 0; k < 32; ++k) {
    const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + 8 * k), abs_mask), va, _CMP_EQ_OQ));
    if (hit != 0) {
      max = x[8 * k + __builtin_ctz(static_cast<unsigned>(hit))];
      break;
    }
  }
  const float iscale = -127.f / max;
  const __m256 vs = _mm256_set1_ps(iscale), magic = _mm256_set1_ps(12582912.0f);
  const __m256i mant = _mm256_set1_epi32(0x007fffff), bias = _mm256_set1_epi32(0x00400000);
  const __m256i lo = _mm256_set1_epi32(-128), hi = _mm256_set1_epi32(127);
  const auto codes = [&](const float* p) {
    const __m256 v = _mm256_add_ps(_mm256_mul_ps(vs, _mm256_loadu_ps(p)), magic);
    const __m256i q = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(v), mant), bias);
    return _mm256_max_epi32(_mm256_min_epi32(q, hi), lo);
  };
  for (int j = 0; j < 16; ++j) {
    const __m256i q0 = codes(x + 16 * j), q1 = codes(x + 16 * j + 8);
    const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xd8);  // 16 x s16 in order
    const __m256i b = _mm256_packs_epi16(w, w);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(a.qs + 16 * j),
                     _mm_unpacklo_epi64(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1)));
    const __m256i sum = _mm256_add_epi32(q0, q1);
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
    a.bsums[j] = static_cast<std::int16_t>(_mm_cvtsi128_si32(t));
  }
  a.d = 1 / iscale;
#else
  quant::BlockQ8_K::quantize(x, a);
#endif
}
MOE_QUANT_ROUND_AS_WRITTEN_END

// Which activation blocks a weight format's integer kernel takes (void: no integer kernel).
template <class W>
struct ActFor {
  using type = void;
};
template <>
struct ActFor<quant::BlockQ8_0> {
  using type = ActQ8;
};
template <>
struct ActFor<quant::BlockQ4_0> {
  using type = ActQ8;
};
template <>
struct ActFor<quant::BlockIq4Nl> {
  using type = ActQ8;
};
template <>
struct ActFor<quant::BlockMxfp4> {
  using type = ActQ8;
};
template <>
struct ActFor<quant::BlockIq4Xs> {
  using type = quant::BlockQ8_K;
};
template <>
struct ActFor<quant::BlockQ4_K> {
  using type = quant::BlockQ8_K;
};
template <>
struct ActFor<quant::BlockQ6_K> {
  using type = quant::BlockQ8_K;
};

// f16 -> f32 by F16C where the compiler targets it (exact, as moe::to_float; one instruction
// instead of the portable bit manipulation, once per block in the hot loops).
inline float half_to_float(f16 h) noexcept {
#if defined(__F16C__)
  return _cvtsh_ss(h.bits);
#else
  return to_float(h);
#endif
}

// ---- 8 x s32 lanes of u8 x s8 dot products over groups of 4 bytes -----------------------------

#if defined(__AVX2__)
inline constexpr bool kIntDot = true;
// Lane k = Σ_{j<4} u[4k+j]·s[4k+j] (u unsigned bytes, s signed; |u| <= 127 on the AVX2 path keeps
// the 16-bit pair sums exact: every caller's u is <= 127).
inline __m256i dot_u8s8(__m256i u, __m256i s) noexcept {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}
inline __m256i dot_acc_u8s8(__m256i acc, __m256i u, __m256i s) noexcept {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(acc, u, s);
#else
  return _mm256_add_epi32(acc, dot_u8s8(u, s));
#endif
}
inline float hsum(__m256 v) noexcept {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline __m256i load256(const void* p) noexcept { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
#else
inline constexpr bool kIntDot = false;
#endif

// ---- one weight row against T activation rows: out[t] = Σ_blocks ... ---------------------------

// Q8_0 x ActQ8: Σ_b d_w·d_a·Σ q_w·q_a (sign trick: |q_w| x sign(q_a, q_w)).
inline void dot_row(const quant::BlockQ8_0* w, const ActQ8* const* acts, int T, index_t nb, float* out) noexcept {
#if defined(__AVX2__)
  for (int t = 0; t < T; ++t) {
    const ActQ8* a = acts[t];
    // Two accumulators (even and odd blocks) hide the FMA latency; the same split on any thread count.
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (index_t b = 0; b < nb; ++b) {
      const __m256i qw = load256(w[b].qs), qa = load256(a[b].qs);
      const __m256i s = dot_u8s8(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qa, qw));
      const __m256 d = _mm256_set1_ps(half_to_float(w[b].d) * a[b].d);
      acc[b & 1] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc[b & 1]);
    }
    out[t] = hsum(_mm256_add_ps(acc[0], acc[1]));
  }
#else
  for (int t = 0; t < T; ++t) {
    float acc = 0.0f;
    for (index_t b = 0; b < nb; ++b) {
      int s = 0;
      for (int j = 0; j < 32; ++j) s += w[b].qs[j] * acts[t][b].qs[j];
      acc += half_to_float(w[b].d) * acts[t][b].d * static_cast<float>(s);
    }
    out[t] = acc;
  }
#endif
}

// Q4_0 x ActQ8: Σ_b d_w·d_a·(Σ q_w·q_a - 8·Σ q_a), q_w the raw nibbles (0..15).
inline void dot_row(const quant::BlockQ4_0* w, const ActQ8* const* acts, int T, index_t nb, float* out) noexcept {
#if defined(__AVX2__)
  const __m256i low = _mm256_set1_epi8(0x0f);
  for (int t = 0; t < T; ++t) {
    const ActQ8* a = acts[t];
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (index_t b = 0; b < nb; ++b) {
      const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].qs));
      const __m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), low);
      __m256i s = dot_u8s8(q, load256(a[b].qs));
      s = _mm256_sub_epi32(s, _mm256_setr_epi32(8 * a[b].sum, 0, 0, 0, 0, 0, 0, 0));
      const __m256 d = _mm256_set1_ps(half_to_float(w[b].d) * a[b].d);
      acc[b & 1] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc[b & 1]);
    }
    out[t] = hsum(_mm256_add_ps(acc[0], acc[1]));
  }
#else
  for (int t = 0; t < T; ++t) {
    float acc = 0.0f;
    for (index_t b = 0; b < nb; ++b) {
      int s = 0;
      for (int j = 0; j < 16; ++j) {
        s += (w[b].qs[j] & 0x0f) * acts[t][b].qs[j] + (w[b].qs[j] >> 4) * acts[t][b].qs[j + 16];
      }
      acc += half_to_float(w[b].d) * acts[t][b].d * static_cast<float>(s - 8 * acts[t][b].sum);
    }
    out[t] = acc;
  }
#endif
}

// Table formats x ActQ8 (IQ4_NL, MXFP4): the 4-bit indices become int8 values by a byte shuffle of
// the 16-entry table, then Σ_b scale_w·d_a·Σ v·q_a with the sign trick (|v| <= 127).
template <class W, class Scale>
inline void dot_row_table(const W* w, const ActQ8* const* acts, int T, index_t nb, const std::int8_t* table,
                          Scale scale_of, float* out) noexcept {
#if defined(__AVX2__)
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m128i t128 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(table));
  const __m256i lut = _mm256_set_m128i(t128, t128);
  for (int t = 0; t < T; ++t) {
    const ActQ8* a = acts[t];
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (index_t b = 0; b < nb; ++b) {
      const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].qs));
      const __m256i idx = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), low);
      const __m256i v = _mm256_shuffle_epi8(lut, idx);
      const __m256i s = dot_u8s8(_mm256_sign_epi8(v, v), _mm256_sign_epi8(load256(a[b].qs), v));
      const __m256 d = _mm256_set1_ps(scale_of(w[b]) * a[b].d);
      acc[b & 1] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc[b & 1]);
    }
    out[t] = hsum(_mm256_add_ps(acc[0], acc[1]));
  }
#else
  for (int t = 0; t < T; ++t) {
    float acc = 0.0f;
    for (index_t b = 0; b < nb; ++b) {
      int s = 0;
      for (int j = 0; j < 16; ++j) {
        s += table[w[b].qs[j] & 0x0f] * acts[t][b].qs[j] + table[w[b].qs[j] >> 4] * acts[t][b].qs[j + 16];
      }
      acc += scale_of(w[b]) * acts[t][b].d * static_cast<float>(s);
    }
    out[t] = acc;
  }
#endif
}

inline void dot_row(const quant::BlockIq4Nl* w, const ActQ8* const* acts, int T, index_t nb, float* out) noexcept {
  dot_row_table(w, acts, T, nb, quant::kIq4Values, [](const quant::BlockIq4Nl& b) { return half_to_float(b.d); }, out);
}

// MXFP4's table holds the E2M1 values doubled, so the scale is half the E8M0 one.
inline void dot_row(const quant::BlockMxfp4* w, const ActQ8* const* acts, int T, index_t nb, float* out) noexcept {
  dot_row_table(w, acts, T, nb, quant::kMxfp4Values,
                [](const quant::BlockMxfp4& b) { return quant::detail::e8m0_half(b.e); }, out);
}

// IQ4_XS x Q8_K per super-block: d·d_a·Σ_g (ls_g - 32)·Σ v·q_a over 8 groups of 32, v the table
// values of the indices (vpshufb, then the sign trick as for Q8_0).
inline void dot_row(const quant::BlockIq4Xs* w, const quant::BlockQ8_K* const* acts, int T, index_t nb,
                    float* out) noexcept {
  for (int t = 0; t < T; ++t) {
    const quant::BlockQ8_K* a = acts[t];
    float acc = 0.0f;
#if defined(__AVX2__)
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m128i t128 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(quant::kIq4Values));
    const __m256i lut = _mm256_set_m128i(t128, t128);
    __m256 vacc = _mm256_setzero_ps();
#endif
    for (index_t b = 0; b < nb; ++b) {
      const float d = half_to_float(w[b].d) * a[b].d;
#if defined(__AVX2__)
      __m256i isum = _mm256_setzero_si256();
      for (std::size_t g = 0; g < 8; ++g) {
        const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].qs + 16 * g));
        const __m256i v = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), low));
        const __m256i s = dot_u8s8(_mm256_sign_epi8(v, v), _mm256_sign_epi8(load256(a[b].qs + 32 * g), v));
        isum = _mm256_add_epi32(isum, _mm256_mullo_epi32(s, _mm256_set1_epi32(quant::BlockIq4Xs::group_scale(w[b], g))));
      }
      vacc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum), vacc);
#else
      int isum = 0;
      for (std::size_t g = 0; g < 8; ++g) {
        int s = 0;
        for (int j = 0; j < 16; ++j) {
          s += quant::kIq4Values[w[b].qs[16 * g + j] & 0x0f] * a[b].qs[32 * g + j] +
               quant::kIq4Values[w[b].qs[16 * g + j] >> 4] * a[b].qs[32 * g + 16 + j];
        }
        isum += quant::BlockIq4Xs::group_scale(w[b], g) * s;
      }
      acc += d * static_cast<float>(isum);
#endif
    }
#if defined(__AVX2__)
    acc += hsum(vacc);
#endif
    out[t] = acc;
  }
}

// Q4_K x Q8_K per super-block: d_a·(d·Σ_g sc_g·Σ q·q_a - dmin·Σ_g m_g·Σ q_a), the code sums of each
// 32-group from the two bsums of 16.
inline void dot_row(const quant::BlockQ4_K* w, const quant::BlockQ8_K* const* acts, int T, index_t nb,
                    float* out) noexcept {
  for (int t = 0; t < T; ++t) {
    const quant::BlockQ8_K* a = acts[t];
    float acc = 0.0f;
#if defined(__AVX2__)
    __m256 vacc = _mm256_setzero_ps();
    const __m256i low = _mm256_set1_epi8(0x0f);
#endif
    for (index_t b = 0; b < nb; ++b) {
      std::uint8_t sc[8], m[8];
      for (int g = 0; g < 8; ++g) quant::detail::scale_min_k4(g, w[b].scales, sc[g], m[g]);
      int msum = 0;
      for (int g = 0; g < 8; ++g) msum += m[g] * (a[b].bsums[2 * g] + a[b].bsums[2 * g + 1]);
      const float dw = half_to_float(w[b].d) * a[b].d, dm = half_to_float(w[b].dmin) * a[b].d;
#if defined(__AVX2__)
      __m256i isum = _mm256_setzero_si256();
      for (int c = 0; c < 4; ++c) {  // 64 elements: low nibbles (group 2c), high nibbles (2c + 1)
        const __m256i raw = load256(w[b].qs + 32 * c);
        const __m256i s0 = dot_u8s8(_mm256_and_si256(raw, low), load256(a[b].qs + 64 * c));
        const __m256i s1 = dot_u8s8(_mm256_and_si256(_mm256_srli_epi16(raw, 4), low), load256(a[b].qs + 64 * c + 32));
        isum = _mm256_add_epi32(isum, _mm256_mullo_epi32(s0, _mm256_set1_epi32(sc[2 * c])));
        isum = _mm256_add_epi32(isum, _mm256_mullo_epi32(s1, _mm256_set1_epi32(sc[2 * c + 1])));
      }
      vacc = _mm256_fmadd_ps(_mm256_set1_ps(dw), _mm256_cvtepi32_ps(isum), vacc);
#else
      int isum = 0;
      for (int c = 0; c < 4; ++c) {
        int s0 = 0, s1 = 0;
        for (int l = 0; l < 32; ++l) {
          s0 += (w[b].qs[32 * c + l] & 0x0f) * a[b].qs[64 * c + l];
          s1 += (w[b].qs[32 * c + l] >> 4) * a[b].qs[64 * c + 32 + l];
        }
        isum += sc[2 * c] * s0 + sc[2 * c + 1] * s1;
      }
      acc += dw * static_cast<float>(isum);
#endif
      acc -= dm * static_cast<float>(msum);
    }
#if defined(__AVX2__)
    acc += hsum(vacc);
#endif
    out[t] = acc;
  }
}

// Q6_K x Q8_K per super-block: d·d_a·Σ_g sc_g·(Σ q·q_a - 32·Σ q_a) over 16 groups of 16, q the
// unsigned 6-bit codes (0..63).
inline void dot_row(const quant::BlockQ6_K* w, const quant::BlockQ8_K* const* acts, int T, index_t nb,
                    float* out) noexcept {
  for (int t = 0; t < T; ++t) {
    const quant::BlockQ8_K* a = acts[t];
    float acc = 0.0f;
#if defined(__AVX2__)
    __m256 vacc = _mm256_setzero_ps();
    const __m256i low = _mm256_set1_epi8(0x0f), two = _mm256_set1_epi8(3);
#endif
    for (index_t b = 0; b < nb; ++b) {
      int corr = 0;
      for (int g = 0; g < 16; ++g) corr += w[b].scales[g] * a[b].bsums[g];
      const float d = half_to_float(w[b].d) * a[b].d;
#if defined(__AVX2__)
      __m256i isum = _mm256_setzero_si256();
      for (int n = 0; n < 2; ++n) {
        const __m256i ql0 = load256(w[b].ql + 64 * n), ql1 = load256(w[b].ql + 64 * n + 32);
        const __m256i qh = load256(w[b].qh + 32 * n);
        for (int g = 0; g < 4; ++g) {
          const __m256i lo_src = (g & 1) ? ql1 : ql0;
          const __m256i lo = g < 2 ? _mm256_and_si256(lo_src, low) : _mm256_and_si256(_mm256_srli_epi16(lo_src, 4), low);
          const __m256i hi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), two), 4);
          const __m256i q = _mm256_or_si256(lo, hi);
          const __m256i s = dot_u8s8(q, load256(a[b].qs + 128 * n + 32 * g));
          const int g0 = 8 * n + 2 * g;
          const __m256i scale = _mm256_setr_epi32(w[b].scales[g0], w[b].scales[g0], w[b].scales[g0], w[b].scales[g0],
                                                  w[b].scales[g0 + 1], w[b].scales[g0 + 1], w[b].scales[g0 + 1],
                                                  w[b].scales[g0 + 1]);
          isum = _mm256_add_epi32(isum, _mm256_mullo_epi32(s, scale));
        }
      }
      isum = _mm256_sub_epi32(isum, _mm256_setr_epi32(32 * corr, 0, 0, 0, 0, 0, 0, 0));
      vacc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum), vacc);
#else
      int isum = 0;
      for (int j = 0; j < 256; ++j) {
        const std::size_t n = j / 128, g = (j % 128) / 32, l = j % 32;
        const std::uint8_t lo = w[b].ql[64 * n + l + 32 * (g & 1)];
        const int q = (g < 2 ? lo & 0x0f : lo >> 4) | (((w[b].qh[32 * n + l] >> (2 * g)) & 3) << 4);
        isum += w[b].scales[8 * n + 2 * g + l / 16] * q * a[b].qs[j];
      }
      acc += d * static_cast<float>(isum - 32 * corr);
#endif
    }
#if defined(__AVX2__)
    acc += hsum(vacc);
#endif
    out[t] = acc;
  }
}

// Any format: dequantize a block to f32, dot with every token in f32 (formats without an integer
// kernel; also the pattern a new format starts from).
template <class Arch, class W>
void dot_row_f32(const W* w, const float* x, index_t ldx, int T, index_t nb, float* out) noexcept {
  using B = cpu_detail::FloatBatch<Arch>;
  constexpr index_t BE = W::block_elements, L = B::size;
  static_assert(BE % L == 0, "a block must hold whole f32 batches");
  alignas(64) float tmp[BE];
  B acc[cpu_detail::kStreamMaxTokens];
  for (int t = 0; t < T; ++t) acc[t] = B(0.0f);
  for (index_t b = 0; b < nb; ++b) {
    W::dequantize(w[b], tmp);
    for (int t = 0; t < T; ++t) {
      const float* xr = x + t * ldx + b * BE;
      for (index_t j = 0; j < BE; j += L) acc[t] = xsimd::fma(B::load_unaligned(xr + j), B::load_aligned(tmp + j), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) out[t] = xsimd::hadd(acc[t]);
}

// FP8 e4m3fn rows x f32 activations (no activation rounding): per block of 128, the codes are
// widened to f32 by bit moves (sign-extend the byte, shift it left 20 and keep the sign and the 7
// magnitude bits: the 4 exponent bits land in the low bits of the f32 exponent field, so the f32
// is e4m3(q) · 2^-120 exactly, an f32 subnormal for e4m3's subnormals, which assumes the FPU does
// not flush subnormal inputs (DAZ off, the default)), scaled by 2^120 (exact), and dotted with the
// tokens in f32; the block sum is then scaled by the block's d. A NaN code (0x7F/0xFF: the bit
// moves would give 480) makes the block's sum NaN, as in the oracle. Hot loop: one token (decode)
// decodes 16 codes per AVX-512 step straight into the FMA; several tokens stage the block's f32
// values once and dot every token with them.
template <class Arch>
void dot_row_f32(const quant::BlockFp8E4m3* w, const float* x, index_t ldx, int T, index_t nb, float* out) noexcept {
  constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
#if defined(__AVX512F__) && defined(__AVX512BW__)
  if constexpr (cpu_detail::kIsAvx512<Arch>) {
    if (T == 1) {  // decode: 16 codes per step straight into the FMA (no staging buffer)
      constexpr __mmask16 kAll = 0xffff;  // maskz forms: see load_widened (GCC 12 warnings)
      const __m512i keep = _mm512_set1_epi32(static_cast<int>(0x87f00000u)), low7 = _mm512_set1_epi8(0x7f);
      const __m512 two_120 = _mm512_set1_ps(0x1p120f);
      __m512 acc = _mm512_setzero_ps();
      for (index_t b = 0; b < nb; ++b) {
        const std::uint8_t* q = w[b].qs;
        const float* xr = x + b * 128;
        const __m512i r0 = _mm512_loadu_si512(q), r1 = _mm512_loadu_si512(q + 64);
        const bool nan = (_mm512_cmpeq_epi8_mask(_mm512_and_si512(r0, low7), low7) |
                          _mm512_cmpeq_epi8_mask(_mm512_and_si512(r1, low7), low7)) != 0;
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
        for (int j = 0; j < 128; j += 32) {
          const __m512i v0 = _mm512_maskz_cvtepi8_epi32(kAll, _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + j)));
          const __m512i v1 = _mm512_maskz_cvtepi8_epi32(kAll, _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + j + 16)));
          const __m512 w0 = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_and_si512(_mm512_maskz_slli_epi32(kAll, v0, 20), keep)), two_120);
          const __m512 w1 = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_and_si512(_mm512_maskz_slli_epi32(kAll, v1, 20), keep)), two_120);
          s0 = _mm512_fmadd_ps(_mm512_loadu_ps(xr + j), w0, s0);
          s1 = _mm512_fmadd_ps(_mm512_loadu_ps(xr + j + 16), w1, s1);
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(nan ? kNan : w[b].d), _mm512_add_ps(s0, s1), acc);
      }
      out[0] = _mm512_reduce_add_ps(acc);
      return;
    }
  }
#endif
#if defined(__AVX2__)
  // 8 codes per step: straight into the FMA for one token, else staged as f32 in `tmp` once per
  // block and dotted with every token.
  alignas(32) float tmp[128];
  __m256 acc[cpu_detail::kStreamMaxTokens];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i keep = _mm256_set1_epi32(static_cast<int>(0x87f00000u));
  const __m256 two_120 = _mm256_set1_ps(0x1p120f);
  const __m256i low7 = _mm256_set1_epi8(0x7f);
  const auto widen8 = [&](const std::uint8_t* q) {
    const __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q)));
    return _mm256_mul_ps(_mm256_castsi256_ps(_mm256_and_si256(_mm256_slli_epi32(v, 20), keep)), two_120);
  };
  for (index_t b = 0; b < nb; ++b) {
    const std::uint8_t* q = w[b].qs;
    int nan = 0;
    for (int j = 0; j < 128; j += 32) {
      nan |= _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_and_si256(load256(q + j), low7), low7));
    }
    const __m256 d = _mm256_set1_ps(nan != 0 ? kNan : w[b].d);
    if (T == 1) {
      const float* xr = x + b * 128;
      __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
      for (int j = 0; j < 128; j += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(xr + j), widen8(q + j), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(xr + j + 8), widen8(q + j + 8), s1);
      }
      acc[0] = _mm256_fmadd_ps(d, _mm256_add_ps(s0, s1), acc[0]);
      continue;
    }
    for (int j = 0; j < 128; j += 8) _mm256_store_ps(tmp + j, widen8(q + j));
    for (int t = 0; t < T; ++t) {
      const float* xr = x + t * ldx + b * 128;
      __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
      for (int j = 0; j < 128; j += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(xr + j), _mm256_load_ps(tmp + j), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(xr + j + 8), _mm256_load_ps(tmp + j + 8), s1);
      }
      acc[t] = _mm256_fmadd_ps(d, _mm256_add_ps(s0, s1), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) out[t] = hsum(acc[t]);
#else
  (void)kNan;
  for (int t = 0; t < T; ++t) {
    float acc = 0.0f;
    for (index_t b = 0; b < nb; ++b) {
      float s = 0.0f;
      for (int j = 0; j < 128; ++j) s += quant::e4m3_to_float(w[b].qs[j]) * x[t * ldx + b * 128 + j];
      acc += w[b].d * s;
    }
    out[t] = acc;
  }
#endif
}

// ---- integer kernels with one arithmetic for every token count (issue 12) ----------------------
//
// Q8_0, Q4_0, IQ4_NL, MXFP4 (x ActQ8) and Q4_K, Q6_K (x Q8_K) where AVX2 is targeted. Every
// output (token t, row o) is, whatever kernel computes it,
//     acc = 0;  for each block b in order:  acc = fma(d_w[b]·d_a[t][b], float(S[b]), acc)
// (Q4_K adds acc = fma(-dmin[b]·d_a[t][b], float(M[b]), acc) after each block), with S[b] and M[b]
// the block's exact integer dot products. Two kernels produce these integers:
//   * streaming (up to kStreamMaxTokens tokens): 4 weight rows decoded once per block, dotted with
//     every token's natural-layout activation block, the 8 lanes of each row reduced to one integer
//     (lanes = rows in the f32 step);
//   * GEMM (more tokens): activations quantized once per call and re-laid as panels of 8 tokens
//     (each 4-byte group of the 8 tokens in one vector), a tile of kTileRows weight rows decoded
//     once into a per-thread buffer and reused for every panel; each 4-byte weight group is
//     broadcast and multiplied with the 8 tokens' groups (lanes = tokens).
// Integer sums are exact and the f32 steps are the same operations on the same values, so a
// token's output is bitwise the same whether it is computed alone, in a batch of 16 or in a
// prefill of 1000, and whatever the thread count.
// The weight codes enter the u8 x s8 products as unsigned bytes u = w + off: off 8 for Q4_0's
// nibbles, 0 for Q4_K / Q6_K (codes 0..15 / 0..63), 128 for the signed formats (Q8_0 and the
// tables) on VNNI (vpdpbusd does not saturate); S = Σ u·a - off·Σ a. Without VNNI the signed
// formats take the sign trick instead (vpmaddubsw would saturate on u up to 255) and give the same S.
#if defined(__AVX2__)
namespace igemm {

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
inline constexpr bool kVnni = true;
#else
inline constexpr bool kVnni = false;
#endif

inline constexpr int kTileRows = 8;   // weight rows per GEMM tile
inline constexpr int kStreamRows = 4; // weight rows per streaming pass (one xmm of f32 accumulators)

// acc + Σ_4 u·s per s32 lane; Wide: u = w + 128 for signed codes w.
template <bool Wide>
inline __m256i dot_acc(__m256i acc, __m256i u, __m256i s) noexcept {
  if constexpr (Wide && !kVnni) {
    const __m256i w = _mm256_xor_si256(u, _mm256_set1_epi8(static_cast<char>(0x80)));
    return _mm256_add_epi32(acc, dot_u8s8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(s, w)));
  } else {
    return dot_acc_u8s8(acc, u, s);
  }
}
// The offset the integer dot must take off (0 where the sign trick already gave Σ w·a).
template <int Off>
inline constexpr int kCorrection = (Off == 128 && !kVnni) ? 0 : Off;

// Runs of 4-byte-group products: h = dot_run_add<Wide>(h, u, s) for each group of a run (from
// h = 0), then dot_run_end(acc, h) adds the run's sums to an s32 vector. Under VNNI h holds s32
// lanes (vpdpbusd). On AVX2 it holds the vpmaddubsw pair sums as s16 lanes, widened by one vpmaddwd
// at the run's end: a run of n groups costs n + 1 multiplies instead of dot_acc's 2n (the
// multiplies, not the adds, bound the AVX2 kernels). The s16 sums are exact while a run is at most
// kS16Run<MaxU> groups, MaxU the largest weight code vpmaddubsw sees (after the sign trick for the
// Wide formats) and |s| <= 128: n·2·MaxU·128 <= 32767 (Q4_0 and Q4_K take runs of 8, MXFP4 10,
// Q6_K 2, Q8_0 and IQ4_NL 1). So the integers, and every output, are those of dot_acc.
template <int MaxU>
inline constexpr int kS16Run = std::max(1, 32767 / (2 * MaxU * 128));
template <bool Wide>
inline __m256i dot_run_add(__m256i h, __m256i u, __m256i s) noexcept {
  if constexpr (kVnni) {
    return dot_acc<Wide>(h, u, s);
  } else {
    if constexpr (Wide) {
      const __m256i w = _mm256_xor_si256(u, _mm256_set1_epi8(static_cast<char>(0x80)));
      u = _mm256_sign_epi8(w, w), s = _mm256_sign_epi8(s, w);
    }
    return _mm256_add_epi16(h, _mm256_maddubs_epi16(u, s));
  }
}
inline __m256i dot_run_end(__m256i acc, __m256i h) noexcept {
  if constexpr (kVnni) return _mm256_add_epi32(acc, h);
  else return _mm256_add_epi32(acc, _mm256_madd_epi16(h, _mm256_set1_epi16(1)));
}
// acc + Σ_{k<N} u(k)·s(k) by runs of kS16Run<MaxU> groups (VNNI: two vpdpbusd chains).
template <int N, int MaxU, bool Wide, class U, class S>
inline __m256i dot_groups(__m256i acc, const U& u, const S& s) noexcept {
  constexpr int kRun = kVnni ? (N + 1) / 2 : kS16Run<MaxU>;
  for (int k0 = 0; k0 < N; k0 += kRun) {
    __m256i h = _mm256_setzero_si256();
    for (int k = k0; k < std::min(N, k0 + kRun); ++k) h = dot_run_add<Wide>(h, u(k), s(k));
    acc = dot_run_end(acc, h);
  }
  return acc;
}

inline __m256i bcast32(const std::uint8_t* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}
// [Σ s0, Σ s1, Σ s2, Σ s3] of four vectors of 8 s32 lanes.
inline __m128i reduce4(__m256i s0, __m256i s1, __m256i s2, __m256i s3) noexcept {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(s0, s1), _mm256_hadd_epi32(s2, s3));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}
inline std::int32_t pack16(int lo, int hi) noexcept {
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(static_cast<std::uint16_t>(lo)) |
                                   (static_cast<std::uint32_t>(static_cast<std::uint16_t>(hi)) << 16));
}

// ---- formats ----------------------------------------------------------------------------------

// 32-element formats: u (32 bytes, element order) and the f32 scale of a block.
template <class W>
struct Fmt32;
template <>
struct Fmt32<quant::BlockQ8_0> {
  static constexpr int kOff = 128, kMaxU = 128;  // |-128| (files may hold it; ggml writes -127..127)
  static __m256i u(const quant::BlockQ8_0& b) noexcept {
    return _mm256_xor_si256(load256(b.qs), _mm256_set1_epi8(static_cast<char>(0x80)));
  }
  static float scale(const quant::BlockQ8_0& b) noexcept { return half_to_float(b.d); }
};
inline __m256i nibbles(const std::uint8_t* qs) noexcept {  // low nibbles of 16 bytes, then the high ones
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0f));
}
template <>
struct Fmt32<quant::BlockQ4_0> {
  static constexpr int kOff = 8, kMaxU = 15;
  static __m256i u(const quant::BlockQ4_0& b) noexcept { return nibbles(b.qs); }
  static float scale(const quant::BlockQ4_0& b) noexcept { return half_to_float(b.d); }
};
inline __m256i table_u(const std::int8_t* table, const std::uint8_t* qs) noexcept {
  const __m128i t = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(table)),
                                  _mm_set1_epi8(static_cast<char>(0x80)));
  return _mm256_shuffle_epi8(_mm256_set_m128i(t, t), nibbles(qs));
}
template <>
struct Fmt32<quant::BlockIq4Nl> {
  static constexpr int kOff = 128, kMaxU = 127;
  static __m256i u(const quant::BlockIq4Nl& b) noexcept { return table_u(quant::kIq4Values, b.qs); }
  static float scale(const quant::BlockIq4Nl& b) noexcept { return half_to_float(b.d); }
};
template <>
struct Fmt32<quant::BlockMxfp4> {  // the table holds E2M1 doubled, so the scale is half of E8M0's
  static constexpr int kOff = 128, kMaxU = 12;
  static __m256i u(const quant::BlockMxfp4& b) noexcept { return table_u(quant::kMxfp4Values, b.qs); }
  static float scale(const quant::BlockMxfp4& b) noexcept { return quant::detail::e8m0_half(b.e); }
};

// A decoded 32-element block (GEMM tile buffer).
struct Dec32 {
  std::uint8_t u[32];
  float d;
};
// A decoded Q4_K super-block: codes (0..15) in element order, group scales, packed min pairs.
struct DecQ4K {
  std::uint8_t u[256];
  std::int32_t sc[8];
  std::int32_t mp[4];  // pack16(m[2j], m[2j+1])
  float d, ndmin;      // d and -dmin
};
// A decoded Q6_K super-block: codes (0..63) in element order, group scales (as s32 and as packed
// s16 pairs).
struct DecQ6K {
  std::uint8_t u[256];
  std::int32_t sc[16];
  std::int32_t sp[8];  // pack16(sc[2j], sc[2j+1])
  float d;
};

inline void decode(const quant::BlockQ4_K& b, DecQ4K& o) noexcept {
  const __m256i low = _mm256_set1_epi8(0x0f);
  for (int c = 0; c < 4; ++c) {
    const __m256i raw = load256(b.qs + 32 * c);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.u + 64 * c), _mm256_and_si256(raw, low));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.u + 64 * c + 32), _mm256_and_si256(_mm256_srli_epi16(raw, 4), low));
  }
  std::uint8_t sc[8], m[8];
  for (int g = 0; g < 8; ++g) quant::detail::scale_min_k4(g, b.scales, sc[g], m[g]);
  for (int g = 0; g < 8; ++g) o.sc[g] = sc[g];
  for (int j = 0; j < 4; ++j) o.mp[j] = pack16(m[2 * j], m[2 * j + 1]);
  o.d = half_to_float(b.d), o.ndmin = -half_to_float(b.dmin);
}

inline void decode(const quant::BlockQ6_K& b, DecQ6K& o) noexcept {
  const __m256i low = _mm256_set1_epi8(0x0f), three = _mm256_set1_epi8(3);
  for (int n = 0; n < 2; ++n) {
    const __m256i ql0 = load256(b.ql + 64 * n), ql1 = load256(b.ql + 64 * n + 32), qh = load256(b.qh + 32 * n);
    for (int g = 0; g < 4; ++g) {
      const __m256i src = (g & 1) ? ql1 : ql0;
      const __m256i lo = g < 2 ? _mm256_and_si256(src, low) : _mm256_and_si256(_mm256_srli_epi16(src, 4), low);
      const __m256i hi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), three), 4);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.u + 128 * n + 32 * g), _mm256_or_si256(lo, hi));
    }
  }
  for (int g = 0; g < 16; ++g) o.sc[g] = b.scales[g];
  for (int j = 0; j < 8; ++j) o.sp[j] = pack16(b.scales[2 * j], b.scales[2 * j + 1]);
  o.d = half_to_float(b.d);
}

// ---- streaming: 4 rows x up to kStreamMaxTokens tokens, lanes = rows in the f32 step -----------

// Software prefetch distance on each of the 4 row streams, in bytes.
inline constexpr index_t kStreamPrefetch = 1024;
template <class W>
inline void prefetch_ahead(const W* p) noexcept {
  for (std::size_t o = 0; o < sizeof(W); o += 64) cpu_detail::prefetch(reinterpret_cast<const char*>(p) + kStreamPrefetch + o);
}

// kT > 0: the token count fixed at compile time (kT == T), so that the accumulators stay in
// registers: with a run-time count they live in a stack array, and at one token (decode) each
// block's fma then waited on the previous block's store (store-forwarding latency on the loop-carried
// chain: 31% of the decode samples sat on that load and store). kT == 0: any T. Same operations.
template <int kT, class W>
void stream_rows4(const W* const* wr, const ActQ8* const* acts, int T_any, index_t nb, float* out) noexcept {
  const int T = kT > 0 ? kT : T_any;
  using F = Fmt32<W>;
  constexpr bool kWide = F::kOff == 128;
  constexpr int kCorr = kCorrection<F::kOff>;
  __m128 acc[cpu_detail::kStreamMaxTokens];
  for (int t = 0; t < T; ++t) acc[t] = _mm_setzero_ps();
  for (index_t b = 0; b < nb; ++b) {
    for (int r = 0; r < 4; ++r) prefetch_ahead(wr[r] + b);
    const __m256i u0 = F::u(wr[0][b]), u1 = F::u(wr[1][b]), u2 = F::u(wr[2][b]), u3 = F::u(wr[3][b]);
    const __m128 dw = _mm_setr_ps(F::scale(wr[0][b]), F::scale(wr[1][b]), F::scale(wr[2][b]), F::scale(wr[3][b]));
    for (int t = 0; t < T; ++t) {
      const ActQ8& a = acts[t][b];
      const __m256i q = load256(a.qs), z = _mm256_setzero_si256();
      __m128i s = reduce4(dot_acc<kWide>(z, u0, q), dot_acc<kWide>(z, u1, q), dot_acc<kWide>(z, u2, q),
                          dot_acc<kWide>(z, u3, q));
      if constexpr (kCorr != 0) s = _mm_sub_epi32(s, _mm_set1_epi32(kCorr * a.sum));
      acc[t] = _mm_fmadd_ps(_mm_mul_ps(dw, _mm_set1_ps(a.d)), _mm_cvtepi32_ps(s), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm_storeu_ps(out + 4 * t, acc[t]);
}

inline std::int32_t hsum_i32(__m256i v) noexcept {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// K formats: each row's super-block decoded once into registers and dotted with every token; the
// 8 lanes of a row and token reduced to one integer at once (a super-block is 256 elements).
template <int kT>
inline void stream_rows4(const quant::BlockQ4_K* const* wr, const quant::BlockQ8_K* const* acts, int T_any, index_t nb,
                         float* out) noexcept {
  const int T = kT > 0 ? kT : T_any;
  __m128 acc[cpu_detail::kStreamMaxTokens];
  for (int t = 0; t < T; ++t) acc[t] = _mm_setzero_ps();
  std::int32_t S[cpu_detail::kStreamMaxTokens][4], M[cpu_detail::kStreamMaxTokens][4];
  const __m256i low = _mm256_set1_epi8(0x0f);
  for (index_t b = 0; b < nb; ++b) {
    alignas(16) float d[4], ndm[4];
    for (int r = 0; r < 4; ++r) {
      const quant::BlockQ4_K& w = wr[r][b];
      prefetch_ahead(&w);
      __m256i u[8];
      for (int c = 0; c < 4; ++c) {
        const __m256i raw = load256(w.qs + 32 * c);
        u[2 * c] = _mm256_and_si256(raw, low);
        u[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low);
      }
      // The 8 six-bit scales and mins in registers (scale_min_k4 on 32-bit words).
      std::uint32_t q[3];
      std::memcpy(q, w.scales, 12);
      const std::uint32_t sc_lo = q[0] & 0x3f3f3f3fu, m_lo = q[1] & 0x3f3f3f3fu;
      const std::uint32_t sc_hi = (q[2] & 0x0f0f0f0fu) | (((q[0] >> 6) & 0x03030303u) << 4);
      const std::uint32_t m_hi = ((q[2] >> 4) & 0x0f0f0f0fu) | (((q[1] >> 6) & 0x03030303u) << 4);
      const __m256i sc32 = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(sc_lo | (std::uint64_t{sc_hi} << 32))));
      const __m128i m8 = _mm_cvtsi64_si128(static_cast<long long>(m_lo | (std::uint64_t{m_hi} << 32)));
      const __m256i mv = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));  // m[j / 2] for the 16 bsums
      __m256i scv[8];
      for (int g = 0; g < 8; ++g) scv[g] = _mm256_permutevar8x32_epi32(sc32, _mm256_set1_epi32(g));
      d[r] = half_to_float(w.d), ndm[r] = -half_to_float(w.dmin);
      for (int t = 0; t < T; ++t) {
        const quant::BlockQ8_K& a = acts[t][b];
        __m256i s = _mm256_setzero_si256();
        for (int g = 0; g < 8; ++g) {
          s = _mm256_add_epi32(s, _mm256_mullo_epi32(dot_acc<false>(_mm256_setzero_si256(), u[g], load256(a.qs + 32 * g)), scv[g]));
        }
        S[t][r] = hsum_i32(s);
        M[t][r] = hsum_i32(_mm256_madd_epi16(mv, load256(a.bsums)));
      }
    }
    const __m128 dv = _mm_load_ps(d), ndmv = _mm_load_ps(ndm);
    for (int t = 0; t < T; ++t) {
      const __m128 da = _mm_set1_ps(acts[t][b].d);
      // (element loads: a vector load of the four scalar stores would stall store forwarding)
      const __m128i sv = _mm_setr_epi32(S[t][0], S[t][1], S[t][2], S[t][3]);
      const __m128i mv = _mm_setr_epi32(M[t][0], M[t][1], M[t][2], M[t][3]);
      acc[t] = _mm_fmadd_ps(_mm_mul_ps(dv, da), _mm_cvtepi32_ps(sv), acc[t]);
      acc[t] = _mm_fmadd_ps(_mm_mul_ps(ndmv, da), _mm_cvtepi32_ps(mv), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm_storeu_ps(out + 4 * t, acc[t]);
}

template <int kT>
inline void stream_rows4(const quant::BlockQ6_K* const* wr, const quant::BlockQ8_K* const* acts, int T_any, index_t nb,
                         float* out) noexcept {
  const int T = kT > 0 ? kT : T_any;
  __m128 acc[cpu_detail::kStreamMaxTokens];
  for (int t = 0; t < T; ++t) acc[t] = _mm_setzero_ps();
  std::int32_t S[cpu_detail::kStreamMaxTokens][4];
  const __m256i low = _mm256_set1_epi8(0x0f), three = _mm256_set1_epi8(3);
  for (index_t b = 0; b < nb; ++b) {
    alignas(16) float d[4];
    for (int r = 0; r < 4; ++r) {
      const quant::BlockQ6_K& w = wr[r][b];
      prefetch_ahead(&w);
      __m256i u[8], scv[8];
      for (int n = 0; n < 2; ++n) {
        const __m256i ql0 = load256(w.ql + 64 * n), ql1 = load256(w.ql + 64 * n + 32), qh = load256(w.qh + 32 * n);
        for (int g = 0; g < 4; ++g) {
          const __m256i src = (g & 1) ? ql1 : ql0;
          const __m256i lo = g < 2 ? _mm256_and_si256(src, low) : _mm256_and_si256(_mm256_srli_epi16(src, 4), low);
          const __m256i hi = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), three), 4);
          u[4 * n + g] = _mm256_or_si256(lo, hi);
        }
      }
      const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.scales));
      for (int v = 0; v < 8; ++v) {  // lanes 0-3: group 2v, lanes 4-7: group 2v + 1
        const char a = static_cast<char>(2 * v), c = static_cast<char>(2 * v + 1);
        scv[v] = _mm256_cvtepi8_epi32(_mm_shuffle_epi8(sc, _mm_setr_epi8(a, a, a, a, c, c, c, c, 0, 0, 0, 0, 0, 0, 0, 0)));
      }
      const __m256i sc16 = _mm256_cvtepi8_epi16(sc);
      d[r] = half_to_float(w.d);
      for (int t = 0; t < T; ++t) {
        const quant::BlockQ8_K& a = acts[t][b];
        // Σ_g sc_g·(Σ q·q_a - 32·bsum_g)
        __m256i s = _mm256_slli_epi32(_mm256_madd_epi16(sc16, load256(a.bsums)), 5);
        s = _mm256_sub_epi32(_mm256_setzero_si256(), s);
        for (int v = 0; v < 8; ++v) {
          s = _mm256_add_epi32(s, _mm256_mullo_epi32(dot_acc<false>(_mm256_setzero_si256(), u[v], load256(a.qs + 32 * v)), scv[v]));
        }
        S[t][r] = hsum_i32(s);
      }
    }
    const __m128 dv = _mm_load_ps(d);
    for (int t = 0; t < T; ++t) {
      const __m128i sv = _mm_setr_epi32(S[t][0], S[t][1], S[t][2], S[t][3]);
      acc[t] = _mm_fmadd_ps(_mm_mul_ps(dv, _mm_set1_ps(acts[t][b].d)), _mm_cvtepi32_ps(sv), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm_storeu_ps(out + 4 * t, acc[t]);
}

// ---- GEMM vectors: 16 tokens per zmm where AVX-512 VNNI is targeted, else 8 per ymm ------------

namespace gv {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512F__)
using I = __m512i;
using F = __m512;
inline constexpr int kLanes = 16;
inline I izero() noexcept { return _mm512_setzero_si512(); }
inline I iload(const void* p) noexcept { return _mm512_loadu_si512(p); }
inline I set1(std::int32_t v) noexcept { return _mm512_set1_epi32(v); }
inline I add(I a, I b) noexcept { return _mm512_add_epi32(a, b); }
inline I sub(I a, I b) noexcept { return _mm512_sub_epi32(a, b); }
inline I mullo(I a, I b) noexcept { return _mm512_mullo_epi32(a, b); }
inline I madd16(I a, I b) noexcept { return _mm512_madd_epi16(a, b); }
inline I shl5(I a) noexcept { return _mm512_slli_epi32(a, 5); }
template <bool>
inline I dot(I acc, I u, I s) noexcept { return _mm512_dpbusd_epi32(acc, u, s); }
inline F fzero() noexcept { return _mm512_setzero_ps(); }
inline F fload(const float* p) noexcept { return _mm512_loadu_ps(p); }
inline F fset1(float v) noexcept { return _mm512_set1_ps(v); }
inline F cvt(I a) noexcept { return _mm512_cvtepi32_ps(a); }
inline F mul(F a, F b) noexcept { return _mm512_mul_ps(a, b); }
inline F fmadd(F a, F b, F c) noexcept { return _mm512_fmadd_ps(a, b, c); }
inline void fstore(float* p, F v) noexcept { _mm512_storeu_ps(p, v); }
#else
using I = __m256i;
using F = __m256;
inline constexpr int kLanes = 8;
inline I izero() noexcept { return _mm256_setzero_si256(); }
inline I iload(const void* p) noexcept { return load256(p); }
inline I set1(std::int32_t v) noexcept { return _mm256_set1_epi32(v); }
inline I add(I a, I b) noexcept { return _mm256_add_epi32(a, b); }
inline I sub(I a, I b) noexcept { return _mm256_sub_epi32(a, b); }
inline I mullo(I a, I b) noexcept { return _mm256_mullo_epi32(a, b); }
inline I madd16(I a, I b) noexcept { return _mm256_madd_epi16(a, b); }
inline I shl5(I a) noexcept { return _mm256_slli_epi32(a, 5); }
template <bool Wide>
inline I dot(I acc, I u, I s) noexcept { return dot_acc<Wide>(acc, u, s); }
inline F fzero() noexcept { return _mm256_setzero_ps(); }
inline F fload(const float* p) noexcept { return _mm256_loadu_ps(p); }
inline F fset1(float v) noexcept { return _mm256_set1_ps(v); }
inline F cvt(I a) noexcept { return _mm256_cvtepi32_ps(a); }
inline F mul(F a, F b) noexcept { return _mm256_mul_ps(a, b); }
inline F fmadd(F a, F b, F c) noexcept { return _mm256_fmadd_ps(a, b, c); }
inline void fstore(float* p, F v) noexcept { _mm256_storeu_ps(p, v); }
#endif
// Keeps a panel vector in a register for the tile's rows (GCC otherwise reloads it from L1 as a
// memory operand of every product, and the loads, not the products, bound the loop).
inline void keep(I& v) noexcept { __asm__("" : "+v"(v)); }
inline I bcast(const std::uint8_t* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return set1(v);
}
}  // namespace gv

// ---- GEMM panels: kPanel tokens' activation blocks, each 4-byte group of the tokens in one vector

inline constexpr int kPanel = gv::kLanes;

struct Panel32 {
  std::int8_t q[8][4 * kPanel];  // q[k][4l + j] = token l's code 4k + j
  float d[kPanel];
  std::int32_t corr[kPanel];  // kCorrection · Σ codes
};
struct PanelK {
  std::int8_t q[64][4 * kPanel];
  float d[kPanel];
  std::int32_t gs[4][kPanel];  // pack16(sum of group 2j, sum of group 2j+1), groups of 32 (Q4_K's mins)
  std::int32_t bs[8][kPanel];  // pack16(bsums[2j], bsums[2j+1]) (Q6_K's offset)
};

template <int Corr>
inline void fill_panel(const ActQ8* const* acts, int n, index_t b, Panel32& p) noexcept {
  std::memset(&p, 0, sizeof(p));
  for (int l = 0; l < n; ++l) {
    const ActQ8& a = acts[l][b];
    for (int k = 0; k < 8; ++k) std::memcpy(p.q[k] + 4 * l, a.qs + 4 * k, 4);
    p.d[l] = a.d, p.corr[l] = Corr * a.sum;
  }
}
template <int>
inline void fill_panel(const quant::BlockQ8_K* const* acts, int n, index_t b, PanelK& p) noexcept {
  std::memset(&p, 0, sizeof(p));
  for (int l = 0; l < n; ++l) {
    const quant::BlockQ8_K& a = acts[l][b];
    for (int k = 0; k < 64; ++k) std::memcpy(p.q[k] + 4 * l, a.qs + 4 * k, 4);
    p.d[l] = a.d;
    for (int j = 0; j < 4; ++j) {
      p.gs[j][l] = pack16(a.bsums[4 * j] + a.bsums[4 * j + 1], a.bsums[4 * j + 2] + a.bsums[4 * j + 3]);
    }
    for (int j = 0; j < 8; ++j) p.bs[j][l] = pack16(a.bsums[2 * j], a.bsums[2 * j + 1]);
  }
}

// Σ over N 4-byte groups: u the row's 4·N bytes, q[k] the panel's group-k vectors, codes of
// magnitude at most MaxU (zmm: two vpdpbusd chains; ymm: dot_groups' s16 runs).
template <bool Wide, int MaxU, int N = 8>
inline gv::I dot_panel(const std::uint8_t* u, const gv::I* q) noexcept {
  if constexpr (gv::kLanes == 16) {
    gv::I s0 = gv::izero(), s1 = gv::izero();
    for (int k = 0; k < N; k += 2) {
      s0 = gv::dot<Wide>(s0, gv::bcast(u + 4 * k), q[k]);
      s1 = gv::dot<Wide>(s1, gv::bcast(u + 4 * k + 4), q[k + 1]);
    }
    return gv::add(s0, s1);
  } else {
    return dot_groups<N, MaxU, Wide>(gv::izero(), [&](int k) { return gv::bcast(u + 4 * k); }, [&](int k) { return q[k]; });
  }
}

// acc[r] (lanes = the panel's tokens) over all blocks of R decoded rows.
template <int Off, int MaxU, int R>
inline void tile(const Dec32* const* rows, const Panel32* p, index_t nb, gv::F* acc) noexcept {
  constexpr bool kWide = Off == 128;
  for (index_t b = 0; b < nb; ++b) {
    gv::I q[8];
    for (int k = 0; k < 8; ++k) {
      q[k] = gv::iload(p[b].q[k]);
      gv::keep(q[k]);
    }
    const gv::F da = gv::fload(p[b].d);
    const gv::I corr = gv::iload(p[b].corr);
    for (int r = 0; r < R; ++r) {
      const Dec32& w = rows[r][b];
      gv::I s = dot_panel<kWide, MaxU>(w.u, q);
      if constexpr (kCorrection<Off> != 0) s = gv::sub(s, corr);
      acc[r] = gv::fmadd(gv::mul(gv::fset1(w.d), da), gv::cvt(s), acc[r]);
    }
  }
}

template <int, int, int R>
inline void tile(const DecQ4K* const* rows, const PanelK* p, index_t nb, gv::F* acc) noexcept {
  for (index_t b = 0; b < nb; ++b) {
    gv::I is[R];
    for (int r = 0; r < R; ++r) is[r] = gv::izero();
    for (int g = 0; g < 8; ++g) {
      gv::I q[8];
      for (int k = 0; k < 8; ++k) {
        q[k] = gv::iload(p[b].q[8 * g + k]);
        gv::keep(q[k]);
      }
      for (int r = 0; r < R; ++r) {
        const gv::I s = dot_panel<false, 15>(rows[r][b].u + 32 * g, q);
        is[r] = gv::add(is[r], gv::mullo(s, gv::set1(rows[r][b].sc[g])));
      }
    }
    const gv::F da = gv::fload(p[b].d);
    for (int r = 0; r < R; ++r) {
      const DecQ4K& w = rows[r][b];
      gv::I m = gv::madd16(gv::iload(p[b].gs[0]), gv::set1(w.mp[0]));
      for (int j = 1; j < 4; ++j) m = gv::add(m, gv::madd16(gv::iload(p[b].gs[j]), gv::set1(w.mp[j])));
      acc[r] = gv::fmadd(gv::mul(gv::fset1(w.d), da), gv::cvt(is[r]), acc[r]);
      acc[r] = gv::fmadd(gv::mul(gv::fset1(w.ndmin), da), gv::cvt(m), acc[r]);
    }
  }
}

template <int, int, int R>
inline void tile(const DecQ6K* const* rows, const PanelK* p, index_t nb, gv::F* acc) noexcept {
  for (index_t b = 0; b < nb; ++b) {
    gv::I is[R];
    for (int r = 0; r < R; ++r) is[r] = gv::izero();
    for (int h = 0; h < 8; ++h) {  // 32 elements: scale groups 2h and 2h + 1
      gv::I q[8];
      for (int k = 0; k < 8; ++k) {
        q[k] = gv::iload(p[b].q[8 * h + k]);
        gv::keep(q[k]);
      }
      for (int r = 0; r < R; ++r) {
        const std::uint8_t* u = rows[r][b].u + 32 * h;
        const gv::I s0 = dot_panel<false, 63, 4>(u, q), s1 = dot_panel<false, 63, 4>(u + 16, q + 4);
        is[r] = gv::add(is[r], gv::mullo(s0, gv::set1(rows[r][b].sc[2 * h])));
        is[r] = gv::add(is[r], gv::mullo(s1, gv::set1(rows[r][b].sc[2 * h + 1])));
      }
    }
    const gv::F da = gv::fload(p[b].d);
    for (int r = 0; r < R; ++r) {
      const DecQ6K& w = rows[r][b];
      gv::I c = gv::madd16(gv::iload(p[b].bs[0]), gv::set1(w.sp[0]));
      for (int j = 1; j < 8; ++j) c = gv::add(c, gv::madd16(gv::iload(p[b].bs[j]), gv::set1(w.sp[j])));
      acc[r] = gv::fmadd(gv::mul(gv::fset1(w.d), da), gv::cvt(gv::sub(is[r], gv::shl5(c))), acc[r]);
    }
  }
}

// Which formats these kernels take, their decoded block and their activation panel.
template <class W>
struct Traits {
  static constexpr bool kOn = false;
};
template <class W>
  requires requires { Fmt32<W>::kOff; }
struct Traits<W> {
  static constexpr bool kOn = true;
  static constexpr int kCorr = kCorrection<Fmt32<W>::kOff>, kOff = Fmt32<W>::kOff, kMaxU = Fmt32<W>::kMaxU;
  using Dec = Dec32;
  using Panel = Panel32;
  static void decode(const W& b, Dec32& o) noexcept {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.u), Fmt32<W>::u(b));
    o.d = Fmt32<W>::scale(b);
  }
};
template <>
struct Traits<quant::BlockQ4_K> {
  static constexpr bool kOn = true;
  static constexpr int kCorr = 0, kOff = 0, kMaxU = 15;
  using Dec = DecQ4K;
  using Panel = PanelK;
  static void decode(const quant::BlockQ4_K& b, DecQ4K& o) noexcept { igemm::decode(b, o); }
};
template <>
struct Traits<quant::BlockQ6_K> {
  static constexpr bool kOn = true;
  static constexpr int kCorr = 0, kOff = 0, kMaxU = 63;
  using Dec = DecQ6K;
  using Panel = PanelK;
  static void decode(const quant::BlockQ6_K& b, DecQ6K& o) noexcept { igemm::decode(b, o); }
};

}  // namespace igemm
template <class W>
inline constexpr bool kIgemm = igemm::Traits<W>::kOn;
#else
template <class W>
inline constexpr bool kIgemm = false;
#endif

// A per-thread buffer of activation blocks, grown on first use (no allocation on later calls).
template <class A>
A* act_scratch(index_t n) {
  thread_local AlignedBuffer<A> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

#if defined(__AVX2__)
// The streaming path of the igemm formats: groups of 4 rows (the last group repeats its last row).
template <class W>
void igemm_streaming(const View<const float, 2>& x, const View<const W, 2>& w, const View<float, 2>& y) {
  using A = typename ActFor<W>::type;
  const index_t n_tokens = x.extent(0), nb = w.extent(1), d_out = w.extent(0);
  A* acts = act_scratch<A>(n_tokens * nb);
  for (index_t t = 0; t < n_tokens; ++t) {
    const float* xr = x.data() + t * x.stride(0);
    for (index_t b = 0; b < nb; ++b) quantize_act(xr + b * W::block_elements, acts[t * nb + b]);
  }
  constexpr index_t R = igemm::kStreamRows;
  const index_t grain =
      std::max<index_t>(1, cpu_detail::kMinWorkPerThread / std::max<index_t>(nb * W::block_elements * n_tokens, 1));
  parallel_for_chunks(d_out, grain, [&](index_t o_begin, index_t o_end) {
    const A* rows[cpu_detail::kStreamMaxTokens];
    for (index_t t = 0; t < n_tokens; ++t) rows[t] = acts + t * nb;
    float out[cpu_detail::kStreamMaxTokens * R];
    // The chunk as 4 side-by-side sub-ranges, one row of each per pass: 4 sequential streams
    // (rows next to each other would interleave 4 streams within the same pages, which the
    // hardware prefetchers follow badly: half the read bandwidth for the output head).
    const index_t span = (o_end - o_begin + R - 1) / R;
    for (index_t i = 0; i < span; ++i) {
      const W* wr[R];
      index_t o[R];
      for (index_t r = 0; r < R; ++r) {
        o[r] = o_begin + r * span + i;
        wr[r] = w.data() + std::min(o[r], o_end - 1) * w.stride(0);
      }
      if (n_tokens == 1) igemm::stream_rows4<1>(wr, rows, 1, nb, out);
      else igemm::stream_rows4<0>(wr, rows, static_cast<int>(n_tokens), nb, out);
      for (index_t r = 0; r < R && o[r] < o_end; ++r) {
        for (index_t t = 0; t < n_tokens; ++t) y(t, o[r]) = out[t * R + r];
      }
    }
  });
}

// From this many tokens on the igemm formats take the GEMM (measured on Zen 4, one thread,
// [768, 2048] experts: with AVX-512 VNNI's 16-token zmm panels the GEMM is as fast as streaming
// at 6-8 tokens for the 32-element formats and at 8-10 for the K formats, 1.9x / 1.6x faster at
// 16; compiled for AVX2 only (8-token panels, the sign trick for the signed codes) Q8_0's GEMM
// only catches up at 16 tokens, the K formats' at 8). At most kStreamMaxTokens + 1 (the
// streaming kernel holds that many accumulators).
template <class W>
constexpr index_t igemm_gemm_from() noexcept {
  if constexpr (igemm::kVnni) return W::block_elements == 32 ? 8 : 10;
  else return W::block_elements == 32 ? cpu_detail::kStreamMaxTokens + 1 : 10;  // AVX2: 8-token ymm panels
}

// Activation panels of this many bytes at most are reused across a pass over the weight tiles
// (L2-sized); more tokens take several passes, each decoding the tiles again.
inline constexpr index_t kPanelBytes = index_t{384} << 10;

// The GEMM's inner step: one decoded tile (rows[r], r < kTileRows, nb blocks each) against panels
// [p0, p1) of n_tokens tokens, into y's columns tile·kTileRows + r for r < n_rows. Shared by
// igemm_gemm_tiles and the expert bank's one region (kernels/cpu/interleaved_experts.hpp), whose
// results must be bitwise these.
template <class W>
void igemm_tile_panels(const typename igemm::Traits<W>::Dec* const* rows, const typename igemm::Traits<W>::Panel* panels,
                       index_t p0, index_t p1, index_t nb, index_t n_tokens, index_t tile, int n_rows,
                       const View<float, 2>& y) noexcept {
  constexpr int P = igemm::kPanel, R = igemm::kTileRows;
  alignas(64) float lanes[R][P];
  for (index_t p = p0; p < p1; ++p) {
    igemm::gv::F acc[R];
    for (int r = 0; r < R; ++r) acc[r] = igemm::gv::fzero();
    igemm::tile<igemm::Traits<W>::kOff, igemm::Traits<W>::kMaxU, R>(rows, panels + p * nb, nb, acc);
    for (int r = 0; r < R; ++r) igemm::gv::fstore(lanes[r], acc[r]);
    const int n = static_cast<int>(std::min<index_t>(P, n_tokens - p * P));
    for (int l = 0; l < n; ++l) {
      for (int r = 0; r < n_rows; ++r) y(p * P + l, tile * R + r) = lanes[r][l];
    }
  }
}

// The GEMM path of the igemm formats (from igemm_gemm_from<W>() tokens) for d_out weight rows of
// nb blocks: decode_tile(tile, dec) decodes rows tile·kTileRows + r (r < kTileRows; rows past
// d_out repeat the last one) into dec[r·nb + b], from whatever layout the weights are in.
template <class W, class DecodeTile>
void igemm_gemm_tiles(const View<const float, 2>& x, index_t d_out, index_t nb, const View<float, 2>& y,
                      const DecodeTile& decode_tile) {
  using Tr = igemm::Traits<W>;
  using A = typename ActFor<W>::type;
  using Dec = typename Tr::Dec;
  using Panel = typename Tr::Panel;
  constexpr int P = igemm::kPanel, R = igemm::kTileRows;
  const index_t n_tokens = x.extent(0);
  if (n_tokens == 0 || d_out == 0) return;
  const index_t n_panels = (n_tokens + P - 1) / P;
  A* acts = act_scratch<A>(n_tokens * nb);
  Panel* panels = act_scratch<Panel>(n_panels * nb);
  // Quantize and lay out the activations, a panel at a time (each token by the same operations
  // as the streaming path, on whichever thread).
  parallel_for_chunks(n_panels, std::max<index_t>(1, 4096 / std::max<index_t>(nb, 1)), [&](index_t p0, index_t p1) {
    for (index_t p = p0; p < p1; ++p) {
      const int n = static_cast<int>(std::min<index_t>(P, n_tokens - p * P));
      const A* rows[P];
      for (int l = 0; l < n; ++l) {
        const index_t t = p * P + l;
        const float* xr = x.data() + t * x.stride(0);
        for (index_t b = 0; b < nb; ++b) quantize_act(xr + b * W::block_elements, acts[t * nb + b]);
        rows[l] = acts + t * nb;
      }
      for (index_t b = 0; b < nb; ++b) igemm::fill_panel<Tr::kCorr>(rows, n, b, panels[p * nb + b]);
    }
  });
  const index_t n_tiles = (d_out + R - 1) / R;
  const index_t grain = std::max<index_t>(
      1, cpu_detail::kMinWorkPerThread / std::max<index_t>(nb * W::block_elements * n_tokens * R, 1));
  const index_t pass = std::max<index_t>(1, kPanelBytes / std::max<index_t>(nb * sizeof(Panel), 1));
  parallel_for_chunks(n_tiles, grain, [&](index_t t_begin, index_t t_end) {
    Dec* dec = act_scratch<Dec>(R * nb);
    const Dec* rows[R];
    for (int r = 0; r < R; ++r) rows[r] = dec + r * nb;
    for (index_t p0 = 0; p0 < n_panels; p0 += pass) {
      const index_t p1 = std::min(n_panels, p0 + pass);
      for (index_t tile = t_begin; tile < t_end; ++tile) {
        decode_tile(tile, dec);
        const int n_rows = static_cast<int>(std::min<index_t>(R, d_out - tile * R));
        igemm_tile_panels<W>(rows, panels, p0, p1, nb, n_tokens, tile, n_rows, y);
      }
    }
  });
}

// The GEMM path on weights stored row by row.
template <class W>
void igemm_gemm(const View<const float, 2>& x, const View<const W, 2>& w, const View<float, 2>& y) {
  constexpr int R = igemm::kTileRows;
  const index_t nb = w.extent(1), d_out = w.extent(0);
  igemm_gemm_tiles<W>(x, d_out, nb, y, [&](index_t tile, typename igemm::Traits<W>::Dec* dec) {
    for (int r = 0; r < R; ++r) {
      const W* wr = w.data() + std::min<index_t>(tile * R + r, d_out - 1) * w.stride(0);
      for (index_t b = 0; b < nb; ++b) igemm::Traits<W>::decode(wr[b], dec[r * nb + b]);
    }
  });
}
#else
template <class W>
constexpr index_t igemm_gemm_from() noexcept {
  return 0;
}
template <class W>
void igemm_streaming(const View<const float, 2>&, const View<const W, 2>&, const View<float, 2>&) {}
template <class W>
void igemm_gemm(const View<const float, 2>&, const View<const W, 2>&, const View<float, 2>&) {}
#endif

template <class Arch, class W>
void matmul_streaming(const View<const float, 2>& x, const View<const W, 2>& w, const View<float, 2>& y) {
  const index_t n_tokens = x.extent(0), nb = w.extent(1), d_out = w.extent(0);
  const index_t grain =
      std::max<index_t>(1, cpu_detail::kMinWorkPerThread / std::max<index_t>(nb * W::block_elements * n_tokens, 1));
  using A = typename ActFor<W>::type;
  if constexpr (kIgemm<W>) {
    igemm_streaming(x, w, y);
  } else if constexpr (!std::is_void_v<A> && kIntDot) {
    static_assert(W::block_elements == sizeof(A::qs), "activation blocks must match the weight blocks");
    A* acts = act_scratch<A>(n_tokens * nb);
    for (index_t t = 0; t < n_tokens; ++t) {
      const float* xr = x.data() + t * x.stride(0);
      for (index_t b = 0; b < nb; ++b) quantize_act(xr + b * W::block_elements, acts[t * nb + b]);
    }
    parallel_for_chunks(d_out, grain, [&](index_t o_begin, index_t o_end) {
      const A* rows[cpu_detail::kStreamMaxTokens];
      for (index_t t = 0; t < n_tokens; ++t) rows[t] = acts + t * nb;
      float out[cpu_detail::kStreamMaxTokens];
      for (index_t o = o_begin; o < o_end; ++o) {
        const W* wr = w.data() + o * w.stride(0);
        if (o + 1 < o_end) {
          for (index_t p = 0; p < nb * sizeof(W); p += 64) cpu_detail::prefetch(reinterpret_cast<const char*>(wr + w.stride(0)) + p);
        }
        dot_row(wr, rows, static_cast<int>(n_tokens), nb, out);
        for (index_t t = 0; t < n_tokens; ++t) y(t, o) = out[t];
      }
    });
  } else {
    parallel_for_chunks(d_out, grain, [&](index_t o_begin, index_t o_end) {
      float out[cpu_detail::kStreamMaxTokens];
      for (index_t o = o_begin; o < o_end; ++o) {
        dot_row_f32<Arch>(w.data() + o * w.stride(0), x.data(), x.stride(0), static_cast<int>(n_tokens), nb, out);
        for (index_t t = 0; t < n_tokens; ++t) y(t, o) = out[t];
      }
    });
  }
}

// Packs B = Wᵀ for a block-format W [N, K/BE blocks]: dst[(s*kc + k)*NR + j] = W[n0+s*NR+j, k0+k]
// dequantized (k0 and kc multiples of the block size: the GEMM's K blocks are 256 wide).
template <class Arch, class W>
void pack_b_blocks(const View<const W, 2>& w, index_t n0, index_t nc, index_t k0, index_t kc, float* dst) noexcept {
  constexpr index_t NR = cpu_detail::GemmShape<Arch>::kNr, BE = W::block_elements;
  alignas(64) float tmp[BE];
  for (index_t s = 0; s * NR < nc; ++s) {
    const index_t cols = std::min(NR, nc - s * NR);
    float* d = dst + s * kc * NR;
    for (index_t j = 0; j < cols; ++j) {
      const W* row = w.data() + (n0 + s * NR + j) * w.stride(0);
      for (index_t k = 0; k < kc; k += BE) {
        W::dequantize(row[(k0 + k) / BE], tmp);
        for (index_t e = 0; e < BE; ++e) d[(k + e) * NR + j] = tmp[e];
      }
    }
    for (index_t j = cols; j < NR; ++j) {
      for (index_t k = 0; k < kc; ++k) d[k * NR + j] = 0.0f;
    }
  }
}

}  // namespace cpu_quant

// y = x·Wᵀ with W [out, in] in a block format (in / block_elements blocks per row). x [n, in] f32,
// y [n, out] f32, unit inner strides, y not aliasing x. Runs on the OpenMP team; one call at a
// time per y. Keeps per-thread scratch (activation blocks, packed panels) after the first call.
template <class W, class Arch>
  requires is_block_format_v<W>
void matmul(backend::cpu_simd<Arch>, View<const float, 2> x, View<const W, 2> w, View<float, 2> y) {
  detail::check_matmul(x, w, y, "matmul");
  static_assert(cpu_detail::GemmShape<Arch>::kKc % W::block_elements == 0, "GEMM K blocks must hold whole blocks");
  if constexpr (cpu_quant::kIgemm<W>) {
    // Both integer paths compute every output by the same operations: the switch point only
    // changes the speed.
    if (x.extent(0) < cpu_quant::igemm_gemm_from<W>()) cpu_quant::igemm_streaming(x, w, y);
    else cpu_quant::igemm_gemm(x, w, y);
  } else if (x.extent(0) <= cpu_detail::kStreamMaxTokens) {
    cpu_quant::matmul_streaming<Arch>(x, w, y);
  } else {
    cpu_detail::gemm_packed<Arch>(x, y, w.extent(0), [&](index_t n0, index_t nc, index_t k0, index_t kc, float* dst) {
      cpu_quant::pack_b_blocks<Arch>(w, n0, nc, k0, kc, dst);
    });
  }
}

// The other ops with a block-format weight run the oracle's loops (no block-format vector or
// input-major weight is on a hot path yet: GGUF stores norms and biases in f32 and every matrix
// [out, in]).
template <class W, class Arch>
  requires is_block_format_v<W>
void matmul_in_out(backend::cpu_simd<Arch>, View<const float, 2> x, View<const W, 2> w, View<float, 2> y) {
  matmul_in_out(backend::reference{}, x, w, y);
}

template <class W, class Arch>
  requires is_block_format_v<W>
void rmsnorm(backend::cpu_simd<Arch>, View<const float, 2> x, View<const W, 1> weight, float eps, View<float, 2> y) {
  rmsnorm(backend::reference{}, x, weight, eps, y);
}

// MLA's kv_b_proj in a block format, heads in turn. The query absorption q_nope·W_UK[h] is an
// input-major product whose sums run across the blocks' rows, so no integer dot product applies:
// each head's W_UK [nope, rank] is decoded into f32 (rows across the team; 256 KiB at DeepSeek's
// 128 × 512, so it stays in L2) and multiplied by the f32 matmul_in_out (streaming for a few
// tokens, the packed GEMM beyond). The oracle's loop decoded every element once per token: 58% of
// a DeepSeek-V2-Lite Q4_0 prefill. The value expansion runs the cpu's quantized matmul per head.
template <class W, class Arch>
  requires is_block_format_v<W>
void mla_absorb_queries(backend::cpu_simd<Arch> be, const MlaShape& s, View<const W, 2> kv_b, View<const float, 2> q,
                        View<float, 2> q_latent) {
  detail::check_mla_projection(s, kv_b.extent(0), detail::weight_cols(kv_b), q.extent(0), q.extent(1),
                               q_latent.extent(0), q_latent.extent(1), "mla_absorb_queries", s.n_heads * s.qk(),
                               s.n_heads * s.kv_lora_rank);
  const index_t r = s.kv_lora_rank, nb = kv_b.extent(1);
  thread_local AlignedBuffer<float> decoded;
  if (decoded.size() < s.nope * r) decoded.resize(s.nope * r);
  float* wk = decoded.data();
  for (index_t h = 0; h < s.n_heads; ++h) {
    const View<const W, 2> rows = detail::mla_key_up(s, kv_b, h);
    parallel_for_chunks(s.nope, std::max<index_t>(1, 16384 / std::max<index_t>(r, 1)), [&](index_t i0, index_t i1) {
      for (index_t i = i0; i < i1; ++i) {
        for (index_t b = 0; b < nb; ++b) W::dequantize(rows(i, b), wk + i * r + b * W::block_elements);
      }
    });
    matmul_in_out(be, detail::head_columns(q, h * s.qk(), s.nope), View<const float, 2>(wk, {s.nope, r}),
                  detail::head_columns(q_latent, h * r, r));
  }
}

template <class W, class Arch>
  requires is_block_format_v<W>
void mla_expand_values(backend::cpu_simd<Arch> be, const MlaShape& s, View<const W, 2> kv_b,
                       View<const float, 2> out_latent, View<float, 2> out) {
  detail::check_mla_projection(s, kv_b.extent(0), detail::weight_cols(kv_b), out_latent.extent(0),
                               out_latent.extent(1), out.extent(0), out.extent(1), "mla_expand_values",
                               s.n_heads * s.kv_lora_rank, s.n_heads * s.v);
  for (index_t h = 0; h < s.n_heads; ++h) {
    matmul(be, detail::head_columns(out_latent, h * s.kv_lora_rank, s.kv_lora_rank), detail::mla_value_up(s, kv_b, h),
           detail::head_columns(out, h * s.v, s.v));
  }
}

}  // namespace moe::kernels

#include "moe/kernels/cpu/warnings_pop.hpp"
