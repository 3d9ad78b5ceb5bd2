// MoeBlock: router + routed experts (+ shared expert) for a batch of tokens. Tokens are bucketed
// by expert so each chosen expert runs one GEMM over all of its tokens; outputs are combined in
// expert order, as transformers' index_add loop does. Every step is a kernel on the backend.
#pragma once

#include "moe/core/tensor.hpp"
#include "moe/kernels/kernels.hpp"
#include "moe/layers/experts.hpp"
#include "moe/layers/linear.hpp"
#include "moe/layers/lora_linear.hpp"
#include "moe/layers/router.hpp"

#include <cstdint>

namespace moe::layers {

enum class SharedExpertGate : std::uint8_t { kNone, kSigmoid };

template <class S = host_memory>
struct MoeWeights {
  WeightMatrix<S> router;           // [n_experts, d_model]
  WeightVector<S> router_bias;      // [n_experts] (GPT-OSS) or empty
  WeightVector<S> correction_bias;  // [n_experts] e_score_correction_bias or empty
  ExpertBank<S> experts;
  MlpWeights<S> shared;             // shared expert; gate.empty() when absent
  WeightMatrix<S> shared_gate;      // [1, d_model] Qwen2-MoE shared_expert_gate, or empty

  template <class F>
  auto transform(F&& f) const {
    MoeWeights<typename decltype(f("", router))::memory> r;
    r.router = f("gate.weight", router), r.router_bias = f("gate.bias", router_bias);
    r.correction_bias = f("gate.e_score_correction_bias", correction_bias);
    r.experts = experts.transform(f), r.shared = shared.transform(f);
    r.shared_gate = f("shared_expert_gate.weight", shared_gate);
    return r;
  }
};

// Scratch of a MoE block for up to n tokens (views into the Workspace, in the backend's memory).
template <class B>
struct MoeScratch {
  ViewOf<B, float, 2> logits;             // [n, n_experts]
  ViewOf<B, std::int32_t, 2> ids;         // [n, top_k]
  ViewOf<B, float, 2> weights;            // [n, top_k]
  ViewOf<B, float, 1> router_scratch;     // router_scratch_floats
  ViewOf<B, float, 1> correction;         // [n_experts] f32 copy of the correction bias
  ViewOf<B, std::int32_t, 1> offsets;     // [n_experts + 1]
  ViewOf<B, std::int32_t, 1> slot_token;  // [n · top_k] token of each bucketed slot
  ViewOf<B, float, 1> slot_weight;        // [n · top_k]
  ViewOf<B, float, 2> xs;                 // [n · top_k, d_model] gathered inputs
  ViewOf<B, float, 2> ys;                 // [n · top_k, d_model] expert outputs
  ViewOf<B, float, 1> ffn;                // expert / MLP scratch
  ViewOf<B, float, 2> shared_out;         // [n, d_model]
  // Elastic experts: [n] one budget per token (kernels/reference/expert_budget.hpp), or of extent
  // 0 for none (then the dispatch is exactly the model's).
  ViewOf<B, const kernels::ExpertBudgetRow, 1> budget;
  // Telemetry: [n_experts] sums of the routing weights each expert received (accumulated), or of
  // extent 0 to collect none.
  ViewOf<B, double, 1> weight_sum;
  // Telemetry: [n_experts²] counts of expert pairs chosen by one token (accumulated), or of
  // extent 0 to collect none.
  ViewOf<B, std::uint64_t, 1> coactivation = {};
  // Unmerged LoRA: [n · top_k] each bucketed slot's adapter (written when the pass has adapter rows).
  ViewOf<B, std::int32_t, 1> slot_adapter = {};
};

// y = MoE(x): x [n, d_model] -> y [n, d_model] (overwritten). usage: [n_experts] counters
// incremented by the tokens routed to each expert (may be of extent 0; with a budget, only the
// experts kept). Not thread-safe per scratch. Unmerged LoRA: lora's shared-expert, shared-gate and
// per-expert tables, rows each token's adapter (a routed slot carries its token's); both empty:
// the plain block. The router is never adapted.
template <class B>
void moe_forward(B backend, const RouterConfig& rc, const MoeWeights<typename B::memory>& w,
                 ViewOf<B, const float, 2> x, const MoeScratch<B>& s, ViewOf<B, std::uint64_t, 1> usage,
                 ViewOf<B, float, 2> y, const MoeLora<typename B::memory>& lora = {}, const LoraRows<B>& rows = {}) {
  using CV = ViewOf<B, const float, 2>;
  const index_t n = x.extent(0);
  linear(backend, x, w.router, s.logits);
  add_bias(backend, s.logits, w.router_bias);
  ViewOf<B, float, 1> correction = s.correction.slice(0, 0);
  if (!w.correction_bias.empty()) {
    widen(backend, w.correction_bias, s.correction);
    correction = s.correction;
  }
  if (s.budget.extent(0) != 0) {
    kernels::route(backend, rc, CV(s.logits), ViewOf<B, const float, 1>(correction), s.router_scratch, s.ids,
                   s.weights);
    kernels::limit_experts(backend, s.budget, s.ids, s.weights);
    kernels::bucket_by_expert(backend, ViewOf<B, const std::int32_t, 2>(s.ids), CV(s.weights), s.offsets,
                              s.slot_token, s.slot_weight, usage, s.weight_sum);
  } else {
    kernels::route_and_bucket(backend, rc, CV(s.logits), ViewOf<B, const float, 1>(correction), s.router_scratch,
                              s.ids, s.weights, s.offsets, s.slot_token, s.slot_weight, usage, s.weight_sum);
  }
  if (s.coactivation.extent(0) != 0) {
    kernels::accumulate_coactivation(backend, ViewOf<B, const std::int32_t, 2>(s.ids), s.coactivation, rc.n_experts);
  }
  kernels::gather_rows(backend, x, ViewOf<B, const std::int32_t, 1>(s.slot_token), s.xs);
  if (rc.weights_scale_inputs) {
    // Llama 4: expert_e(w · x), summed with weight 1 (SwiGLU without biases is not homogeneous, so
    // this differs from w · expert_e(x)).
    kernels::scale_rows(backend, s.xs, ViewOf<B, const float, 1>(s.slot_weight));
    kernels::fill(backend, s.slot_weight, 1.0f);
  }
  if constexpr (backend::is_host_backend_v<B>) {
    if (rows.active() && !lora.experts.empty()) {
      kernels::gather_ids(backend, rows.row_adapter, ViewOf<B, const std::int32_t, 1>(s.slot_token), s.slot_adapter);
      const LoraRows<B> slot_rows{ViewOf<B, const std::int32_t, 1>(s.slot_adapter), rows.scratch};
      experts_forward(backend, w.experts, ViewOf<B, const std::int32_t, 1>(s.offsets), CV(s.xs), s.ffn, s.ys,
                      lora.experts, slot_rows);
    } else {
      experts_forward(backend, w.experts, ViewOf<B, const std::int32_t, 1>(s.offsets), CV(s.xs), s.ffn, s.ys);
    }
  } else {
    // Device backends run no routed-expert adapters (BasicModel refuses unmerged adapters there).
    // No bucket holds more slots than there are tokens (a token's choices are distinct experts).
    experts_forward(backend, w.experts, ViewOf<B, const std::int32_t, 1>(s.offsets), CV(s.xs), s.ffn, s.ys, n);
  }
  kernels::combine_experts(backend, CV(s.ys), ViewOf<B, const std::int32_t, 1>(s.slot_token),
                           ViewOf<B, const float, 1>(s.slot_weight), y);

  if (!w.shared.gate.empty()) {
    mlp_forward(backend, w.shared, x, s.ffn, s.shared_out, lora.shared, rows);
    if (!w.shared_gate.empty()) {
      // Qwen2-MoE: the shared expert's output is scaled by sigmoid(shared_expert_gate · x).
      ViewOf<B, float, 2> g(s.logits.data(), {n, 1}, {1, 1});
      linear(backend, x, w.shared_gate, g);
      lora_update(backend, x, lora.shared_gate, rows, g);
      kernels::sigmoid_gate_add(backend, y, CV(g), CV(s.shared_out));
    } else {
      kernels::add(backend, y, CV(s.shared_out));
    }
  }
}

}  // namespace moe::layers
