// Element types of weights and activations: f32, bf16 and f16, with exact conversions
// (round-to-nearest-even, NaN and Inf preserved) and the one runtime->template switch
// (`visit_dtype`) that the model boundary uses to pick a typed kernel. DType also names the
// ggml block formats (q8_0, q4_K, ...; their layouts live in quant/): a block format has no
// element size — the bytes of a row come from format_row_bytes (core/format.hpp).
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/host_device.hpp"

#include <bit>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string_view>
#include <type_traits>

namespace moe {

// bfloat16: the top 16 bits of an IEEE-754 binary32. Stored as raw bits; arithmetic happens in f32.
struct bf16 {
  std::uint16_t bits = 0;

  static constexpr bf16 from_bits(std::uint16_t b) noexcept { return bf16{b}; }
};

// IEEE-754 binary16. Stored as raw bits; arithmetic happens in f32.
struct f16 {
  std::uint16_t bits = 0;

  static constexpr f16 from_bits(std::uint16_t b) noexcept { return f16{b}; }
};

constexpr bool operator==(bf16 a, bf16 b) noexcept { return a.bits == b.bits; }
constexpr bool operator==(f16 a, f16 b) noexcept { return a.bits == b.bits; }

// ---- bf16 <-> f32 ---------------------------------------------------------------------------

MOE_HD constexpr float to_float(bf16 v) noexcept {
  return f32_from_bits(static_cast<std::uint32_t>(v.bits) << 16);
}

// Round to nearest, ties to even. NaN stays NaN (quieted, sign kept); values past the largest
// bf16 round to Inf as IEEE rounding requires.
constexpr bf16 to_bf16(float f) noexcept {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep the sign and the top payload bits, force quiet
    return bf16::from_bits(static_cast<std::uint16_t>((u >> 16) | 0x0040u));
  }
  const std::uint32_t rounding_bias = 0x7fffu + ((u >> 16) & 1u);
  return bf16::from_bits(static_cast<std::uint16_t>((u + rounding_bias) >> 16));
}

// ---- f16 <-> f32 ----------------------------------------------------------------------------

MOE_HD constexpr float to_float(f16 v) noexcept {
  const std::uint32_t h = v.bits;
  const std::uint32_t sign = (h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t out = 0;
  if (exponent == 0x1fu) {  // Inf or NaN: keep the payload
    out = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {  // normal
    out = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {  // signed zero
    out = sign;
  } else {  // subnormal: normalise the mantissa
    std::uint32_t e = 113u;  // 127 - 15 + 1
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --e;
    }
    out = sign | (e << 23) | ((mantissa & 0x3ffu) << 13);
  }
  return f32_from_bits(out);
}

// Round to nearest, ties to even, including into the subnormal range; overflow gives Inf,
// NaN stays NaN (quiet, sign kept).
constexpr f16 to_f16(float f) noexcept {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  const std::uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) {  // NaN
    return f16::from_bits(static_cast<std::uint16_t>(sign | 0x7e00u | ((abs >> 13) & 0x1ffu)));
  }
  if (abs >= 0x477ff000u) {  // >= 65520 rounds to Inf (65504 is the largest finite half)
    return f16::from_bits(static_cast<std::uint16_t>(sign | 0x7c00u));
  }
  const int exponent = static_cast<int>(abs >> 23) - 127;
  if (exponent >= -14) {  // normal half: drop 13 mantissa bits with RNE
    const std::uint32_t rebased = abs - (112u << 23);  // exponent bias 127 -> 15
    const std::uint32_t rounded = rebased + 0x0fffu + ((rebased >> 13) & 1u);
    return f16::from_bits(static_cast<std::uint16_t>(sign | (rounded >> 13)));
  }
  if (exponent < -25) return f16::from_bits(sign);  // below half the smallest subnormal
  // Subnormal half: value = m * 2^-24 with m = round(abs_value * 2^24).
  const std::uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;  // 24-bit significand
  const int shift = -exponent - 1;                                 // 14..24
  const std::uint32_t kept = mantissa >> shift;
  const std::uint32_t rest = mantissa & ((1u << shift) - 1u);
  const std::uint32_t half = 1u << (shift - 1);
  std::uint32_t m = kept;
  if (rest > half || (rest == half && (kept & 1u))) ++m;
  return f16::from_bits(static_cast<std::uint16_t>(sign | m));
}

MOE_HD constexpr float to_float(float v) noexcept { return v; }

// Converts an f32 into the storage type T.
template <class T>
constexpr T from_float(float v) noexcept {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else if constexpr (std::is_same_v<T, bf16>) {
    return to_bf16(v);
  } else {
    static_assert(std::is_same_v<T, f16>, "from_float: T must be float, bf16 or f16");
    return to_f16(v);
  }
}

// ---- runtime element type --------------------------------------------------------------------

// The storage format of a tensor: three element types, then the block formats (ggml's, then FP8
// rows; values are ours, not ggml's type ids; each block's FormatTraits carries its ggml id).
enum class DType : std::uint8_t {
  f32,
  bf16,
  f16,
  q8_0,    // 32 elements: f16 scale, 32 int8
  q4_0,    // 32 elements: f16 scale, 4-bit codes offset by 8
  q4_1,    // 32 elements: f16 scale and min, 4-bit codes
  q5_0,    // 32 elements: f16 scale, 5-bit codes offset by 16
  q5_1,    // 32 elements: f16 scale and min, 5-bit codes
  q2_k,    // 256 elements: 16 groups with 4-bit scales and mins, 2-bit codes
  q3_k,    // 256 elements: 16 groups with 6-bit scales, 3-bit codes
  q4_k,    // 256 elements: 8 groups with 6-bit scales and mins, 4-bit codes
  q5_k,    // 256 elements: 8 groups with 6-bit scales and mins, 5-bit codes
  q6_k,    // 256 elements: 16 groups with int8 scales, 6-bit codes
  q8_k,    // 256 elements: f32 scale, int8 codes, group sums (activations of the K dot products)
  iq4_nl,  // 32 elements: f16 scale, 4-bit indices into a non-linear table
  iq4_xs,  // 256 elements: 8 groups with 6-bit scales, 4-bit non-linear indices
  mxfp4,   // 32 elements: E8M0 scale, E2M1 codes (OCP microscaling)
  fp8_e4m3_b128,  // 128 elements: f32 scale, e4m3fn codes (FP8 checkpoints' 128x128 tiles, per row)
};

inline constexpr DType kAllDTypes[] = {DType::f32,  DType::bf16, DType::f16,  DType::q8_0,   DType::q4_0,
                                       DType::q4_1, DType::q5_0, DType::q5_1, DType::q2_k,   DType::q3_k,
                                       DType::q4_k, DType::q5_k, DType::q6_k, DType::q8_k,   DType::iq4_nl,
                                       DType::iq4_xs, DType::mxfp4, DType::fp8_e4m3_b128};

// Whether t stores blocks (several elements share a scale) rather than single elements.
constexpr bool is_block_dtype(DType t) noexcept {
  return !(t == DType::f32 || t == DType::bf16 || t == DType::f16);
}

// Bytes per element of an element type; 0 for a block format, which has no element size (use
// format_row_bytes for the bytes of a row).
constexpr std::size_t dtype_size(DType t) noexcept {
  switch (t) {
    case DType::f32: return 4;
    case DType::bf16: return 2;
    case DType::f16: return 2;
    default: return 0;
  }
}

// The name as ggml spells it (ggml_type_name): "f32", "bf16", "q8_0", "q4_K", "iq4_xs", "mxfp4", ...
constexpr std::string_view dtype_name(DType t) noexcept {
  switch (t) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::q8_0: return "q8_0";
    case DType::q4_0: return "q4_0";
    case DType::q4_1: return "q4_1";
    case DType::q5_0: return "q5_0";
    case DType::q5_1: return "q5_1";
    case DType::q2_k: return "q2_K";
    case DType::q3_k: return "q3_K";
    case DType::q4_k: return "q4_K";
    case DType::q5_k: return "q5_K";
    case DType::q6_k: return "q6_K";
    case DType::q8_k: return "q8_K";
    case DType::iq4_nl: return "iq4_nl";
    case DType::iq4_xs: return "iq4_xs";
    case DType::mxfp4: return "mxfp4";
    case DType::fp8_e4m3_b128: return "fp8_e4m3_b128";
  }
  return "?";
}

// The DType named s, ignoring ASCII case ("q4_k", "Q4_K" and "q4_K" all give q4_k); nullopt for
// an unknown name.
constexpr std::optional<DType> parse_dtype(std::string_view s) noexcept {
  const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  for (const DType t : kAllDTypes) {
    const std::string_view name = dtype_name(t);
    if (name.size() != s.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < s.size() && same; ++i) same = lower(name[i]) == lower(s[i]);
    if (same) return t;
  }
  return std::nullopt;
}

template <class T>
inline constexpr bool is_element_type_v =
    std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, f16>;

template <class T>
constexpr DType dtype_of() noexcept {
  static_assert(is_element_type_v<T>, "dtype_of: T must be float, bf16 or f16");
  if constexpr (std::is_same_v<T, float>) return DType::f32;
  else if constexpr (std::is_same_v<T, bf16>) return DType::bf16;
  else return DType::f16;
}

// The single runtime->compile-time element-type switch: calls f(T{}) with T the C++ type of `t`
// (f32, bf16, f16; a block format is kUnsupported here: weights go through visit_format).
// Use it once at a model or layer boundary, never inside a hot loop.
template <class F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: return std::forward<F>(f)(float{});
    case DType::bf16: return std::forward<F>(f)(bf16{});
    case DType::f16: return std::forward<F>(f)(f16{});
    default: break;
  }
  if (is_block_dtype(t) && static_cast<std::size_t>(t) < std::size(kAllDTypes)) {
    fail(ErrorCode::kUnsupported, "visit_dtype: {} is a block format, not an element type (use visit_format)",
         dtype_name(t));
  }
  fail(ErrorCode::kInternal, "visit_dtype: invalid DType value {}", static_cast<int>(t));
}

// Helper for static_assert in the unsupported branch of a template (CUTLASS style).
template <class...>
inline constexpr bool dependent_false = false;

}  // namespace moe
