// MoeBlock: router + routed experts (+ shared expert) for a batch of tokens. Tokens are bucketed
// by expert so each chosen expert runs one GEMM over all of its tokens; outputs are combined in
// expert order, as transformers' index_add loop does.
#pragma once

#include "moe/core/tensor.hpp"
#include "moe/kernels/kernels.hpp"
#include "moe/layers/experts.hpp"
#include "moe/layers/linear.hpp"
#include "moe/layers/router.hpp"

#include <cmath>
#include <cstdint>
#include <span>

namespace moe::layers {

enum class SharedExpertGate : std::uint8_t { kNone, kSigmoid };

struct MoeWeights {
  WeightMatrix router;              // [n_experts, d_model]
  WeightVector router_bias;         // [n_experts] (GPT-OSS) or empty
  WeightVector correction_bias;     // [n_experts] e_score_correction_bias or empty
  ExpertBank experts;
  MlpWeights shared;                // shared expert; gate.empty() when absent
  WeightMatrix shared_gate;         // [1, d_model] Qwen2-MoE shared_expert_gate, or empty
};

// Scratch of a MoE block for up to n tokens (all f32 / i32 buffers from the Workspace).
struct MoeScratch {
  View<float, 2> logits;            // [n, n_experts]
  View<std::int32_t, 2> ids;        // [n, top_k]
  View<float, 2> weights;           // [n, top_k]
  std::span<float> router_scratch;  // router_scratch_floats
  std::span<float> correction;      // [n_experts] f32 copy of the correction bias
  std::span<std::int32_t> counts;   // [n_experts + 1]
  std::span<std::int32_t> slot_token;   // [n · top_k] token of each bucketed slot
  std::span<float> slot_weight;         // [n · top_k]
  View<float, 2> xs;                // [n · top_k, d_model] gathered inputs
  View<float, 2> ys;                // [n · top_k, d_model] expert outputs
  std::span<float> ffn;             // expert / MLP scratch
  View<float, 2> shared_out;        // [n, d_model]
};

// y = MoE(x): x [n, d_model] -> y [n, d_model] (overwritten). usage: [n_experts] counters
// incremented by the tokens routed to each expert (may be empty). Not thread-safe per scratch.
template <class B>
void moe_forward(B backend, const RouterConfig& rc, const MoeWeights& w, View<const float, 2> x, MoeScratch& s,
                 std::span<std::uint64_t> usage, View<float, 2> y) {
  const index_t n = x.extent(0), d = x.extent(1), k = rc.top_k, n_exp = rc.n_experts;
  View<float, 2> logits = s.logits.slice(0, n);
  linear(backend, x, w.router, logits);
  add_bias(logits, w.router_bias);
  std::span<const float> correction;
  if (!w.correction_bias.empty()) {
    for (index_t e = 0; e < n_exp; ++e) s.correction[e] = w.correction_bias.at(e);
    correction = s.correction.first(n_exp);
  }
  const RouterOutput r =
      route_tokens(rc, View<const float, 2>(logits), correction, s.router_scratch, s.ids.slice(0, n), s.weights.slice(0, n));

  // Bucket (token, slot) pairs by expert: counting sort, stable in token order.
  auto& counts = s.counts;
  for (index_t e = 0; e <= n_exp; ++e) counts[e] = 0;
  for (index_t t = 0; t < n; ++t) {
    for (index_t j = 0; j < k; ++j) ++counts[static_cast<index_t>(r.expert_ids(t, j)) + 1];
  }
  for (index_t e = 0; e < n_exp; ++e) counts[e + 1] += counts[e];  // counts[e] = first slot of e
  for (index_t t = 0; t < n; ++t) {
    for (index_t j = 0; j < k; ++j) {
      const auto e = static_cast<index_t>(r.expert_ids(t, j));
      const auto slot = static_cast<index_t>(counts[e]++);
      s.slot_token[slot] = static_cast<std::int32_t>(t);
      s.slot_weight[slot] = r.weights(t, j);
      std::copy_n(&x(t, 0), d, &s.xs(slot, 0));
    }
  }
  // counts[e] is now the end of e's bucket; its start is counts[e-1] (0 for e = 0).
  for (index_t t = 0; t < n; ++t) std::fill_n(&y(t, 0), d, 0.0f);
  index_t begin = 0;
  for (index_t e = 0; e < n_exp; ++e) {
    const auto end = static_cast<index_t>(counts[e]);
    if (end == begin) continue;
    if (!usage.empty()) usage[e] += end - begin;
    View<const float, 2> xe = View<const float, 2>(s.xs).slice(begin, end);
    View<float, 2> ye = s.ys.slice(begin, end);
    expert_forward(backend, w.experts, e, xe, s.ffn, ye);
    for (index_t slot = begin; slot < end; ++slot) {
      float* dst = &y(static_cast<index_t>(s.slot_token[slot]), 0);
      const float* src = &s.ys(slot, 0);
      const float wt = s.slot_weight[slot];
      for (index_t i = 0; i < d; ++i) dst[i] += src[i] * wt;
    }
    begin = end;
  }

  if (!w.shared.gate.empty()) {
    View<float, 2> so = s.shared_out.slice(0, n);
    mlp_forward(backend, w.shared, x, s.ffn, so);
    if (!w.shared_gate.empty()) {
      // Qwen2-MoE: the shared expert's output is scaled by sigmoid(shared_expert_gate · x).
      View<float, 2> g(s.logits.data(), {n, 1}, {1, 1});
      linear(backend, x, w.shared_gate, g);
      for (index_t t = 0; t < n; ++t) {
        const float gate = 1.0f / (1.0f + std::exp(-g(t, 0)));
        for (index_t i = 0; i < d; ++i) y(t, i) += gate * so(t, i);
      }
    } else {
      kernels::add(backend, y, View<const float, 2>(so));
    }
  }
}

}  // namespace moe::layers
