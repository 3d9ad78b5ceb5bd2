// Scalar element-wise ops of the graph (the oracle): bias add, scaling, symmetric clamp (OLMoE's
// clip_qkv) and the sigmoid-gated add of Qwen2-MoE's shared expert.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/format.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/activation.hpp"
#include "moe/kernels/reference/arguments.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace moe::kernels {

// y[t, :] += bias for every row t. y [n, d] f32, bias [d] stored as W.
template <class W>
void add_bias(backend::reference, View<float, 2> y, View<const W, 1> bias) {
  require(bias.extent(0) == y.extent(1), ErrorCode::kInvalidArgument, "add_bias: bias of {} for rows of {}",
          bias.extent(0), y.extent(1));
  for (index_t t = 0; t < y.extent(0); ++t) {
    for (index_t i = 0; i < y.extent(1); ++i) y(t, i) += to_float(bias[i]);
  }
}

// x *= factor element-wise, x [n, d] f32 (Granite's muP multipliers).
inline void scale(backend::reference, View<float, 2> x, float factor) {
  for (index_t t = 0; t < x.extent(0); ++t) {
    for (index_t i = 0; i < x.extent(1); ++i) x(t, i) *= factor;
  }
}

// x[t, :] *= w[t] for every row t. x [n, d] f32, w [n] f32 (Llama 4: the routing weight scales an
// expert's input).
inline void scale_rows(backend::reference, View<float, 2> x, View<const float, 1> w) {
  require(w.extent(0) == x.extent(0), ErrorCode::kInvalidArgument, "scale_rows: {} weights for {} rows", w.extent(0),
          x.extent(0));
  for (index_t t = 0; t < x.extent(0); ++t) {
    for (index_t i = 0; i < x.extent(1); ++i) x(t, i) *= w[t];
  }
}

// x[i] = value for every i. x [n] f32.
inline void fill(backend::reference, View<float, 1> x, float value) {
  for (index_t i = 0; i < x.extent(0); ++i) x[i] = value;
}

// Llama 4's attention temperature tuning (NoPE layers): q[t, :] *= 1 + attn_scale ·
// log1p(floor((position[t] + 1) / floor_scale)), in f32 as Llama4TextAttention computes it.
// q [n, d] f32, positions [n].
inline float attention_temperature_factor(std::int64_t position, float floor_scale, float attn_scale) noexcept {
  const float p = static_cast<float>(position) + 1.0f;
  return std::log1p(std::floor(p / floor_scale)) * attn_scale + 1.0f;
}
inline void attention_temperature(backend::reference, View<float, 2> q, View<const std::int64_t, 1> positions,
                                  float floor_scale, float attn_scale) {
  require(positions.extent(0) == q.extent(0), ErrorCode::kInvalidArgument,
          "attention_temperature: {} positions for {} rows", positions.extent(0), q.extent(0));
  for (index_t t = 0; t < q.extent(0); ++t) {
    const float f = attention_temperature_factor(positions[t], floor_scale, attn_scale);
    for (index_t i = 0; i < q.extent(1); ++i) q(t, i) *= f;
  }
}

// x = clamp(x, -limit, limit) element-wise, x [n, d] f32.
inline void clamp(backend::reference, View<float, 2> x, float limit) {
  for (index_t t = 0; t < x.extent(0); ++t) {
    for (index_t i = 0; i < x.extent(1); ++i) x(t, i) = std::clamp(x(t, i), -limit, limit);
  }
}

// y[t, :] += sigmoid(gate[t, 0]) · x[t, :]. y, x [n, d], gate [n, 1] (logits).
inline void sigmoid_gate_add(backend::reference, View<float, 2> y, View<const float, 2> gate, View<const float, 2> x) {
  detail::check_same_shape(View<const float, 2>(y), x, "sigmoid_gate_add", "y", "x");
  require(gate.extent(0) == y.extent(0) && gate.extent(1) == 1, ErrorCode::kInvalidArgument,
          "sigmoid_gate_add: gate [{}, {}] for {} rows", gate.extent(0), gate.extent(1), y.extent(0));
  for (index_t t = 0; t < y.extent(0); ++t) {
    const float g = detail::sigmoid_scalar(gate(t, 0));
    for (index_t i = 0; i < y.extent(1); ++i) y(t, i) += g * x(t, i);
  }
}

}  // namespace moe::kernels
