// cpu_simd matrix products with weights in the row-interleaved layout quant::Rows8<W> (Q4_0, Q8_0,
// IQ4_NL, Q4_K, Q6_K; model/repack.hpp makes it at load). y = x·Wᵀ for w [out / 8, in / block]
// groups of 8 rows.
//   * below kInterleavedGemmFrom tokens (decode, small batches, most experts' buckets): per
//     group and block, the 8 rows' codes are 8 vectors of 8 lanes (one row per s32 lane, elements
//     4k .. 4k+3), each token's 4 activation bytes are broadcast against them, and the 8 f16 scales
//     convert in one vcvtph2ps: one f32 fma per block for 8 rows, with no horizontal reduction (the
//     row-major streaming kernel reduces 8 lanes per row and block).
//   * more tokens: the igemm GEMM of cpu/quant_matmul.hpp, its 8-row tiles decoded from a group.
// Every output is computed by the same operations as the row-major kernels of quant_matmul.hpp
// (acc = fma(d_w·d_a, float(S - corr), acc) per block, S the block's exact integer dot), so an
// interleaved matrix gives bitwise the outputs of the matrix it was made from.
#pragma once

#include "moe/kernels/cpu/quant_matmul.hpp"
#include "moe/quant/rows8.hpp"

#include <span>

#include "moe/kernels/cpu/warnings_push.hpp"

namespace moe::kernels {

#if defined(__AVX2__)
inline constexpr bool kInterleavedKernels = true;

namespace cpu_quant::igemm {

// A group's block as 8 vectors u[k] of the rows' unsigned codes for elements 4k .. 4k+3 (as Fmt32:
// u = w + kOff, the integer dot takes kCorrection<kOff>·Σ a off).
template <class W>
struct R8;
template <>
struct R8<quant::BlockQ4_0> {
  static constexpr int kOff = 8, kMaxU = Fmt32<quant::BlockQ4_0>::kMaxU;
  static void u(const quant::Rows8<quant::BlockQ4_0>& g, __m256i* u) noexcept {
    const __m256i low = _mm256_set1_epi8(0x0f);
    for (int c = 0; c < 4; ++c) {  // byte j of a group holds element j (low nibble) and j + 16
      const __m256i raw = load256(g.qs[c]);
      u[c] = _mm256_and_si256(raw, low);
      u[4 + c] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low);
    }
  }
};
template <>
struct R8<quant::BlockQ8_0> {
  static constexpr int kOff = 128, kMaxU = Fmt32<quant::BlockQ8_0>::kMaxU;
  static void u(const quant::Rows8<quant::BlockQ8_0>& g, __m256i* u) noexcept {
    for (int c = 0; c < 8; ++c) u[c] = _mm256_xor_si256(load256(g.qs[c]), _mm256_set1_epi8(static_cast<char>(0x80)));
  }
};
template <>
struct R8<quant::BlockIq4Nl> {
  static constexpr int kOff = 128, kMaxU = Fmt32<quant::BlockIq4Nl>::kMaxU;
  static void u(const quant::Rows8<quant::BlockIq4Nl>& g, __m256i* u) noexcept {
    const __m128i t = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(quant::kIq4Values)),
                                    _mm_set1_epi8(static_cast<char>(0x80)));
    const __m256i table = _mm256_set_m128i(t, t), low = _mm256_set1_epi8(0x0f);
    for (int c = 0; c < 4; ++c) {
      const __m256i raw = load256(g.qs[c]);
      u[c] = _mm256_shuffle_epi8(table, _mm256_and_si256(raw, low));
      u[4 + c] = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(raw, 4), low));
    }
  }
};

// 8 f16 scales as f32 (exact, by F16C or the portable conversion).
inline __m256 scales8_f16(const f16* h) noexcept {
#if defined(__F16C__)
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h)));
#else
  alignas(32) float d[8];
  for (int r = 0; r < 8; ++r) d[r] = half_to_float(h[r]);
  return _mm256_load_ps(d);
#endif
}
template <class W>
inline __m256 scales8(const quant::Rows8<W>& g) noexcept {
  return scales8_f16(g.d);
}

// out[8t + r] for the group's 8 rows and T tokens (kT > 0: T fixed at compile time, accumulators
// in registers; see stream_rows4).
template <int kT, class W>
void stream_rows8(const quant::Rows8<W>* g, const ActQ8* const* acts, int T_any, index_t nb, float* out) noexcept {
  const int T = kT > 0 ? kT : T_any;
  using F = R8<W>;
  constexpr bool kWide = F::kOff == 128;
  constexpr int kCorr = kCorrection<F::kOff>;
  __m256 acc[cpu_detail::kStreamMaxTokens];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (index_t b = 0; b < nb; ++b) {
    prefetch_ahead(g + b);
    __m256i u[8];
    F::u(g[b], u);
    const __m256 dw = scales8(g[b]);
    for (int t = 0; t < T; ++t) {
      const ActQ8& a = acts[t][b];
      const auto* q = reinterpret_cast<const std::uint8_t*>(a.qs);
      __m256i s = dot_groups<8, F::kMaxU, kWide>(_mm256_setzero_si256(), [&](int k) { return u[k]; },
                                                 [&](int k) { return bcast32(q + 4 * k); });
      if constexpr (kCorr != 0) s = _mm256_sub_epi32(s, _mm256_set1_epi32(kCorr * a.sum));
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(a.d)), _mm256_cvtepi32_ps(s), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

// Q4_K x Q8_K: per super-block of the 8 rows, S = Σ_g sc_g·(Σ q·q_a over group g) and
// M = Σ_g m_g·(Σ q_a over group g) (lanes = rows, the scales unpacked from the 3 interleaved
// words by vector operations), then acc = fma(d·d_a, S, acc), acc = fma(-dmin·d_a, M, acc): the
// operations of the row-major stream_rows4 and GEMM tile for Q4_K.
struct Q4KScales {
  __m256i sc[8];  // s32 lanes: group g's scale of each row
  __m256i mp[4];  // s16 pairs: (m_2j, m_2j+1) of each row
};
inline Q4KScales unpack_scales(const quant::Rows8<quant::BlockQ4_K>& g) noexcept {
  const __m256i q0 = load256(g.scales[0]), q1 = load256(g.scales[1]), q2 = load256(g.scales[2]);
  const __m256i m3f = _mm256_set1_epi8(0x3f), m0f = _mm256_set1_epi8(0x0f), m03 = _mm256_set1_epi8(0x03);
  // bytes k of each lane: scale k (sc_lo: 0-3, sc_hi: 4-7) and min k (m_lo, m_hi), as scale_min_k4
  const __m256i sc_lo = _mm256_and_si256(q0, m3f), m_lo = _mm256_and_si256(q1, m3f);
  const __m256i sc_hi = _mm256_or_si256(_mm256_and_si256(q2, m0f),
                                        _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(q0, 6), m03), 4));
  const __m256i m_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(q2, 4), m0f),
                                       _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(q1, 6), m03), 4));
  Q4KScales o;
  for (int k = 0; k < 4; ++k) {
    const char z = static_cast<char>(0x80), a = static_cast<char>(k);
    const __m256i pick = _mm256_setr_epi8(a, z, z, z, static_cast<char>(4 + k), z, z, z, static_cast<char>(8 + k), z, z, z,
                                          static_cast<char>(12 + k), z, z, z, a, z, z, z, static_cast<char>(4 + k), z, z, z,
                                          static_cast<char>(8 + k), z, z, z, static_cast<char>(12 + k), z, z, z);
    o.sc[k] = _mm256_shuffle_epi8(sc_lo, pick);
    o.sc[4 + k] = _mm256_shuffle_epi8(sc_hi, pick);
  }
  for (int j = 0; j < 2; ++j) {  // (m_2j, m_2j+1) from bytes 2j, 2j+1 of each lane
    const char z = static_cast<char>(0x80);
    const auto b = [&](int lane, int k) { return static_cast<char>(4 * lane + 2 * j + k); };
    const __m256i pick = _mm256_setr_epi8(b(0, 0), z, b(0, 1), z, b(1, 0), z, b(1, 1), z, b(2, 0), z, b(2, 1), z, b(3, 0), z,
                                          b(3, 1), z, b(0, 0), z, b(0, 1), z, b(1, 0), z, b(1, 1), z, b(2, 0), z, b(2, 1), z,
                                          b(3, 0), z, b(3, 1), z);
    o.mp[j] = _mm256_shuffle_epi8(m_lo, pick);
    o.mp[2 + j] = _mm256_shuffle_epi8(m_hi, pick);
  }
  return o;
}

template <int kT>
void stream_rows8(const quant::Rows8<quant::BlockQ4_K>* g, const quant::BlockQ8_K* const* acts, int T_any, index_t nb,
                  float* out) noexcept {
  const int T = kT > 0 ? kT : T_any;
  constexpr int kMax = cpu_detail::kStreamMaxTokens;
  __m256 acc[kMax];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i low = _mm256_set1_epi8(0x0f);
  for (index_t b = 0; b < nb; ++b) {
    const quant::Rows8<quant::BlockQ4_K>& w = g[b];
    prefetch_ahead(&w);
    const Q4KScales sc = unpack_scales(w);
    __m256i S[kMax];
    for (int t = 0; t < T; ++t) S[t] = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {  // elements 64c .. 64c+63: groups 2c (low nibbles) and 2c + 1
      __m256i slo[kMax], shi[kMax];
      for (int t = 0; t < T; ++t) slo[t] = shi[t] = _mm256_setzero_si256();
      static_assert(kS16Run<15> >= 8, "a group of 32 codes is one s16 run");
      for (int k = 0; k < 8; ++k) {
        const __m256i raw = load256(w.qs[8 * c + k]);
        const __m256i lo = _mm256_and_si256(raw, low), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low);
        for (int t = 0; t < T; ++t) {
          const auto* q = reinterpret_cast<const std::uint8_t*>(acts[t][b].qs) + 64 * c + 4 * k;
          slo[t] = dot_run_add<false>(slo[t], lo, bcast32(q));
          shi[t] = dot_run_add<false>(shi[t], hi, bcast32(q + 32));
        }
      }
      if constexpr (kVnni) {
        for (int t = 0; t < T; ++t) {
          S[t] = _mm256_add_epi32(S[t], _mm256_mullo_epi32(slo[t], sc.sc[2 * c]));
          S[t] = _mm256_add_epi32(S[t], _mm256_mullo_epi32(shi[t], sc.sc[2 * c + 1]));
        }
      } else {  // the s16 sums times the scale, widened by one vpmaddwd (the scale in both halves)
        const __m256i sc_lo = _mm256_or_si256(sc.sc[2 * c], _mm256_slli_epi32(sc.sc[2 * c], 16));
        const __m256i sc_hi = _mm256_or_si256(sc.sc[2 * c + 1], _mm256_slli_epi32(sc.sc[2 * c + 1], 16));
        for (int t = 0; t < T; ++t) {
          S[t] = _mm256_add_epi32(S[t], _mm256_madd_epi16(slo[t], sc_lo));
          S[t] = _mm256_add_epi32(S[t], _mm256_madd_epi16(shi[t], sc_hi));
        }
      }
    }
    const __m256 dv = scales8_f16(w.d), ndm = _mm256_xor_ps(scales8_f16(w.dmin), _mm256_set1_ps(-0.0f));  // -dmin, as the row kernels
    for (int t = 0; t < T; ++t) {
      const quant::BlockQ8_K& a = acts[t][b];
      __m256i M = _mm256_setzero_si256();
      for (int j = 0; j < 4; ++j) {
        const std::int32_t gs = pack16(a.bsums[4 * j] + a.bsums[4 * j + 1], a.bsums[4 * j + 2] + a.bsums[4 * j + 3]);
        M = _mm256_add_epi32(M, _mm256_madd_epi16(sc.mp[j], _mm256_set1_epi32(gs)));
      }
      const __m256 da = _mm256_set1_ps(a.d);
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dv, da), _mm256_cvtepi32_ps(S[t]), acc[t]);
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(ndm, da), _mm256_cvtepi32_ps(M), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

// Q6_K x Q8_K per super-block of the 8 rows: S = Σ_s sc_s·(Σ q·q_a over group s of 16) -
// 32·Σ_s sc_s·bsum_s (lanes = rows; the signed scales taken from the interleaved words by shifts),
// then acc = fma(d·d_a, S, acc): the integers and operations of the row-major stream_rows4.
template <int kT>
void stream_rows8(const quant::Rows8<quant::BlockQ6_K>* g, const quant::BlockQ8_K* const* acts, int T_any, index_t nb,
                  float* out) noexcept {
  const int T = kT > 0 ? kT : T_any;
  constexpr int kMax = cpu_detail::kStreamMaxTokens;
  __m256 acc[kMax];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  const __m256i low = _mm256_set1_epi8(0x0f), three = _mm256_set1_epi8(3);
  for (index_t b = 0; b < nb; ++b) {
    const quant::Rows8<quant::BlockQ6_K>& w = g[b];
    prefetch_ahead(&w);
    __m256i words[4];
    for (int i = 0; i < 4; ++i) words[i] = load256(w.scales[i]);
    __m256i S[kMax];
    for (int t = 0; t < T; ++t) {  // -32·Σ_s sc_s·bsum_s, the pairs (sc_2j, sc_2j+1) as s16 lanes
      const quant::BlockQ8_K& a = acts[t][b];
      __m256i m = _mm256_setzero_si256();
      for (int j = 0; j < 8; ++j) {
        const char z = static_cast<char>(0x80), lo = static_cast<char>(2 * (j & 1)), hi = static_cast<char>(2 * (j & 1) + 1);
        const __m256i pick = _mm256_setr_epi8(z, lo, z, hi, z, lo + 4, z, hi + 4, z, lo + 8, z, hi + 8, z, lo + 12, z, hi + 12,
                                              z, lo, z, hi, z, lo + 4, z, hi + 4, z, lo + 8, z, hi + 8, z, lo + 12, z, hi + 12);
        const __m256i pairs = _mm256_srai_epi16(_mm256_shuffle_epi8(words[j / 2], pick), 8);
        m = _mm256_add_epi32(m, _mm256_madd_epi16(pairs, _mm256_set1_epi32(pack16(a.bsums[2 * j], a.bsums[2 * j + 1]))));
      }
      S[t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(m, 5));
    }
    for (int n = 0; n < 2; ++n) {    // elements 128n .. 128n+127
      for (int h = 0; h < 2; ++h) {  // runs g = 0..3 of 32 elements, their half h: groups 8n + 2g + h
        __m256i part[kMax][4], sc[4];
        for (int t = 0; t < T; ++t) part[t][0] = part[t][1] = part[t][2] = part[t][3] = _mm256_setzero_si256();
        for (int r = 0; r < 4; ++r) {  // group s = 8n + 2r + h: byte s % 4 of word s / 4, sign-extended
          const int s = 8 * n + 2 * r + h;
          sc[r] = _mm256_srai_epi32(_mm256_slli_epi32(words[s / 4], 24 - 8 * (s % 4)), 24);
        }
        static_assert(kS16Run<63> == 2, "Q6_K's s16 runs are 2 groups of 4 codes");
        for (int k = 4 * h; k < 4 * h + 4; ++k) {  // elements 128n + 32g + 4k .. +3
          const __m256i ql0 = load256(w.ql[16 * n + k]), ql1 = load256(w.ql[16 * n + 8 + k]), qh = load256(w.qh[8 * n + k]);
          const __m256i u[4] = {
              _mm256_or_si256(_mm256_and_si256(ql0, low), _mm256_slli_epi16(_mm256_and_si256(qh, three), 4)),
              _mm256_or_si256(_mm256_and_si256(ql1, low), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), three), 4)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low),
                              _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), three), 4)),
              _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low),
                              _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), three), 4))};
          for (int t = 0; t < T; ++t) {
            const auto* q = reinterpret_cast<const std::uint8_t*>(acts[t][b].qs) + 128 * n + 4 * k;
            for (int r = 0; r < 4; ++r) part[t][r] = dot_run_add<false>(part[t][r], u[r], bcast32(q + 32 * r));
          }
          if constexpr (!kVnni) {
            if (k % 2 == 1) {  // the end of an s16 run: its sums times the scale by one vpmaddwd
              for (int r = 0; r < 4; ++r) {
                const __m256i pair = _mm256_or_si256(_mm256_and_si256(sc[r], _mm256_set1_epi32(0xffff)),
                                                     _mm256_slli_epi32(sc[r], 16));
                for (int t = 0; t < T; ++t) {
                  S[t] = _mm256_add_epi32(S[t], _mm256_madd_epi16(part[t][r], pair));
                  part[t][r] = _mm256_setzero_si256();
                }
              }
            }
          }
        }
        if constexpr (kVnni) {
          for (int r = 0; r < 4; ++r) {
            for (int t = 0; t < T; ++t) S[t] = _mm256_add_epi32(S[t], _mm256_mullo_epi32(part[t][r], sc[r]));
          }
        }
      }
    }
    const __m256 dv = scales8_f16(w.d);
    for (int t = 0; t < T; ++t) {
      acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dv, _mm256_set1_ps(acts[t][b].d)), _mm256_cvtepi32_ps(S[t]), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

inline void decode_rows8(const quant::Rows8<quant::BlockQ6_K>& g, DecQ6K* const* rows, index_t b) noexcept {
  for (int r = 0; r < 8; ++r) decode(quant::deinterleave(g, r), rows[r][b]);
}

inline void decode_rows8(const quant::Rows8<quant::BlockQ4_K>& g, DecQ4K* const* rows, index_t b) noexcept {
  for (int r = 0; r < 8; ++r) decode(quant::deinterleave(g, r), rows[r][b]);
}

// A group's block as the 8 rows' decoded blocks of the GEMM tile.
template <class W>
inline void decode_rows8(const quant::Rows8<W>& g, Dec32* const* rows, index_t b) noexcept {
  __m256i u[8];
  R8<W>::u(g, u);
  alignas(32) std::uint32_t lanes[8][8];  // lanes[k][r]: row r's bytes 4k .. 4k+3
  for (int k = 0; k < 8; ++k) _mm256_store_si256(reinterpret_cast<__m256i*>(lanes[k]), u[k]);
  alignas(32) float d[8];
  _mm256_store_ps(d, scales8(g));
  for (int r = 0; r < 8; ++r) {
    Dec32& o = rows[r][b];
    for (int k = 0; k < 8; ++k) std::memcpy(o.u + 4 * k, &lanes[k][r], 4);
    o.d = d[r];
  }
}

}  // namespace cpu_quant::igemm

namespace cpu_quant {

// From this many tokens an interleaved matrix takes the GEMM. The interleaved streaming kernel has
// no horizontal reduction, so it stays ahead of the GEMM up to its kStreamMaxTokens, where the
// row-major streaming kernel gives way at 8-10 tokens (Zen 4, AVX-512 VNNI, 2 threads, the Qwen3-30B-A3B
// shape, whose experts see ~8 tokens each at pp128; interleaved runs: Q4_0 from 8 tokens 246 / 281
// tok/s, from 17 310 / 293; Q4_K_M from 10 259 / 262 / 276, from 17 294 / 282 / 288).
inline constexpr index_t kInterleavedGemmFrom = cpu_detail::kStreamMaxTokens + 1;

// x's tokens as the activation blocks of W's kernels (one per-thread scratch, reused per call).
template <class W>
const typename ActFor<W>::type* interleaved_acts(const View<const float, 2>& x, index_t nb) {
  using A = typename ActFor<W>::type;
  A* acts = act_scratch<A>(x.extent(0) * nb);
  for (index_t t = 0; t < x.extent(0); ++t) {
    const float* xr = x.data() + t * x.stride(0);
    for (index_t b = 0; b < nb; ++b) quantize_act(xr + b * W::block_elements, acts[t * nb + b]);
  }
  return acts;
}

// Group i of a matrix (8 rows) for n_tokens < kInterleavedGemmFrom tokens of `acts` into y's
// columns 8i .. 8i+7.
template <class W>
void stream_group(const quant::Rows8<W>* g, const typename ActFor<W>::type* acts, index_t n_tokens, index_t nb,
                  const View<float, 2>& y, index_t i) noexcept {
  using A = typename ActFor<W>::type;
  constexpr int R = quant::kInterleavedRows;
  const A* rows[cpu_detail::kStreamMaxTokens];
  for (index_t t = 0; t < n_tokens; ++t) rows[t] = acts + t * nb;
  alignas(32) float out[cpu_detail::kStreamMaxTokens * R];
  switch (n_tokens) {
    case 1: igemm::stream_rows8<1>(g, rows, 1, nb, out); break;
    case 2: igemm::stream_rows8<2>(g, rows, 2, nb, out); break;
    case 3: igemm::stream_rows8<3>(g, rows, 3, nb, out); break;
    case 4: igemm::stream_rows8<4>(g, rows, 4, nb, out); break;
    default: igemm::stream_rows8<0>(g, rows, static_cast<int>(n_tokens), nb, out);
  }
  for (index_t t = 0; t < n_tokens; ++t) {
    for (int r = 0; r < R; ++r) y(t, i * R + r) = out[t * R + r];
  }
}

// Chunks of groups for the streaming kernel: at least kMinWorkPerThread multiply-adds each.
template <class W>
index_t stream_grain(index_t nb, index_t n_tokens) noexcept {
  const index_t per_group = nb * static_cast<index_t>(W::block_elements) * n_tokens * quant::kInterleavedRows;
  return std::max<index_t>(1, cpu_detail::kMinWorkPerThread / std::max<index_t>(per_group, 1));
}

template <class W>
void interleaved_streaming(const View<const float, 2>& x, const View<const quant::Rows8<W>, 2>& w,
                           const View<float, 2>& y) {
  const index_t n_tokens = x.extent(0), nb = w.extent(1);
  const auto* acts = interleaved_acts<W>(x, nb);
  parallel_for_chunks(w.extent(0), stream_grain<W>(nb, n_tokens), [&](index_t g_begin, index_t g_end) {
    for (index_t i = g_begin; i < g_end; ++i) stream_group<W>(w.data() + i * w.stride(0), acts, n_tokens, nb, y, i);
  });
}

// Several interleaved matrices over one x (q, k and v; an expert's gate and up): x quantized once
// and one parallel region over all their groups. At most 8 matrices.
template <class W>
void interleaved_streaming_fanout(const View<const float, 2>& x, std::span<const View<const quant::Rows8<W>, 2>> w,
                                  std::span<const View<float, 2>> y) {
  const index_t n_tokens = x.extent(0), nb = w[0].extent(1);
  index_t first[9] = {0};  // first[i]: matrix i's first group in the combined range
  for (std::size_t i = 0; i < w.size(); ++i) first[i + 1] = first[i] + w[i].extent(0);
  const auto* acts = interleaved_acts<W>(x, nb);
  parallel_for_chunks(first[w.size()], stream_grain<W>(nb, n_tokens), [&](index_t g_begin, index_t g_end) {
    std::size_t m = 0;
    for (index_t g = g_begin; g < g_end; ++g) {
      while (g >= first[m + 1]) ++m;
      const index_t i = g - first[m];
      stream_group<W>(w[m].data() + i * w[m].stride(0), acts, n_tokens, nb, y[m], i);
    }
  });
}

}  // namespace cpu_quant

namespace detail {
template <class W>
void check_interleaved(const View<const float, 2>& x, const View<const quant::Rows8<W>, 2>& w, const View<float, 2>& y,
                       const char* op) {
  constexpr index_t R = quant::kInterleavedRows, BE = W::block_elements;
  require(x.extent(1) == w.extent(1) * BE && y.extent(0) == x.extent(0) && y.extent(1) == w.extent(0) * R,
          ErrorCode::kInvalidArgument,
          "{}: shapes x [{}, {}], w [{}, {}] ({} interleaved by 8 rows, out, in), y [{}, {}] do not agree", op,
          x.extent(0), x.extent(1), w.extent(0) * R, w.extent(1) * BE, FormatTraits<W>::name, y.extent(0), y.extent(1));
  check_unit_inner_stride(x, op, "x");
  check_unit_inner_stride(w, op, "w");
  check_unit_inner_stride(y, op, "y");
}
}  // namespace detail

// y = x·Wᵀ, W [out, in] as out / 8 groups of interleaved rows (w [out / 8, in / 32]); x [n, in],
// y [n, out] f32 with unit inner strides, y not aliasing x. Bitwise the outputs of matmul on the
// row-major matrix.
template <quant::Interleavable W, class Arch>
void matmul(backend::cpu_simd<Arch>, View<const float, 2> x, View<const quant::Rows8<W>, 2> w, View<float, 2> y) {
  constexpr index_t R = quant::kInterleavedRows;
  detail::check_interleaved(x, w, y, "matmul");
  if (x.extent(0) == 0 || w.extent(0) == 0) return;
  if (x.extent(0) < cpu_quant::kInterleavedGemmFrom) {
    cpu_quant::interleaved_streaming(x, w, y);
    return;
  }
  const index_t nb = w.extent(1);
  using Dec = typename cpu_quant::igemm::Traits<W>::Dec;
  cpu_quant::igemm_gemm_tiles<W>(x, w.extent(0) * R, nb, y, [&](index_t tile, Dec* dec) {
    static_assert(cpu_quant::igemm::kTileRows == R, "a GEMM tile is one interleaved group");
    Dec* rows[R];
    for (index_t r = 0; r < R; ++r) rows[r] = dec + r * nb;
    const quant::Rows8<W>* g = w.data() + tile * w.stride(0);
    for (index_t b = 0; b < nb; ++b) cpu_quant::igemm::decode_rows8(g[b], rows, b);
  });
}

// y_i = x·W_iᵀ for up to 8 interleaved matrices sharing x (q, k, v; an expert's gate and up):
// below kInterleavedGemmFrom tokens x is quantized once and one parallel region streams every
// matrix's groups; from there, one matmul each. Bitwise the outputs of the separate products.
template <quant::Interleavable W, class Arch>
void matmul_fanout(backend::cpu_simd<Arch> be, View<const float, 2> x, std::span<const View<const quant::Rows8<W>, 2>> w,
                   std::span<const View<float, 2>> y) {
  require(w.size() == y.size() && !w.empty() && w.size() <= 8, ErrorCode::kInvalidArgument,
          "matmul_fanout: {} interleaved weights, {} outputs (1 to 8 of each)", w.size(), y.size());
  for (std::size_t i = 0; i < w.size(); ++i) detail::check_interleaved(x, w[i], y[i], "matmul_fanout");
  if (x.extent(0) == 0) return;
  if (x.extent(0) >= cpu_quant::kInterleavedGemmFrom) {
    for (std::size_t i = 0; i < w.size(); ++i) matmul(be, x, w[i], y[i]);
    return;
  }
  cpu_quant::interleaved_streaming_fanout<W>(x, w, y);
}
#else
inline constexpr bool kInterleavedKernels = false;
#endif

}  // namespace moe::kernels

#include "moe/kernels/cpu/warnings_pop.hpp"
