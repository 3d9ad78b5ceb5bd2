// Element types of weights and activations: f32, bf16 and f16, with exact conversions
// (round-to-nearest-even, NaN and Inf preserved) and the one runtime->template switch
// (`visit_dtype`) that the model boundary uses to pick a typed kernel.
#pragma once

#include "moe/core/error.hpp"

#include <bit>
#include <cstddef>
#include <cstdint>
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

constexpr float to_float(bf16 v) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(v.bits) << 16);
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

constexpr float to_float(f16 v) noexcept {
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
  return std::bit_cast<float>(out);
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

constexpr float to_float(float v) noexcept { return v; }

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

enum class DType : std::uint8_t { f32, bf16, f16 };

constexpr std::size_t dtype_size(DType t) noexcept {
  switch (t) {
    case DType::f32: return 4;
    case DType::bf16: return 2;
    case DType::f16: return 2;
  }
  return 0;
}

constexpr std::string_view dtype_name(DType t) noexcept {
  switch (t) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
  }
  return "?";
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

// The single runtime->compile-time dtype switch: calls f(T{}) with T the C++ type of `t`.
// Use it once at a model or layer boundary, never inside a hot loop.
template <class F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: return std::forward<F>(f)(float{});
    case DType::bf16: return std::forward<F>(f)(bf16{});
    case DType::f16: return std::forward<F>(f)(f16{});
  }
  fail(ErrorCode::kInternal, "visit_dtype: invalid DType value {}", static_cast<int>(t));
}

// Helper for static_assert in the unsupported branch of a template (CUTLASS style).
template <class...>
inline constexpr bool dependent_false = false;

}  // namespace moe
