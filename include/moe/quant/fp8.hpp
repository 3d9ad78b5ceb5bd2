// FP8 e4m3fn weights with a per-128-element f32 scale (DeepSeek-V3/R1, Kimi K2): the row-block
// form of their checkpoints' float8_e4m3fn tensors with 128×128-tile `weight_scale_inv` scales.
// A block is 128 consecutive elements of a row and the scale of the tile they lie in (copied
// into each of the tile's 128 rows: 132 bytes per 128 weights, 1.03× the FP8 bytes; the loader
// (io/checkpoint_quantization.hpp) repacks at load). x = d · e4m3(q).
//
// e4m3fn (OCP FP8, "fn": finite, no infinities): 1 sign bit, 4 exponent bits (bias 7), 3 mantissa
// bits; exponent 0 is subnormal (m · 2^-9), 0x7F / 0xFF are NaN, the largest finite is 448.
// No ggml type: GGUF has none for it (io/gguf_dtype.hpp maps it to nothing).
#pragma once

#include "moe/quant/block.hpp"

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

MOE_QUANT_ROUND_AS_WRITTEN_BEGIN
namespace moe::quant {

// The ggml_type of a block format GGUF has no type for.
inline constexpr std::uint32_t kNoGgmlType = 0xffffffffu;

// The largest finite e4m3fn value.
inline constexpr float kE4m3Max = 448.0f;

// e4m3fn code -> f32 (exact: every e4m3 value is an f32).
MOE_HD constexpr float e4m3_to_float(std::uint8_t q) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(q & 0x80u) << 24;
  const std::uint32_t mag = q & 0x7fu;
  if (mag == 0x7fu) return f32_from_bits(sign | 0x7fc00000u);  // NaN
  const std::uint32_t e = mag >> 3, m = mag & 7u;
  if (e == 0) {  // subnormal m · 2^-9 (exact in f32), and ±0
    const float v = static_cast<float>(m) * 0.001953125f;
    return sign != 0 ? -v : v;
  }
  return f32_from_bits(sign | (e + 120u) << 23 | m << 20);  // (1 + m/8) · 2^(e-7)
}

// f32 -> e4m3fn, round to nearest even (as torch's .to(torch.float8_e4m3fn)); |x| beyond the
// rounding range of 448 saturates to ±448 (torch gives NaN there; the quantizers below never
// pass such values), NaN gives 0x7F with the sign.
inline std::uint8_t float_to_e4m3(float x) noexcept {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(x);
  const auto sign = static_cast<std::uint8_t>((u >> 24) & 0x80u);
  const float a = std::fabs(x);
  if (!(a == a)) return static_cast<std::uint8_t>(sign | 0x7fu);
  if (a >= 464.0f) return static_cast<std::uint8_t>(sign | 0x7eu);  // 464 is halfway 448 -> 480 (NaN)
  if (a < std::ldexp(1.0f, -6)) {  // subnormal range: steps of 2^-9, ties to even
    const float steps = a * 512.0f;  // exact (power of two)
    auto m = static_cast<std::uint32_t>(steps);
    const float rest = steps - static_cast<float>(m);
    if (rest > 0.5f || (rest == 0.5f && (m & 1u))) ++m;
    return static_cast<std::uint8_t>(sign | m);  // m == 8 is the smallest normal's code
  }
  // Normal: keep 3 mantissa bits of the f32 with RNE on the dropped 20 (a carry bumps the exponent).
  const std::uint32_t abs_bits = u & 0x7fffffffu;
  const std::uint32_t rounded = abs_bits + 0x7ffffu + ((abs_bits >> 20) & 1u);
  const std::uint32_t e = (rounded >> 23) - 120u, m = (rounded >> 20) & 7u;
  return static_cast<std::uint8_t>(sign | e << 3 | m);
}

struct BlockFp8E4m3 {
  static constexpr DType dtype = DType::fp8_e4m3_b128;
  static constexpr std::size_t block_elements = 128;
  static constexpr std::uint32_t ggml_type = kNoGgmlType;

  float d;               // the tile's scale (the checkpoint's weight_scale_inv)
  std::uint8_t qs[128];  // e4m3fn codes

  MOE_HD static float decode(const BlockFp8E4m3* row, std::size_t i) noexcept {
    const BlockFp8E4m3& b = row[i / 128];
    return e4m3_to_float(b.qs[i % 128]) * b.d;
  }
  static void dequantize(const BlockFp8E4m3& b, float* y) noexcept {
    for (int j = 0; j < 128; ++j) y[j] = e4m3_to_float(b.qs[j]) * b.d;
  }
  // DeepSeek's block quantizer on one block: d = max|x| / 448, q = e4m3(x / d). NaN elements are
  // skipped by the max search and stay NaN; an all-zero block gets d = 0 and zero codes.
  static void quantize(const float* x, BlockFp8E4m3& b) noexcept {
    float amax = 0.0f;
    for (int j = 0; j < 128; ++j) {
      if (amax < std::fabs(x[j])) amax = std::fabs(x[j]);
    }
    b.d = amax / kE4m3Max;
    const float id = b.d != 0.0f ? 1.0f / b.d : 0.0f;
    for (int j = 0; j < 128; ++j) b.qs[j] = float_to_e4m3(x[j] * id);
  }
};
static_assert(sizeof(BlockFp8E4m3) == 132 && offsetof(BlockFp8E4m3, qs) == 4, "BlockFp8E4m3 layout");

}  // namespace moe::quant
MOE_QUANT_ROUND_AS_WRITTEN_END
