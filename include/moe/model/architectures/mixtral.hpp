// Mixtral (MixtralForCausalLM): GQA attention, softmax-top-k router whose chosen weights are always
// renormalised, SwiGLU experts named w1/w3/w2 (hub) or gate_up_proj/down_proj (transformers 5).
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kMixtral{
    .hf_class = "MixtralForCausalLM",
    .family = Family::kMixtral,
    .n_experts_key = "num_local_experts",
    .expert_d_ff_key = "intermediate_size",
    .topk_renormalize = TopkRenormalize::kAlways,
    .attention_bias_key = "",
    .sliding_window = SlidingWindow::kAllLayers,
    .default_rope_theta = 1e6,
    .moe_prefix = "mlp",
    .moe_prefix_alt = "block_sparse_moe",
    .expert_gate_alt = "w1",
    .expert_up_alt = "w3",
    .expert_down_alt = "w2",
};

}  // namespace moe::model::architectures
