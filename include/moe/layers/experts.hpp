// SwiGLU feed-forward networks: a dense MLP (also the shared expert) and a bank of routed experts
// in any of the three storage layouts checkpoints use (per-expert gate/up/down matrices, the
// transformers-5 fused gate_up_proj bank, GPT-OSS's input-major bank with interleaved gate/up
// columns and biases).
#pragma once

#include "moe/core/tensor.hpp"
#include "moe/kernels/kernels.hpp"
#include "moe/layers/linear.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace moe::layers {

// down(silu(gate·x) * up·x), weights [d_ff, d_model], [d_ff, d_model], [d_model, d_ff]; optional
// biases (DeepSeek-V2 mlp_bias).
struct MlpWeights {
  WeightMatrix gate;  // [d_ff, d_model]
  WeightMatrix up;    // [d_ff, d_model]
  WeightMatrix down;  // [d_model, d_ff]
  WeightVector gate_bias, up_bias, down_bias;
  index_t d_ff() const noexcept { return gate.rows; }
};

// x [n, d_model] -> y [n, d_model]. scratch: >= 2·n·d_ff floats. y must not alias x.
template <class B>
void mlp_forward(B backend, const MlpWeights& w, View<const float, 2> x, std::span<float> scratch, View<float, 2> y) {
  const index_t n = x.extent(0), f = w.d_ff();
  View<float, 2> gate(scratch.data(), {n, f});
  View<float, 2> up(scratch.data() + n * f, {n, f});
  linear(backend, x, w.gate, gate);
  add_bias(gate, w.gate_bias);
  linear(backend, x, w.up, up);
  add_bias(up, w.up_bias);
  kernels::swiglu(backend, View<const float, 2>(gate), View<const float, 2>(up), gate);
  linear(backend, View<const float, 2>(gate), w.down, y);
  add_bias(y, w.down_bias);
}

enum class ExpertLayout : std::uint8_t {
  kSeparate,        // experts.{e}.gate_proj / up_proj / down_proj (or w1 / w3 / w2)
  kFusedGateUp,     // experts.gate_up_proj [E, 2·d_ff, d_model] (gate rows first), down_proj [E, d_model, d_ff]
  kInputMajorGlu    // GPT-OSS: gate_up_proj [E, d_model, 2·d_ff] with gate/up in even/odd columns,
                    // gate_up_proj_bias [E, 2·d_ff], down_proj [E, d_ff, d_model], down_proj_bias [E, d_model]
};

// The routed experts of one MoE layer. Per-expert matrices are views into the checkpoint.
struct ExpertBank {
  ExpertLayout layout = ExpertLayout::kSeparate;
  index_t n_experts = 0;
  index_t d_model = 0;
  index_t d_ff = 0;
  bool clamped = false;            // GPT-OSS clamped SwiGLU
  float alpha = 1.702f;
  float limit = 7.0f;
  std::vector<WeightMatrix> gate;     // kSeparate: [d_ff, d_model] each
  std::vector<WeightMatrix> up;       // kSeparate: [d_ff, d_model] each
  std::vector<WeightMatrix> gate_up;  // kFusedGateUp: [2·d_ff, d_model]; kInputMajorGlu: [d_model, 2·d_ff]
  std::vector<WeightMatrix> down;     // [d_model, d_ff], or [d_ff, d_model] input-major
  std::vector<WeightVector> gate_up_bias;  // kInputMajorGlu: [2·d_ff]
  std::vector<WeightVector> down_bias;     // kInputMajorGlu: [d_model]
};

// Floats of scratch expert_forward needs for n tokens.
inline index_t expert_scratch_floats(const ExpertBank& bank, index_t n) noexcept { return 3 * n * bank.d_ff; }

// Runs expert e on x [n, d_model] -> y [n, d_model] (unweighted). y must not alias x.
// scratch: expert_scratch_floats(bank, n) floats. Hot path: no allocation.
template <class B>
void expert_forward(B backend, const ExpertBank& bank, index_t e, View<const float, 2> x, std::span<float> scratch,
                    View<float, 2> y) {
  const index_t n = x.extent(0), f = bank.d_ff;
  View<float, 2> gu(scratch.data(), {n, 2 * f});
  View<float, 2> act(scratch.data() + 2 * n * f, {n, f});
  switch (bank.layout) {
    case ExpertLayout::kSeparate: {
      View<float, 2> g(gu.data(), {n, f}, {2 * f, 1});
      View<float, 2> u(gu.data() + f, {n, f}, {2 * f, 1});
      linear(backend, x, bank.gate[e], g);
      linear(backend, x, bank.up[e], u);
      kernels::swiglu(backend, View<const float, 2>(g), View<const float, 2>(u), act);
      linear(backend, View<const float, 2>(act), bank.down[e], y);
      break;
    }
    case ExpertLayout::kFusedGateUp: {
      linear(backend, x, bank.gate_up[e], gu);
      View<const float, 2> g(gu.data(), {n, f}, {2 * f, 1});
      View<const float, 2> u(gu.data() + f, {n, f}, {2 * f, 1});
      kernels::swiglu(backend, g, u, act);
      linear(backend, View<const float, 2>(act), bank.down[e], y);
      break;
    }
    case ExpertLayout::kInputMajorGlu: {
      linear_in_out(backend, x, bank.gate_up[e], gu);
      add_bias(gu, bank.gate_up_bias[e]);
      // GPT-OSS clamped SwiGLU: gate = min(gate, limit), up = clamp(up, ±limit),
      // out = (up + 1) · gate · σ(alpha · gate).
      for (index_t t = 0; t < n; ++t) {
        const float* row = &gu(t, 0);
        float* out = &act(t, 0);
        for (index_t i = 0; i < f; ++i) {
          float g = row[2 * i], u = row[2 * i + 1];
          if (bank.clamped) {
            g = std::min(g, bank.limit);
            u = std::clamp(u, -bank.limit, bank.limit);
          }
          const float glu = g / (1.0f + std::exp(-g * bank.alpha));
          out[i] = (u + 1.0f) * glu;
        }
      }
      linear_in_out(backend, View<const float, 2>(act), bank.down[e], y);
      add_bias(y, bank.down_bias[e]);
      break;
    }
  }
}

}  // namespace moe::layers
