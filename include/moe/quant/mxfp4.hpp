// MXFP4 (ggml type 39; OCP Microscaling v1.0): 32 elements as an E8M0 shared exponent e and 32
// E2M1 codes; x = 2^(e-127) · fp4(q), with fp4 ∈ {0, ±0.5, ±1, ±1.5, ±2, ±3, ±4, ±6}. ggml stores
// the values doubled (kMxfp4Values) and halves the scale. Element j: low nibble of qs[j] (j < 16)
// or high nibble of qs[j - 16] (GPT-OSS's safetensors interleave instead: element 2k in the low
// nibble of byte k, 2k+1 in the high one, so a loader of those repacks). Reference quantizer: ggml quantize_row_mxfp4_ref (e = floor(log2 max|x|) - 2 + 127, each
// code the nearest value, first of equals).
#pragma once

#include "moe/quant/block.hpp"

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

MOE_QUANT_ROUND_AS_WRITTEN_BEGIN
namespace moe::quant {

// E2M1 values doubled (ggml kvalues_mxfp4).
inline constexpr std::int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// kMxfp4Values[q] as a packed lookup that device code can use too (decode).
MOE_HD constexpr std::int8_t mxfp4_value(int q) noexcept {
  return packed_table_entry(0x0c08060403020100ull, 0xf4f8fafcfdfeff00ull, q);
}
static_assert(packed_table_matches(mxfp4_value, kMxfp4Values), "mxfp4_value must match kMxfp4Values");

namespace detail {

// 2^(e-128): half the E8M0 scale (ggml_e8m0_to_fp32_half; e = 0, 1 are f32 subnormals).
MOE_HD inline float e8m0_half(std::uint8_t e) noexcept {
  const std::uint32_t bits = e < 2 ? 0x00200000u << e : static_cast<std::uint32_t>(e - 1) << 23;
  return f32_from_bits(bits);
}

}  // namespace detail

struct BlockMxfp4 {
  static constexpr DType dtype = DType::mxfp4;
  static constexpr std::size_t block_elements = 32;
  static constexpr std::uint32_t ggml_type = 39;

  std::uint8_t e;  // E8M0 exponent
  std::uint8_t qs[16];

  MOE_HD static float decode(const BlockMxfp4* row, std::size_t i) noexcept {
    const BlockMxfp4& b = row[i / 32];
    const std::size_t j = i % 32;
    const int q = j < 16 ? b.qs[j] & 0xf : b.qs[j - 16] >> 4;
    return static_cast<float>(mxfp4_value(q)) * detail::e8m0_half(b.e);
  }
  static void dequantize(const BlockMxfp4& b, float* y) noexcept {
    const float d = detail::e8m0_half(b.e);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(kMxfp4Values[b.qs[j] & 0xf]) * d;
      y[j + 16] = static_cast<float>(kMxfp4Values[b.qs[j] >> 4]) * d;
    }
  }
  // NaN elements are skipped by the max search and get code 0. max|x| below 2^-125 (where ggml's
  // exponent cast is UB) gets e = 0; an infinite max gets e = 254.
  static void quantize(const float* x, BlockMxfp4& b) noexcept {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) {
      if (amax < std::fabs(x[j])) amax = std::fabs(x[j]);
    }
    std::uint8_t e = 0;
    if (amax > 0.0f) {
      const float ef = std::floor(std::log2(amax)) - 2 + 127;
      e = static_cast<std::uint8_t>(ef <= 0.0f ? 0 : ef >= 254.0f ? 254 : static_cast<int>(ef));
    }
    const float d = detail::e8m0_half(e);
    b.e = e;
    const auto best = [d](float v) {
      int best_index = 0;
      float best_err = std::fabs(static_cast<float>(kMxfp4Values[0]) * d - v);
      for (int i = 1; i < 16; ++i) {
        const float err = std::fabs(static_cast<float>(kMxfp4Values[i]) * d - v);
        if (err < best_err) best_index = i, best_err = err;
      }
      return best_index;
    };
    for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<std::uint8_t>(best(x[j]) | best(x[j + 16]) << 4);
  }
};
static_assert(sizeof(BlockMxfp4) == 17 && alignof(BlockMxfp4) == 1 && offsetof(BlockMxfp4, qs) == 1,
              "BlockMxfp4 must match ggml's block_mxfp4");

}  // namespace moe::quant
MOE_QUANT_ROUND_AS_WRITTEN_END
