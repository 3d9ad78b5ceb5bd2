// What every ggml block format shares: the block concept (a struct byte-identical to ggml's
// block_*, with its element count, DType and ggml type id as static members and per-block
// decode / dequantize / quantize functions), row-level dequantize_row / quantize_row with the
// length checked against the block size, and the scalar helpers of ggml's reference quantizers
// (nearest_int's round-half-even, NaN-safe float->int conversions).
//
// Numerics follow ggml-quants.c (the *_ref functions, which llama-quantize uses when no
// importance matrix is given) operation by operation, so the bytes written are ggml's for the
// same input as long as both sides round the same way (no FMA contraction differences).
#pragma once

#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"

#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

// The quantizers' arithmetic is rounded as written, without FMA contraction (GCC contracts a·b + c
// by default when it targets FMA, and where it does so depends on the surrounding code): ggml's
// reference quantizers compiled without contraction give the same bytes, whatever flags this
// library is compiled with. (Not under nvcc, which compiles the host side with its own options.)
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define MOE_QUANT_ROUND_AS_WRITTEN_BEGIN _Pragma("GCC push_options") _Pragma("GCC optimize(\"fp-contract=off\")")
#define MOE_QUANT_ROUND_AS_WRITTEN_END _Pragma("GCC pop_options")
#elif defined(__clang__) && !defined(__CUDACC__)
#define MOE_QUANT_ROUND_AS_WRITTEN_BEGIN _Pragma("clang fp contract(off)")
#define MOE_QUANT_ROUND_AS_WRITTEN_END _Pragma("clang fp contract(on)")
#else
#define MOE_QUANT_ROUND_AS_WRITTEN_BEGIN
#define MOE_QUANT_ROUND_AS_WRITTEN_END
#endif

namespace moe::quant {

// A block format: a trivially copyable struct of `block_elements` elements in sizeof(Q) bytes,
// with decode (element i of a row), dequantize (one block) and quantize (one block).
template <class Q>
concept BlockFormat = std::is_trivially_copyable_v<Q> && requires(const Q* row, const Q& b, Q& out, float* y,
                                                                      const float* x, std::size_t i) {
  { Q::dtype } -> std::convertible_to<DType>;
  { Q::block_elements } -> std::convertible_to<std::size_t>;
  { Q::ggml_type } -> std::convertible_to<std::uint32_t>;
  { Q::decode(row, i) } -> std::same_as<float>;
  Q::dequantize(b, y);
  Q::quantize(x, out);
};

namespace detail {

// ggml's nearest_int: round to nearest, ties to even, by adding 1.5·2^23 and reading the low
// mantissa bits (exact for |x| <= 2^22 - 1; other values, NaN included, give some int without UB,
// and every caller clamps the result).
inline int nearest_int(float x) noexcept {
  const float v = x + 12582912.0f;
  const auto bits = std::bit_cast<std::int32_t>(v);
  return (bits & 0x007fffff) - 0x00400000;
}

// Truncation toward zero as C's (int) cast, but defined for every input: NaN gives 0 and values
// outside int's range saturate. (ggml's casts are UB there; for in-range inputs this is the same.)
inline int trunc_to_int(float x) noexcept {
  if (!(x == x)) return 0;
  if (x >= 2147483520.0f) return std::numeric_limits<int>::max();
  if (x <= -2147483648.0f) return std::numeric_limits<int>::min();
  return static_cast<int>(x);
}

// roundf (half away from zero) then saturate to int8, NaN -> 0 (ggml's q8_0 store, UB-free).
inline std::int8_t round_to_int8(float x) noexcept {
  if (!(x == x)) return 0;
  const float r = std::round(x);
  return static_cast<std::int8_t>(r >= 127.0f ? 127 : r <= -128.0f ? -128 : static_cast<int>(r));
}

// Smallest |group max| that counts as non-zero in ggml's group quantizers (GROUP_MAX_EPS).
inline constexpr float kGroupMaxEps = 1e-15f;

inline float f16_round(float x) noexcept { return to_float(to_f16(x)); }

}  // namespace detail

// Checks that a row of n elements is whole blocks of Q (kInvalidArgument naming the format).
template <BlockFormat Q>
void check_row_length(std::size_t n, const char* op) {
  require(n % Q::block_elements == 0, ErrorCode::kInvalidArgument,
          "{}: a row of {} elements is not a whole number of {} blocks ({} elements each)", op, n,
          dtype_name(Q::dtype), Q::block_elements);
}

// y[0, n) = the n elements of the row of blocks `row` (n a multiple of the block size, else
// kInvalidArgument). y must hold n floats.
template <BlockFormat Q>
void dequantize_row(const Q* row, float* y, std::size_t n) {
  check_row_length<Q>(n, "dequantize_row");
  for (std::size_t b = 0; b < n / Q::block_elements; ++b) Q::dequantize(row[b], y + b * Q::block_elements);
}

// row = the n elements x quantized with ggml's reference algorithm, block by block (n a multiple
// of the block size, else kInvalidArgument). row must hold n / block_elements blocks.
// Thread-safe; no allocation.
template <BlockFormat Q>
void quantize_row(const float* x, Q* row, std::size_t n) {
  check_row_length<Q>(n, "quantize_row");
  for (std::size_t b = 0; b < n / Q::block_elements; ++b) Q::quantize(x + b * Q::block_elements, row[b]);
}

}  // namespace moe::quant
