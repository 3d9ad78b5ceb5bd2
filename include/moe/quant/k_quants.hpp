// ggml's K-quants: super-blocks of 256 elements split into groups (16 of 16, or 8 of 32), each
// group with a small integer scale (and min) relative to the super-block's f16 scale(s).
//   Q2_K (type 10, 84 B):  x = d·sc·q - dmin·m, 16 groups of 16, sc/m 4 bits, q 2 bits
//   Q3_K (type 11, 110 B): x = d·(sc - 32)·(q - 4), 16 groups of 16, sc 6 bits, q 3 bits (hmask)
//   Q4_K (type 12, 144 B): x = d·sc·q - dmin·m, 8 groups of 32, sc/m 6 bits, q 4 bits
//   Q5_K (type 13, 176 B): as Q4_K with a fifth code bit in qh
//   Q6_K (type 14, 210 B): x = d·sc·(q - 32), 16 groups of 16, sc int8, q 6 bits (ql + qh)
//   Q8_K (type 15, 292 B): x = d·q, f32 d, q int8, with the sums of each 16 codes (activations)
// Code layout: elements are taken 128 (Q2/Q3/Q6) or 64 (Q4/Q5) at a time; within such a chunk the
// 32-element runs share bytes at successive bit offsets (see each decode). The 12 scale bytes of
// Q4_K/Q5_K hold 8 six-bit scales and mins (get_scale_min_k4); Q3_K's hold 16 six-bit scales.
// Reference quantizers: ggml quantize_row_q{2..6}_K_ref and quantize_row_q8_K_ref, with their
// helpers make_qkx2_quants (scale + min by a weighted least-squares search over 16-20 candidate
// scales), make_q3_quants and make_qx_quants (symmetric, least squares with a ±0.9 search).
#pragma once

#include "moe/quant/block.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

MOE_QUANT_ROUND_AS_WRITTEN_BEGIN
namespace moe::quant {

inline constexpr std::size_t kSuperBlock = 256;  // ggml's QK_K

namespace detail {

// make_qkx2_quants (ggml): codes L in [0, nmax] and scale/min for x ≈ scale·L - the_min, minimising
// Σ w·|err| (use_mad) or Σ w·err² over iscale candidates (rmin + rdelta·is + nmax)/(max - min).
inline float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, std::uint8_t* L, float* the_min,
                              std::uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) noexcept {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.0f;
  }
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<std::uint8_t>(std::max(0, std::min(nmax, l)));
    float diff = scale * L[i] + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = static_cast<std::uint8_t>(l);
      const float w = weights[i];
      const auto lf = static_cast<float>(l);
      sum_l += w * lf;
      sum_l2 += w * lf * lf;
      sum_xl += w * lf * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// make_q3_quants (ggml): symmetric codes L in [0, 2·nmax) (offset nmax) and the scale, with an
// iterative per-element improvement of Σ x²·(x - scale·l)² (do_rmse).
inline float make_q3_quants(int n, int nmax, const float* x, std::int8_t* L, bool do_rmse) noexcept {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) amax = ax, max = x[i];
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  const float iscale = -static_cast<float>(nmax) / max;
  if (do_rmse) {
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      L[i] = static_cast<std::int8_t>(l);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * static_cast<float>(l);
      suml2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
    for (int itry = 0; itry < 5; ++itry) {
      int n_changed = 0;
      for (int i = 0; i < n; ++i) {
        const float w = x[i] * x[i];
        float slx = sumlx - w * x[i] * L[i];
        if (slx > 0) {
          float sl2 = suml2 - w * L[i] * L[i];
          int new_l = nearest_int(x[i] * sl2 / slx);
          new_l = std::max(-nmax, std::min(nmax - 1, new_l));
          if (new_l != L[i]) {
            slx += w * x[i] * static_cast<float>(new_l);
            sl2 += w * static_cast<float>(new_l) * static_cast<float>(new_l);
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
              L[i] = static_cast<std::int8_t>(new_l);
              sumlx = slx;
              suml2 = sl2;
              ++n_changed;
            }
          }
        }
      }
      if (!n_changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = static_cast<std::int8_t>(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
  }
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<std::int8_t>(l + nmax);
  }
  return 1 / iscale;
}

// make_qx_quants (ggml) with rmse_type 1 and no importance weights (the form Q6_K's reference
// uses): codes in [0, 2·nmax), weights x², least-squares scale, 18 extra iscale candidates.
inline float make_qx_quants_rmse1(int n, int nmax, const float* x, std::int8_t* L) noexcept {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) amax = ax, max = x[i];
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  float iscale = -static_cast<float>(nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<std::int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * static_cast<float>(l);
      suml2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = static_cast<std::int8_t>(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Scale and min j (0..7) of the 12 packed 6-bit values of Q4_K / Q5_K (ggml get_scale_min_k4):
// j < 4: low 6 bits of bytes j and j+4; j >= 4: nibbles of byte j+4 plus the top two bits of
// bytes j-4 (scale) and j (min).
MOE_HD inline void scale_min_k4(int j, const std::uint8_t* q, std::uint8_t& d, std::uint8_t& m) noexcept {
  if (j < 4) {
    d = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    d = static_cast<std::uint8_t>((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
    m = static_cast<std::uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

// Q3_K's 6-bit scale j (0..15), unsigned (the stored value is scale + 32).
MOE_HD inline int scale_q3k(const std::uint8_t* s, int j) noexcept {
  const int low = j < 8 ? s[j] & 0xf : s[j - 8] >> 4;
  return low | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4);
}

// Q4_K / Q5_K scales and mins of 8 groups of 32: the common second half of both quantizers
// (6-bit scales relative to d = max_scale/63 and dmin = max_min/63, then the codes again from
// the rounded scales). Writes d, dmin, the 12 scale bytes and L.
inline void pack_k4_scales(const float* x, const float* scales, const float* mins, int nmax, f16& d_out, f16& dmin_out,
                           std::uint8_t* packed, std::uint8_t* L) noexcept {
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < 8; ++j) {
    std::uint8_t ls = static_cast<std::uint8_t>(nearest_int(inv_scale * scales[j]));
    std::uint8_t lm = static_cast<std::uint8_t>(nearest_int(inv_min * mins[j]));
    ls = std::min<std::uint8_t>(63, ls);
    lm = std::min<std::uint8_t>(63, lm);
    if (j < 4) {
      packed[j] = ls;
      packed[j + 4] = lm;
    } else {
      packed[j + 4] = static_cast<std::uint8_t>((ls & 0xf) | ((lm & 0xf) << 4));
      packed[j - 4] = static_cast<std::uint8_t>(packed[j - 4] | ((ls >> 4) << 6));
      packed[j - 0] = static_cast<std::uint8_t>(packed[j - 0] | ((lm >> 4) << 6));
    }
  }
  d_out = to_f16(max_scale / 63.f);
  dmin_out = to_f16(max_min / 63.f);
  for (int j = 0; j < 8; ++j) {
    std::uint8_t sc, m;
    scale_min_k4(j, packed, sc, m);
    const float d = to_float(d_out) * sc;
    if (d == 0.0f) continue;
    const float dm = to_float(dmin_out) * m;
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = static_cast<std::uint8_t>(std::max(0, std::min(nmax, l)));
    }
  }
}

// Q4_K / Q5_K group fit: weights av_x + |x| (av_x the group's RMS), make_qkx2_quants.
inline void fit_k4_groups(const float* x, int nmax, float rmin, int nstep, float* scales, float* mins,
                          std::uint8_t* L) noexcept {
  float weights[32];
  std::uint8_t Laux[32];
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
  }
}

}  // namespace detail

struct BlockQ2_K {
  static constexpr DType dtype = DType::q2_k;
  static constexpr std::size_t block_elements = kSuperBlock;
  static constexpr std::uint32_t ggml_type = 10;

  std::uint8_t scales[16];  // group g: scale in the low nibble, min in the high nibble
  std::uint8_t qs[64];      // 2-bit codes
  f16 d;                    // scale of the scales
  f16 dmin;                 // scale of the mins

  // Element i: chunk n = i/128, run g = (i%128)/32 at bit offset 2g of byte qs[32n + i%32];
  // group 8n + 2g + (i%32 >= 16).
  MOE_HD static float decode(const BlockQ2_K* row, std::size_t i) noexcept {
    const BlockQ2_K& b = row[i / 256];
    const std::size_t j = i % 256, n = j / 128, g = (j % 128) / 32, l = j % 32;
    const std::uint8_t sc = b.scales[8 * n + 2 * g + l / 16];
    const int q = (b.qs[32 * n + l] >> (2 * g)) & 3;
    const float dl = to_float(b.d) * static_cast<float>(sc & 0xf), ml = to_float(b.dmin) * static_cast<float>(sc >> 4);
    return dl * static_cast<float>(q) - ml;
  }
  static void dequantize(const BlockQ2_K& b, float* y) noexcept {
    const float d = to_float(b.d), dmin = to_float(b.dmin);
    for (int n = 0; n < 2; ++n) {
      for (int g = 0; g < 4; ++g) {
        for (int half = 0; half < 2; ++half) {
          const std::uint8_t sc = b.scales[8 * n + 2 * g + half];
          const float dl = d * static_cast<float>(sc & 0xf), ml = dmin * static_cast<float>(sc >> 4);
          const std::uint8_t* q = b.qs + 32 * n + 16 * half;
          for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((q[l] >> (2 * g)) & 3) - ml;
        }
      }
    }
  }
  static void quantize(const float* x, BlockQ2_K& b) noexcept {
    std::uint8_t L[256], Laux[16];
    float weights[16], mins[16], scales[16];
    constexpr float q4scale = 15.f;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = detail::make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15,
                                           true);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<std::uint8_t>(detail::nearest_int(iscale * scales[j]));
      b.d = to_f16(max_scale / q4scale);
    } else {
      for (int j = 0; j < 16; ++j) b.scales[j] = 0;
      b.d = to_f16(0.f);
    }
    if (max_min > 0) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < 16; ++j) {
        const int l = detail::nearest_int(iscale * mins[j]);
        b.scales[j] = static_cast<std::uint8_t>(b.scales[j] | (l << 4));
      }
      b.dmin = to_f16(max_min / q4scale);
    } else {
      b.dmin = to_f16(0.f);
    }
    for (int j = 0; j < 16; ++j) {
      const float d = to_float(b.d) * static_cast<float>(b.scales[j] & 0xf);
      if (d == 0.0f) continue;
      const float dm = to_float(b.dmin) * static_cast<float>(b.scales[j] >> 4);
      for (int ii = 0; ii < 16; ++ii) {
        const int l = detail::nearest_int((x[16 * j + ii] + dm) / d);
        L[16 * j + ii] = static_cast<std::uint8_t>(std::max(0, std::min(3, l)));
      }
    }
    for (int j = 0; j < 256; j += 128) {
      for (int l = 0; l < 32; ++l) {
        b.qs[j / 4 + l] =
            static_cast<std::uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
      }
    }
  }
};
static_assert(sizeof(BlockQ2_K) == 84 && offsetof(BlockQ2_K, qs) == 16 && offsetof(BlockQ2_K, d) == 80,
              "BlockQ2_K must match ggml's block_q2_K");

struct BlockQ3_K {
  static constexpr DType dtype = DType::q3_k;
  static constexpr std::size_t block_elements = kSuperBlock;
  static constexpr std::uint32_t ggml_type = 11;

  std::uint8_t hmask[32];   // bit (4n + g) of byte l: the high code bit of element 128n + 32g + l
  std::uint8_t qs[64];      // low 2 code bits, laid out as Q2_K's
  std::uint8_t scales[12];  // 16 six-bit scales (+32)
  f16 d;

  // Element i: as Q2_K for the low bits; code = low - (high bit set ? 0 : 4), scale sc - 32.
  MOE_HD static float decode(const BlockQ3_K* row, std::size_t i) noexcept {
    const BlockQ3_K& b = row[i / 256];
    const std::size_t j = i % 256, n = j / 128, g = (j % 128) / 32, l = j % 32;
    const int sc = detail::scale_q3k(b.scales, static_cast<int>(8 * n + 2 * g + l / 16)) - 32;
    const int low = (b.qs[32 * n + l] >> (2 * g)) & 3;
    const int high = (b.hmask[l] >> (4 * n + g)) & 1;
    const float dl = to_float(b.d) * static_cast<float>(sc);
    return dl * static_cast<float>(low - (high ? 0 : 4));
  }
  static void dequantize(const BlockQ3_K& b, float* y) noexcept {
    const float d = to_float(b.d);
    for (int n = 0; n < 2; ++n) {
      for (int g = 0; g < 4; ++g) {
        for (int half = 0; half < 2; ++half) {
          const float dl = d * static_cast<float>(detail::scale_q3k(b.scales, 8 * n + 2 * g + half) - 32);
          const std::uint8_t* q = b.qs + 32 * n + 16 * half;
          const std::uint8_t* hm = b.hmask + 16 * half;
          for (int l = 0; l < 16; ++l) {
            const int low = (q[l] >> (2 * g)) & 3, high = (hm[l] >> (4 * n + g)) & 1;
            *y++ = dl * static_cast<float>(low - (high ? 0 : 4));
          }
        }
      }
    }
  }
  static void quantize(const float* x, BlockQ3_K& b) noexcept {
    std::int8_t L[256];
    float scales[16];
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; ++j) {
      scales[j] = detail::make_q3_quants(16, 4, x + 16 * j, L + 16 * j, true);
      const float scale = std::fabs(scales[j]);
      if (scale > amax) amax = scale, max_scale = scales[j];
    }
    std::memset(b.scales, 0, 12);
    if (max_scale != 0.0f) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < 16; ++j) {
        int l = std::max(-32, std::min(31, static_cast<int>(static_cast<std::int8_t>(
                                               detail::nearest_int(iscale * scales[j]))))) + 32;
        if (j < 8) {
          b.scales[j] = static_cast<std::uint8_t>(l & 0xf);
        } else {
          b.scales[j - 8] = static_cast<std::uint8_t>(b.scales[j - 8] | ((l & 0xf) << 4));
        }
        l >>= 4;
        b.scales[j % 4 + 8] = static_cast<std::uint8_t>(b.scales[j % 4 + 8] | (l << (2 * (j / 4))));
      }
      b.d = to_f16(1 / iscale);
    } else {
      b.d = to_f16(0.f);
    }
    for (int j = 0; j < 16; ++j) {
      const int sc = detail::scale_q3k(b.scales, j) - 32;
      const float d = to_float(b.d) * static_cast<float>(sc);
      if (d == 0.0f) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = detail::nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = static_cast<std::int8_t>(std::max(-4, std::min(3, l)) + 4);
      }
    }
    std::memset(b.hmask, 0, 32);
    int m = 0;
    std::uint8_t hm = 1;
    for (int j = 0; j < 256; ++j) {
      if (L[j] > 3) {
        b.hmask[m] = static_cast<std::uint8_t>(b.hmask[m] | hm);
        L[j] = static_cast<std::int8_t>(L[j] - 4);
      }
      if (++m == 32) m = 0, hm = static_cast<std::uint8_t>(hm << 1);
    }
    for (int j = 0; j < 256; j += 128) {
      for (int l = 0; l < 32; ++l) {
        b.qs[j / 4 + l] =
            static_cast<std::uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
      }
    }
  }
};
static_assert(sizeof(BlockQ3_K) == 110 && offsetof(BlockQ3_K, qs) == 32 && offsetof(BlockQ3_K, scales) == 96 &&
                  offsetof(BlockQ3_K, d) == 108,
              "BlockQ3_K must match ggml's block_q3_K");

struct BlockQ4_K {
  static constexpr DType dtype = DType::q4_k;
  static constexpr std::size_t block_elements = kSuperBlock;
  static constexpr std::uint32_t ggml_type = 12;

  f16 d;
  f16 dmin;
  std::uint8_t scales[12];  // 8 six-bit scales and mins (scale_min_k4)
  std::uint8_t qs[128];     // chunk c of 64: low nibbles of qs[32c..] then high nibbles

  MOE_HD static float decode(const BlockQ4_K* row, std::size_t i) noexcept {
    const BlockQ4_K& b = row[i / 256];
    const std::size_t j = i % 256, c = j / 64, r = j % 64;
    std::uint8_t sc, m;
    detail::scale_min_k4(static_cast<int>(2 * c + r / 32), b.scales, sc, m);
    const std::uint8_t byte = b.qs[32 * c + r % 32];
    const int q = r < 32 ? byte & 0xf : byte >> 4;
    const float d1 = to_float(b.d) * sc, m1 = to_float(b.dmin) * m;
    return d1 * static_cast<float>(q) - m1;
  }
  static void dequantize(const BlockQ4_K& b, float* y) noexcept {
    const float d = to_float(b.d), dmin = to_float(b.dmin);
    for (int c = 0; c < 4; ++c) {
      std::uint8_t sc, m;
      detail::scale_min_k4(2 * c, b.scales, sc, m);
      const float d1 = d * sc, m1 = dmin * m;
      detail::scale_min_k4(2 * c + 1, b.scales, sc, m);
      const float d2 = d * sc, m2 = dmin * m;
      const std::uint8_t* q = b.qs + 32 * c;
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xf) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
  static void quantize(const float* x, BlockQ4_K& b) noexcept {
    std::uint8_t L[256];
    float mins[8], scales[8];
    detail::fit_k4_groups(x, 15, -1.f, 20, scales, mins, L);
    std::memset(b.scales, 0, 12);
    detail::pack_k4_scales(x, scales, mins, 15, b.d, b.dmin, b.scales, L);
    std::uint8_t* q = b.qs;
    for (int j = 0; j < 256; j += 64) {
      for (int l = 0; l < 32; ++l) q[l] = static_cast<std::uint8_t>(L[j + l] | (L[j + l + 32] << 4));
      q += 32;
    }
  }
};
static_assert(sizeof(BlockQ4_K) == 144 && offsetof(BlockQ4_K, scales) == 4 && offsetof(BlockQ4_K, qs) == 16,
              "BlockQ4_K must match ggml's block_q4_K");

struct BlockQ5_K {
  static constexpr DType dtype = DType::q5_k;
  static constexpr std::size_t block_elements = kSuperBlock;
  static constexpr std::uint32_t ggml_type = 13;

  f16 d;
  f16 dmin;
  std::uint8_t scales[12];
  std::uint8_t qh[32];   // bit 2c (+1 for the high nibbles) of byte l: fifth code bit of chunk c
  std::uint8_t qs[128];  // as Q4_K

  MOE_HD static float decode(const BlockQ5_K* row, std::size_t i) noexcept {
    const BlockQ5_K& b = row[i / 256];
    const std::size_t j = i % 256, c = j / 64, r = j % 64;
    std::uint8_t sc, m;
    detail::scale_min_k4(static_cast<int>(2 * c + r / 32), b.scales, sc, m);
    const std::uint8_t byte = b.qs[32 * c + r % 32];
    const int low = r < 32 ? byte & 0xf : byte >> 4;
    const int high = (b.qh[r % 32] >> (2 * c + r / 32)) & 1;
    const float d1 = to_float(b.d) * sc, m1 = to_float(b.dmin) * m;
    return d1 * static_cast<float>(low + (high ? 16 : 0)) - m1;
  }
  static void dequantize(const BlockQ5_K& b, float* y) noexcept {
    const float d = to_float(b.d), dmin = to_float(b.dmin);
    for (int c = 0; c < 4; ++c) {
      std::uint8_t sc, m;
      detail::scale_min_k4(2 * c, b.scales, sc, m);
      const float d1 = d * sc, m1 = dmin * m;
      detail::scale_min_k4(2 * c + 1, b.scales, sc, m);
      const float d2 = d * sc, m2 = dmin * m;
      const std::uint8_t* q = b.qs + 32 * c;
      for (int l = 0; l < 32; ++l) {
        *y++ = d1 * static_cast<float>((q[l] & 0xf) + ((b.qh[l] >> (2 * c)) & 1 ? 16 : 0)) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        *y++ = d2 * static_cast<float>((q[l] >> 4) + ((b.qh[l] >> (2 * c + 1)) & 1 ? 16 : 0)) - m2;
      }
    }
  }
  static void quantize(const float* x, BlockQ5_K& b) noexcept {
    std::uint8_t L[256];
    float mins[8], scales[8];
    detail::fit_k4_groups(x, 31, -0.5f, 15, scales, mins, L);
    std::memset(b.scales, 0, 12);
    detail::pack_k4_scales(x, scales, mins, 31, b.d, b.dmin, b.scales, L);
    std::memset(b.qh, 0, 32);
    std::uint8_t* ql = b.qs;
    std::uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < 256; n += 64) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[n + j];
        if (l1 > 15) l1 -= 16, b.qh[j] = static_cast<std::uint8_t>(b.qh[j] | m1);
        int l2 = L[n + j + 32];
        if (l2 > 15) l2 -= 16, b.qh[j] = static_cast<std::uint8_t>(b.qh[j] | m2);
        ql[j] = static_cast<std::uint8_t>(l1 | (l2 << 4));
      }
      m1 = static_cast<std::uint8_t>(m1 << 2), m2 = static_cast<std::uint8_t>(m2 << 2);
      ql += 32;
    }
  }
};
static_assert(sizeof(BlockQ5_K) == 176 && offsetof(BlockQ5_K, qh) == 16 && offsetof(BlockQ5_K, qs) == 48,
              "BlockQ5_K must match ggml's block_q5_K");

struct BlockQ6_K {
  static constexpr DType dtype = DType::q6_k;
  static constexpr std::size_t block_elements = kSuperBlock;
  static constexpr std::uint32_t ggml_type = 14;

  std::uint8_t ql[128];     // low 4 code bits
  std::uint8_t qh[64];      // high 2 code bits
  std::int8_t scales[16];   // group scales
  f16 d;

  // Element i: chunk n = i/128, run g = (i%128)/32, l = i%32: low nibble of ql[64n + l + 32(g&1)]
  // (high nibble for g >= 2), high bits (qh[32n + l] >> 2g) & 3; group 8n + 2g + l/16.
  MOE_HD static float decode(const BlockQ6_K* row, std::size_t i) noexcept {
    const BlockQ6_K& b = row[i / 256];
    const std::size_t j = i % 256, n = j / 128, g = (j % 128) / 32, l = j % 32;
    const std::uint8_t lo = b.ql[64 * n + l + 32 * (g & 1)];
    const int low = g < 2 ? lo & 0xf : lo >> 4;
    const int q = (low | (((b.qh[32 * n + l] >> (2 * g)) & 3) << 4)) - 32;
    return to_float(b.d) * static_cast<float>(b.scales[8 * n + 2 * g + l / 16]) * static_cast<float>(q);
  }
  static void dequantize(const BlockQ6_K& b, float* y) noexcept {
    const float d = to_float(b.d);
    for (int n = 0; n < 2; ++n) {
      const std::uint8_t* ql = b.ql + 64 * n;
      const std::uint8_t* qh = b.qh + 32 * n;
      const std::int8_t* sc = b.scales + 8 * n;
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[128 * n + l + 0] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
        y[128 * n + l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        y[128 * n + l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        y[128 * n + l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
  static void quantize(const float* x, BlockQ6_K& b) noexcept {
    std::int8_t L[256];
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ++ib) {
      const float scale = detail::make_qx_quants_rmse1(16, 32, x + 16 * ib, L + 16 * ib);
      scales[ib] = scale;
      const float abs_scale = std::fabs(scale);
      if (abs_scale > max_abs_scale) max_abs_scale = abs_scale, max_scale = scale;
    }
    if (max_abs_scale < detail::kGroupMaxEps) {
      b = BlockQ6_K{};  // all codes and scales zero, d = 0
      return;
    }
    const float iscale = -128.f / max_scale;
    b.d = to_f16(1 / iscale);
    for (int ib = 0; ib < 16; ++ib) {
      b.scales[ib] = static_cast<std::int8_t>(std::min(127, detail::nearest_int(iscale * scales[ib])));
    }
    for (int j = 0; j < 16; ++j) {
      const float d = to_float(b.d) * static_cast<float>(b.scales[j]);
      if (d == 0.0f) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = detail::nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = static_cast<std::int8_t>(std::max(-32, std::min(31, l)) + 32);
      }
    }
    std::uint8_t* ql = b.ql;
    std::uint8_t* qh = b.qh;
    for (int j = 0; j < 256; j += 128) {
      for (int l = 0; l < 32; ++l) {
        const int q1 = L[j + l + 0] & 0xf, q2 = L[j + l + 32] & 0xf, q3 = L[j + l + 64] & 0xf, q4 = L[j + l + 96] & 0xf;
        ql[l + 0] = static_cast<std::uint8_t>(q1 | (q3 << 4));
        ql[l + 32] = static_cast<std::uint8_t>(q2 | (q4 << 4));
        qh[l] = static_cast<std::uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                          ((L[j + l + 96] >> 4) << 6));
      }
      ql += 64;
      qh += 32;
    }
  }
};
static_assert(sizeof(BlockQ6_K) == 210 && offsetof(BlockQ6_K, qh) == 128 && offsetof(BlockQ6_K, scales) == 192 &&
                  offsetof(BlockQ6_K, d) == 208,
              "BlockQ6_K must match ggml's block_q6_K");

struct BlockQ8_K {
  static constexpr DType dtype = DType::q8_k;
  static constexpr std::size_t block_elements = kSuperBlock;
  static constexpr std::uint32_t ggml_type = 15;

  float d;
  std::int8_t qs[256];
  std::int16_t bsums[16];  // sum of each 16 codes

  MOE_HD static float decode(const BlockQ8_K* row, std::size_t i) noexcept {
    const BlockQ8_K& b = row[i / 256];
    return b.d * static_cast<float>(b.qs[i % 256]);
  }
  static void dequantize(const BlockQ8_K& b, float* y) noexcept {
    for (int j = 0; j < 256; ++j) y[j] = b.d * static_cast<float>(b.qs[j]);
  }
  // ggml quantize_row_q8_K_ref: d = max / -127 (max: largest |x|, sign kept), q = nearest(x/d).
  // (An all-zero block also gets zero bsums; ggml leaves them unset.)
  static void quantize(const float* x, BlockQ8_K& b) noexcept {
    float max = 0, amax = 0;
    for (int j = 0; j < 256; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) amax = ax, max = x[j];
    }
    if (amax == 0.0f) {
      b.d = 0;
      std::memset(b.qs, 0, sizeof(b.qs));
      std::memset(b.bsums, 0, sizeof(b.bsums));
      return;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < 256; ++j) {
      const int v = detail::nearest_int(iscale * x[j]);
      b.qs[j] = static_cast<std::int8_t>(std::max(-128, std::min(127, v)));
    }
    for (int j = 0; j < 16; ++j) {
      int sum = 0;
      for (int ii = 0; ii < 16; ++ii) sum += b.qs[j * 16 + ii];
      b.bsums[j] = static_cast<std::int16_t>(sum);
    }
    b.d = 1 / iscale;
  }
};
static_assert(sizeof(BlockQ8_K) == 292 && offsetof(BlockQ8_K, qs) == 4 && offsetof(BlockQ8_K, bsums) == 260,
              "BlockQ8_K must match ggml's block_q8_K");

}  // namespace moe::quant
MOE_QUANT_ROUND_AS_WRITTEN_END
