// ggml's 4-bit non-linear formats: 4-bit indices into the 16-entry table kIq4Values (denser near
// zero), scaled per 32 elements.
//   IQ4_NL (type 20, 18 B per 32):  x = d·v[q], d f16
//   IQ4_XS (type 23, 136 B per 256): x = d·(ls - 32)·v[q], 8 groups of 32 with 6-bit ls (low
//          nibbles in scales_l, high 2 bits in scales_h)
// Element j of a 32-group: low nibble of qs[j] (j < 16) or high nibble of qs[j - 16].
// Reference quantizer: ggml quantize_row_iq4_nl_impl without importance weights, as
// quantize_iq4_nl / quantize_iq4_xs call it when writing files (ntry = 7: the group scale is the
// best of 15 candidates by weighted least squares, weights x²).
#pragma once

#include "moe/quant/block.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

MOE_QUANT_ROUND_AS_WRITTEN_BEGIN
namespace moe::quant {

// ggml kvalues_iq4nl.
inline constexpr std::int8_t kIq4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                               1,    13,   25,  38,  53,  69,  89,  113};

// kIq4Values[q] as a packed lookup that device code can use too (decode).
MOE_HD constexpr std::int8_t iq4_value(int q) noexcept {
  return packed_table_entry(0xf6eaddcfbfad9881ull, 0x7159453526190d01ull, q);
}
static_assert(packed_table_matches(iq4_value, kIq4Values), "iq4_value must match kIq4Values");

namespace detail {

// Index of the table entry nearest to x (ggml best_index_int8; ties go to the upper entry's
// neighbour as there). NaN gives the last index.
inline int best_index_iq4(float x) noexcept {
  const std::int8_t* val = kIq4Values;
  if (x <= val[0]) return 0;
  if (x >= val[15]) return 15;
  int ml = 0, mu = 15;
  while (mu - ml > 1) {
    const int mav = (ml + mu) / 2;
    if (x < val[mav]) mu = mav;
    else ml = mav;
  }
  return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

// quantize_row_iq4_nl_impl (ggml) for one super-block of n = 32 (IQ4_NL) or 256 (IQ4_XS)
// elements in groups of 32, without importance weights. For n = 32 scales_h / scales_l are unused.
inline void quantize_iq4(int n, const float* x, f16& dh, std::uint8_t* q4, std::uint16_t* scales_h,
                         std::uint8_t* scales_l, int ntry) noexcept {
  constexpr int kGroup = 32;
  float scales[8] = {}, weight[kGroup];
  std::uint8_t L[256] = {};
  std::memset(q4, 0, static_cast<std::size_t>(n / 2));
  dh = to_f16(0.f);
  float max_scale = 0, amax_scale = 0;
  const float v0 = kIq4Values[0];
  for (int ib = 0; ib < n / kGroup; ++ib) {
    const float* xb = x + ib * kGroup;
    std::uint8_t* Lb = L + ib * kGroup;
    for (int j = 0; j < kGroup; ++j) weight[j] = xb[j] * xb[j];
    float amax = 0, max = 0;
    for (int j = 0; j < kGroup; ++j) {
      const float ax = std::fabs(xb[j]);
      if (ax > amax) amax = ax, max = xb[j];
    }
    if (amax < kGroupMaxEps) {
      scales[ib] = 0;
      continue;
    }
    float d = ntry > 0 ? -max / v0 : max / v0;
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < kGroup; ++j) {
      const int l = best_index_iq4(id * xb[j]);
      Lb[j] = static_cast<std::uint8_t>(l);
      const float q = kIq4Values[l];
      const float w = weight[j];
      sumqx += w * q * xb[j];
      sumq2 += w * q * q;
    }
    d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; ++itry) {
      id = (static_cast<float>(itry) + v0) / max;
      sumqx = sumq2 = 0;
      for (int j = 0; j < kGroup; ++j) {
        const int l = best_index_iq4(id * xb[j]);
        const float q = kIq4Values[l];
        const float w = weight[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
      }
      if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
    scales[ib] = d;
    const float abs_d = std::fabs(d);
    if (abs_d > amax_scale) amax_scale = abs_d, max_scale = d;
  }
  if (n / kGroup > 1) {
    *scales_h = 0;
    const float d = -max_scale / 32;
    dh = to_f16(d);
    const float id = d != 0.0f ? 1 / d : 0.f;
    for (int ib = 0; ib < n / kGroup; ++ib) {
      int l = nearest_int(id * scales[ib]);
      l = std::max(-32, std::min(31, l));
      const float dl = d * static_cast<float>(l);
      const float idl = dl != 0.0f ? 1 / dl : 0.f;
      std::uint8_t* Lb = L + ib * kGroup;
      const float* xb = x + ib * kGroup;
      for (int j = 0; j < kGroup; ++j) Lb[j] = static_cast<std::uint8_t>(best_index_iq4(idl * xb[j]));
      l += 32;
      const auto l_l = static_cast<std::uint8_t>(l & 0xf);
      const auto l_h = static_cast<std::uint8_t>(l >> 4);
      if (ib % 2 == 0) scales_l[ib / 2] = l_l;
      else scales_l[ib / 2] = static_cast<std::uint8_t>(scales_l[ib / 2] | (l_l << 4));
      *scales_h = static_cast<std::uint16_t>(*scales_h | (l_h << (2 * (ib % 8))));
    }
  } else {
    dh = to_f16(scales[0]);
    if (ntry > 0) {
      const float id = scales[0] != 0.0f ? 1 / scales[0] : 0;
      for (int j = 0; j < n; ++j) L[j] = static_cast<std::uint8_t>(best_index_iq4(id * x[j]));
    }
  }
  for (int i = 0; i < n / 32; ++i) {
    for (int j = 0; j < 16; ++j) q4[16 * i + j] = static_cast<std::uint8_t>(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
  }
}

}  // namespace detail

struct BlockIq4Nl {
  static constexpr DType dtype = DType::iq4_nl;
  static constexpr std::size_t block_elements = 32;
  static constexpr std::uint32_t ggml_type = 20;

  f16 d;
  std::uint8_t qs[16];

  MOE_HD static float decode(const BlockIq4Nl* row, std::size_t i) noexcept {
    const BlockIq4Nl& b = row[i / 32];
    const std::size_t j = i % 32;
    const int q = j < 16 ? b.qs[j] & 0xf : b.qs[j - 16] >> 4;
    return to_float(b.d) * static_cast<float>(iq4_value(q));
  }
  static void dequantize(const BlockIq4Nl& b, float* y) noexcept {
    const float d = to_float(b.d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(kIq4Values[b.qs[j] & 0xf]);
      y[j + 16] = d * static_cast<float>(kIq4Values[b.qs[j] >> 4]);
    }
  }
  static void quantize(const float* x, BlockIq4Nl& b) noexcept {
    std::uint16_t unused_h = 0;
    detail::quantize_iq4(32, x, b.d, b.qs, &unused_h, nullptr, 7);
  }
};
static_assert(sizeof(BlockIq4Nl) == 18 && offsetof(BlockIq4Nl, qs) == 2, "BlockIq4Nl must match ggml's block_iq4_nl");

struct BlockIq4Xs {
  static constexpr DType dtype = DType::iq4_xs;
  static constexpr std::size_t block_elements = 256;
  static constexpr std::uint32_t ggml_type = 23;

  f16 d;
  std::uint16_t scales_h;    // bits 2g, 2g+1: high bits of group g's scale
  std::uint8_t scales_l[4];  // nibble g%2 of byte g/2: low bits of group g's scale
  std::uint8_t qs[128];      // 16 bytes per group

  MOE_HD static int group_scale(const BlockIq4Xs& b, std::size_t g) noexcept {
    return static_cast<int>(((b.scales_l[g / 2] >> (4 * (g % 2))) & 0xf) | (((b.scales_h >> (2 * g)) & 3) << 4)) - 32;
  }
  MOE_HD static float decode(const BlockIq4Xs* row, std::size_t i) noexcept {
    const BlockIq4Xs& b = row[i / 256];
    const std::size_t j = i % 256, g = j / 32, r = j % 32;
    const std::uint8_t byte = b.qs[16 * g + r % 16];
    const int q = r < 16 ? byte & 0xf : byte >> 4;
    const float dl = to_float(b.d) * static_cast<float>(group_scale(b, g));
    return dl * static_cast<float>(iq4_value(q));
  }
  static void dequantize(const BlockIq4Xs& b, float* y) noexcept {
    const float d = to_float(b.d);
    for (std::size_t g = 0; g < 8; ++g) {
      const float dl = d * static_cast<float>(group_scale(b, g));
      const std::uint8_t* qs = b.qs + 16 * g;
      for (int j = 0; j < 16; ++j) {
        y[32 * g + j] = dl * static_cast<float>(kIq4Values[qs[j] & 0xf]);
        y[32 * g + j + 16] = dl * static_cast<float>(kIq4Values[qs[j] >> 4]);
      }
    }
  }
  static void quantize(const float* x, BlockIq4Xs& b) noexcept {
    std::uint16_t h = 0;
    detail::quantize_iq4(256, x, b.d, b.qs, &h, b.scales_l, 7);
    b.scales_h = h;
  }
};
static_assert(sizeof(BlockIq4Xs) == 136 && offsetof(BlockIq4Xs, scales_h) == 2 && offsetof(BlockIq4Xs, scales_l) == 4 &&
                  offsetof(BlockIq4Xs, qs) == 8,
              "BlockIq4Xs must match ggml's block_iq4_xs");

}  // namespace moe::quant
MOE_QUANT_ROUND_AS_WRITTEN_END
