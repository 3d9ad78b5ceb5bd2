// Q8_0 (ggml type 8): 32 elements as an f16 scale d and 32 int8 codes; x = d·q.
// Reference quantizer (ggml quantize_row_q8_0_ref): d = max|x| / 127, q = round(x / d) (half away
// from zero). Round-trip error per element <= d/2 (+ the f16 rounding of d, relative 2^-11).
#pragma once

#include "moe/quant/block.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>

MOE_QUANT_ROUND_AS_WRITTEN_BEGIN
namespace moe::quant {

struct BlockQ8_0 {
  static constexpr DType dtype = DType::q8_0;
  static constexpr std::size_t block_elements = 32;
  static constexpr std::uint32_t ggml_type = 8;

  f16 d;               // scale
  std::int8_t qs[32];  // codes

  MOE_HD static float decode(const BlockQ8_0* row, std::size_t i) noexcept {
    const BlockQ8_0& b = row[i / 32];
    return static_cast<float>(b.qs[i % 32]) * to_float(b.d);
  }
  static void dequantize(const BlockQ8_0& b, float* y) noexcept {
    const float d = to_float(b.d);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(b.qs[j]) * d;
  }
  // NaN in x: ggml's MAX(a, b) lets the elements after a NaN set the max (a NaN does not stick),
  // so the scale comes from those; a NaN element gets code 0 (ggml's cast is UB there).
  static void quantize(const float* x, BlockQ8_0& b) noexcept {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) {
      const float a = std::fabs(x[j]);
      amax = amax > a ? amax : a;  // ggml's MAX(a, b): a NaN propagates
    }
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = to_f16(d);
    for (int j = 0; j < 32; ++j) b.qs[j] = detail::round_to_int8(x[j] * id);
  }
};
static_assert(sizeof(BlockQ8_0) == 34 && alignof(BlockQ8_0) == 2, "BlockQ8_0 must match ggml's block_q8_0");
static_assert(offsetof(BlockQ8_0, qs) == 2, "BlockQ8_0 layout");

}  // namespace moe::quant
MOE_QUANT_ROUND_AS_WRITTEN_END
