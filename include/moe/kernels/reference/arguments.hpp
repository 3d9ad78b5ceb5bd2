// Argument checks shared by every kernel backend: shapes that must agree, innermost strides of 1,
// and the set of weight element types. A failed check is a caller bug and throws
// moe::Error(kInvalidArgument) naming the kernel, the operand and the extents seen.
#pragma once

#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"
#include "moe/core/format.hpp"
#include "moe/core/tensor.hpp"

#include <type_traits>

namespace moe::kernels::detail {

// Weight element types the dense kernels accept. Quantized formats go through quant/ instead.
template <class W>
inline constexpr bool is_weight_type_v =
    std::is_same_v<W, float> || std::is_same_v<W, bf16> || std::is_same_v<W, f16>;

// Widens one stored weight to f32 (exact for all three types).
template <class W>
constexpr float weight_to_float(W w) noexcept {
  if constexpr (std::is_same_v<W, float>) {
    return w;
  } else if constexpr (std::is_same_v<W, bf16> || std::is_same_v<W, f16>) {
    return to_float(w);
  } else {
    static_assert(dependent_false<W>,
                  "moe::kernels: weights must be float, bf16 or f16 (quantized weights go "
                  "through quant/ decode traits, not the dense kernels)");
    return 0.0f;
  }
}

// The innermost stride must be 1 (or irrelevant because the innermost extent is <= 1).
template <class T, std::size_t R, class S>
void check_unit_inner_stride(const TensorView<T, R, S>& v, const char* op, const char* name) {
  require(v.extent(R - 1) <= 1 || v.stride(R - 1) == 1, ErrorCode::kInvalidArgument,
          "{}: operand {} has innermost stride {}, expected 1", op, name, v.stride(R - 1));
}

// Logical columns of a weight view: its inner extent, in elements (a block-format view counts
// blocks there).
template <class W, std::size_t R, class S>
index_t weight_cols(const TensorView<const W, R, S>& w) noexcept {
  return w.extent(R - 1) * static_cast<index_t>(FormatTraits<W>::block_elements);
}

// y = x·Wᵀ: x [n_tokens, in], w [out, in], y [n_tokens, out] (any weight format).
template <class W, class S>
void check_matmul(const TensorView<const float, 2, S>& x, const TensorView<const W, 2, S>& w,
                  const TensorView<float, 2, S>& y, const char* op) {
  require(x.extent(1) == weight_cols(w) && y.extent(0) == x.extent(0) && y.extent(1) == w.extent(0),
          ErrorCode::kInvalidArgument,
          "{}: shapes x [{}, {}], w [{}, {}] ({}, out, in), y [{}, {}] do not agree", op, x.extent(0),
          x.extent(1), w.extent(0), weight_cols(w), FormatTraits<W>::name, y.extent(0), y.extent(1));
  check_unit_inner_stride(x, op, "x");
  check_unit_inner_stride(w, op, "w");
  check_unit_inner_stride(y, op, "y");
}

// y = x·W: x [n_tokens, in], w [in, out], y [n_tokens, out] (any weight format).
template <class W, class S>
void check_matmul_in_out(const TensorView<const float, 2, S>& x, const TensorView<const W, 2, S>& w,
                         const TensorView<float, 2, S>& y, const char* op) {
  require(x.extent(1) == w.extent(0) && y.extent(0) == x.extent(0) && y.extent(1) == weight_cols(w),
          ErrorCode::kInvalidArgument,
          "{}: shapes x [{}, {}], w [{}, {}] ({}, in, out), y [{}, {}] do not agree", op, x.extent(0),
          x.extent(1), w.extent(0), weight_cols(w), FormatTraits<W>::name, y.extent(0), y.extent(1));
  check_unit_inner_stride(x, op, "x");
  check_unit_inner_stride(w, op, "w");
  check_unit_inner_stride(y, op, "y");
}

template <class A, class B, class S>
void check_same_shape(const TensorView<A, 2, S>& a, const TensorView<B, 2, S>& b, const char* op,
                      const char* name_a, const char* name_b) {
  require(a.extent(0) == b.extent(0) && a.extent(1) == b.extent(1), ErrorCode::kInvalidArgument,
          "{}: {} [{}, {}] and {} [{}, {}] must have the same shape", op, name_a, a.extent(0),
          a.extent(1), name_b, b.extent(0), b.extent(1));
  check_unit_inner_stride(a, op, name_a);
  check_unit_inner_stride(b, op, name_b);
}

// rmsnorm: x [n, d], weight [d], y [n, d].
template <class W, class S>
void check_rmsnorm(const TensorView<const float, 2, S>& x, const TensorView<const W, 1, S>& weight,
                   const TensorView<float, 2, S>& y) {
  check_same_shape(x, y, "rmsnorm", "x", "y");
  require(weight.extent(0) == x.extent(1), ErrorCode::kInvalidArgument,
          "rmsnorm: weight has {} elements, rows of x have {}", weight.extent(0), x.extent(1));
  check_unit_inner_stride(weight, "rmsnorm", "weight");
}

// The same number of rows (a per-row op between two operands of different widths).
template <class A, class B, class S>
void check_same_rows(const TensorView<A, 2, S>& a, const TensorView<B, 2, S>& b, const char* op, const char* name_a,
                     const char* name_b) {
  require(a.extent(0) == b.extent(0), ErrorCode::kInvalidArgument, "{}: {} has {} rows and {} has {}", op, name_a,
          a.extent(0), name_b, b.extent(0));
}

}  // namespace moe::kernels::detail
