// ggml's first block formats, 32 elements each, codes in nibbles: element j < 16 in the low nibble
// of qs[j], element j >= 16 in the high nibble of qs[j - 16]; the fifth bit of Q5 codes is bit j
// of the 32-bit little-endian qh.
//   Q4_0 (type 2):  x = d·(q - 8),  d = max / -8 (max: the element of largest |x|, sign kept)
//   Q4_1 (type 3):  x = d·q + m,    d = (max - min) / 15, m = min
//   Q5_0 (type 6):  x = d·(q - 16), d = max / -16
//   Q5_1 (type 7):  x = d·q + m,    d = (max - min) / 31, m = min
// Reference quantizers: ggml quantize_row_q{4,5}_{0,1}_ref (codes by truncating x/d + offset + 0.5).
// A NaN element is skipped by the max/min search and gets code 0 (ggml's cast is UB there).
#pragma once

#include "moe/quant/block.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

MOE_QUANT_ROUND_AS_WRITTEN_BEGIN
namespace moe::quant {

namespace detail {

// The element of largest magnitude (sign kept) and that magnitude, NaN ignored (ggml's loop).
inline void signed_absmax(const float* x, int n, float& amax, float& max) noexcept {
  amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) amax = std::fabs(x[j]), max = x[j];
  }
}

inline void min_max(const float* x, int n, float& min, float& max) noexcept {
  min = FLT_MAX, max = -FLT_MAX;
  for (int j = 0; j < n; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
}

MOE_HD inline std::uint8_t nibble(const std::uint8_t* qs, std::size_t j) noexcept {
  return j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4;
}

MOE_HD inline std::uint32_t load_u32(const std::uint8_t* p) noexcept {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}
inline void store_u32(std::uint8_t* p, std::uint32_t v) noexcept {
  for (int k = 0; k < 4; ++k) p[k] = static_cast<std::uint8_t>(v >> (8 * k));
}

}  // namespace detail

struct BlockQ4_0 {
  static constexpr DType dtype = DType::q4_0;
  static constexpr std::size_t block_elements = 32;
  static constexpr std::uint32_t ggml_type = 2;

  f16 d;
  std::uint8_t qs[16];

  MOE_HD static float decode(const BlockQ4_0* row, std::size_t i) noexcept {
    const BlockQ4_0& b = row[i / 32];
    return static_cast<float>(detail::nibble(b.qs, i % 32) - 8) * to_float(b.d);
  }
  static void dequantize(const BlockQ4_0& b, float* y) noexcept {
    const float d = to_float(b.d);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((b.qs[j] & 0x0f) - 8) * d;
      y[j + 16] = static_cast<float>((b.qs[j] >> 4) - 8) * d;
    }
  }
  static void quantize(const float* x, BlockQ4_0& b) noexcept {
    float amax, max;
    detail::signed_absmax(x, 32, amax, max);
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = to_f16(d);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::clamp(detail::trunc_to_int(x[j] * id + 8.5f), 0, 15);
      const int q1 = std::clamp(detail::trunc_to_int(x[j + 16] * id + 8.5f), 0, 15);
      b.qs[j] = static_cast<std::uint8_t>(q0 | q1 << 4);
    }
  }
};
static_assert(sizeof(BlockQ4_0) == 18 && offsetof(BlockQ4_0, qs) == 2, "BlockQ4_0 must match ggml's block_q4_0");

struct BlockQ4_1 {
  static constexpr DType dtype = DType::q4_1;
  static constexpr std::size_t block_elements = 32;
  static constexpr std::uint32_t ggml_type = 3;

  f16 d;
  f16 m;
  std::uint8_t qs[16];

  MOE_HD static float decode(const BlockQ4_1* row, std::size_t i) noexcept {
    const BlockQ4_1& b = row[i / 32];
    return static_cast<float>(detail::nibble(b.qs, i % 32)) * to_float(b.d) + to_float(b.m);
  }
  static void dequantize(const BlockQ4_1& b, float* y) noexcept {
    const float d = to_float(b.d), m = to_float(b.m);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(b.qs[j] & 0x0f) * d + m;
      y[j + 16] = static_cast<float>(b.qs[j] >> 4) * d + m;
    }
  }
  static void quantize(const float* x, BlockQ4_1& b) noexcept {
    float min, max;
    detail::min_max(x, 32, min, max);
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = to_f16(d);
    b.m = to_f16(min);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::clamp(detail::trunc_to_int((x[j] - min) * id + 0.5f), 0, 15);
      const int q1 = std::clamp(detail::trunc_to_int((x[j + 16] - min) * id + 0.5f), 0, 15);
      b.qs[j] = static_cast<std::uint8_t>(q0 | q1 << 4);
    }
  }
};
static_assert(sizeof(BlockQ4_1) == 20 && offsetof(BlockQ4_1, qs) == 4, "BlockQ4_1 must match ggml's block_q4_1");

struct BlockQ5_0 {
  static constexpr DType dtype = DType::q5_0;
  static constexpr std::size_t block_elements = 32;
  static constexpr std::uint32_t ggml_type = 6;

  f16 d;
  std::uint8_t qh[4];  // bit j: the fifth bit of element j
  std::uint8_t qs[16];

  MOE_HD static int code(const BlockQ5_0& b, std::size_t j) noexcept {
    return detail::nibble(b.qs, j) | static_cast<int>((detail::load_u32(b.qh) >> j) & 1u) << 4;
  }
  MOE_HD static float decode(const BlockQ5_0* row, std::size_t i) noexcept {
    const BlockQ5_0& b = row[i / 32];
    return static_cast<float>(code(b, i % 32) - 16) * to_float(b.d);
  }
  static void dequantize(const BlockQ5_0& b, float* y) noexcept {
    const float d = to_float(b.d);
    for (std::size_t j = 0; j < 32; ++j) y[j] = static_cast<float>(code(b, j) - 16) * d;
  }
  static void quantize(const float* x, BlockQ5_0& b) noexcept {
    float amax, max;
    detail::signed_absmax(x, 32, amax, max);
    const float d = max / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = to_f16(d);
    std::uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::clamp(detail::trunc_to_int(x[j] * id + 16.5f), 0, 31);
      const int q1 = std::clamp(detail::trunc_to_int(x[j + 16] * id + 16.5f), 0, 31);
      b.qs[j] = static_cast<std::uint8_t>((q0 & 0x0f) | (q1 & 0x0f) << 4);
      qh |= static_cast<std::uint32_t>(q0 >> 4) << j | static_cast<std::uint32_t>(q1 >> 4) << (j + 16);
    }
    detail::store_u32(b.qh, qh);
  }
};
static_assert(sizeof(BlockQ5_0) == 22 && offsetof(BlockQ5_0, qh) == 2 && offsetof(BlockQ5_0, qs) == 6,
              "BlockQ5_0 must match ggml's block_q5_0");

struct BlockQ5_1 {
  static constexpr DType dtype = DType::q5_1;
  static constexpr std::size_t block_elements = 32;
  static constexpr std::uint32_t ggml_type = 7;

  f16 d;
  f16 m;
  std::uint8_t qh[4];
  std::uint8_t qs[16];

  MOE_HD static int code(const BlockQ5_1& b, std::size_t j) noexcept {
    return detail::nibble(b.qs, j) | static_cast<int>((detail::load_u32(b.qh) >> j) & 1u) << 4;
  }
  MOE_HD static float decode(const BlockQ5_1* row, std::size_t i) noexcept {
    const BlockQ5_1& b = row[i / 32];
    return static_cast<float>(code(b, i % 32)) * to_float(b.d) + to_float(b.m);
  }
  static void dequantize(const BlockQ5_1& b, float* y) noexcept {
    const float d = to_float(b.d), m = to_float(b.m);
    for (std::size_t j = 0; j < 32; ++j) y[j] = static_cast<float>(code(b, j)) * d + m;
  }
  static void quantize(const float* x, BlockQ5_1& b) noexcept {
    float min, max;
    detail::min_max(x, 32, min, max);
    const float d = (max - min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = to_f16(d);
    b.m = to_f16(min);
    std::uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::clamp(detail::trunc_to_int((x[j] - min) * id + 0.5f), 0, 31);
      const int q1 = std::clamp(detail::trunc_to_int((x[j + 16] - min) * id + 0.5f), 0, 31);
      b.qs[j] = static_cast<std::uint8_t>((q0 & 0x0f) | (q1 & 0x0f) << 4);
      qh |= static_cast<std::uint32_t>(q0 >> 4) << j | static_cast<std::uint32_t>(q1 >> 4) << (j + 16);
    }
    detail::store_u32(b.qh, qh);
  }
};
static_assert(sizeof(BlockQ5_1) == 24 && offsetof(BlockQ5_1, qh) == 4 && offsetof(BlockQ5_1, qs) == 8,
              "BlockQ5_1 must match ggml's block_q5_1");

}  // namespace moe::quant
MOE_QUANT_ROUND_AS_WRITTEN_END
