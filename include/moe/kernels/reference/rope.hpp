// Scalar rotary position embedding (the oracle), in place, in both pairings of the rotated dims.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/arguments.hpp"

#include <cmath>
#include <cstdint>

namespace moe::kernels {

// Which dimensions of a head rotate together (RoFormer, arXiv:2104.09864).
enum class RopePairing {
  half_split,   // (i, i + rotary_dim/2): GPT-NeoX / Hugging Face `rotate_half` (Llama, Qwen, Mixtral)
  interleaved,  // (2i, 2i + 1): GPT-J / the original RoFormer layout
};

namespace detail {
template <class S>
void check_rope(const TensorView<float, 3, S>& x, const TensorView<const float, 2, S>& cos,
                const TensorView<const float, 2, S>& sin) {
  require(cos.extent(0) == x.extent(0) && sin.extent(0) == x.extent(0) &&
              sin.extent(1) == cos.extent(1),
          ErrorCode::kInvalidArgument,
          "rope: x has {} tokens, cos [{}, {}] and sin [{}, {}] must be [n_tokens, rotary_dim/2]",
          x.extent(0), cos.extent(0), cos.extent(1), sin.extent(0), sin.extent(1));
  require(2 * cos.extent(1) <= x.extent(2), ErrorCode::kInvalidArgument,
          "rope: rotary_dim {} exceeds head_dim {}", 2 * cos.extent(1), x.extent(2));
  check_unit_inner_stride(x, "rope", "x");
  check_unit_inner_stride(cos, "rope", "cos");
  check_unit_inner_stride(sin, "rope", "sin");
}

// The [rows · heads, head_dim] view of contiguous heads (what a per-head norm runs over).
template <class S>
TensorView<float, 2, S> heads_as_rows(const TensorView<float, 3, S>& x, const char* op) {
  require(x.extent(2) <= 1 || x.stride(2) == 1, ErrorCode::kInvalidArgument, "{}: heads need a unit inner stride", op);
  require((x.extent(1) <= 1 || x.stride(1) == x.extent(2)) && (x.extent(0) <= 1 || x.stride(0) == x.extent(1) * x.extent(2)),
          ErrorCode::kInvalidArgument, "{}: [{}, {}, {}] heads are not contiguous (strides {}, {})", op, x.extent(0),
          x.extent(1), x.extent(2), x.stride(0), x.stride(1));
  return TensorView<float, 2, S>(x.data(), {x.extent(0) * x.extent(1), x.extent(2)});
}

template <class W, class S>
void check_qk_norms(const TensorView<float, 3, S>& q, const TensorView<float, 3, S>& k,
                    const TensorView<const W, 1, S>& q_norm, const TensorView<const W, 1, S>& k_norm) {
  require((q_norm.extent(0) == 0) == (k_norm.extent(0) == 0) &&
              (q_norm.extent(0) == 0 || (q_norm.extent(0) == q.extent(2) && k_norm.extent(0) == k.extent(2))),
          ErrorCode::kInvalidArgument, "qk_norm_rope: norms of {} and {} for heads of {} and {}", q_norm.extent(0),
          k_norm.extent(0), q.extent(2), k.extent(2));
}

}  // namespace detail

// x [n_tokens, n_heads, head_dim] f32, rotated in place on the first rotary_dim = 2*cos.extent(1)
// dims of every head (the rest, e.g. GLM's partial rotary, stays untouched).
// cos, sin [n_tokens, rotary_dim/2]: the angle of pair i at each token's position.
// For a pair (a, b): a' = a·cos - b·sin, b' = b·cos + a·sin (Hugging Face: x·cos + rotate_half(x)·sin).
inline void rope(backend::reference, View<float, 3> x, View<const float, 2> cos,
                 View<const float, 2> sin, RopePairing pairing) {
  detail::check_rope(x, cos, sin);
  const index_t n_tokens = x.extent(0), n_heads = x.extent(1), half = cos.extent(1);
  for (index_t t = 0; t < n_tokens; ++t) {
    for (index_t h = 0; h < n_heads; ++h) {
      float* v = &x(t, h, 0);
      for (index_t i = 0; i < half; ++i) {
        const index_t ia = pairing == RopePairing::half_split ? i : 2 * i;
        const index_t ib = pairing == RopePairing::half_split ? i + half : 2 * i + 1;
        const float a = v[ia], b = v[ib], c = cos(t, i), s = sin(t, i);
        v[ia] = a * c - b * s;
        v[ib] = b * c + a * s;
      }
    }
  }
}

// cos[t][i] = cos(positions[t] · inv_freq[i]) · scaling and the same for sin: the rope tables of
// a pass. The angle is an f32 product as in transformers (inv_freq @ position_ids in f32); cos
// and sin are evaluated in double and rounded once. inv_freq [half], positions [n], cos, sin
// [n, half].
inline void rope_tables(backend::reference, View<const float, 1> inv_freq, float scaling,
                        View<const std::int64_t, 1> positions, View<float, 2> cos, View<float, 2> sin) {
  const index_t n = positions.extent(0), half = inv_freq.extent(0);
  require(cos.extent(0) == n && sin.extent(0) == n && cos.extent(1) == half && sin.extent(1) == half,
          ErrorCode::kInvalidArgument, "rope_tables: {} positions, {} frequencies, cos [{}, {}], sin [{}, {}]", n, half,
          cos.extent(0), cos.extent(1), sin.extent(0), sin.extent(1));
  for (index_t t = 0; t < n; ++t) {
    const auto p = static_cast<float>(positions[t]);
    for (index_t i = 0; i < half; ++i) {
      const float angle = inv_freq[i] * p;
      cos(t, i) = static_cast<float>(std::cos(static_cast<double>(angle))) * scaling;
      sin(t, i) = static_cast<float>(std::sin(static_cast<double>(angle))) * scaling;
    }
  }
}

}  // namespace moe::kernels
