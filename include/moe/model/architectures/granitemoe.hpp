// Granite-MoE (GraniteMoeForCausalLM): Mixtral-like blocks with muP multipliers (embedding,
// attention softmax scale, residual branches, logits), softmax over the top-k router logits,
// fused expert banks (hub: block_sparse_moe.input_linear / output_linear, router.layer).
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kGraniteMoe{
    .hf_class = "GraniteMoeForCausalLM",
    .family = Family::kGraniteMoe,
    .n_experts_key = "num_local_experts",
    .expert_d_ff_key = "intermediate_size",
    .scoring = layers::RouterScoring::kTopkSoftmax,
    .topk_renormalize = TopkRenormalize::kAlways,
    .mup_multipliers = true,
    .moe_prefix = "block_sparse_moe",
    .router_name = "router.layer",
    .router_name_alt = "router",
    .fused_gate_up_alt = "input_linear.weight",
    .fused_down_alt = "output_linear.weight",
};

}  // namespace moe::model::architectures
