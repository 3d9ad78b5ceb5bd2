// Qwen3.5-MoE, text model (Qwen3_5MoeForCausalLM): Qwen3-Next's layer mix (Gated DeltaNet and gated
// full attention, zero-centred RMSNorms, sigmoid-gated shared expert) with the DeltaNet input
// projections stored separately (in_proj_qkv / z / b / a), top-k weights always renormalised and
// every layer MoE. Its rope dict's mrope_section / mrope_interleaved change nothing for text: all
// three position streams are the token position, so the rotation is the plain partial rope.
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kQwen35Moe{
    .hf_class = "Qwen3_5MoeForCausalLM",
    .family = Family::kQwen35Moe,
    .n_experts_key = "num_experts",
    .n_experts_key_alt = "num_local_experts",
    .expert_d_ff_key = "moe_intermediate_size",
    .topk_renormalize = TopkRenormalize::kAlways,
    .qk_norm = QkNorm::kPerHead,
    .shared_expert = SharedExpert::kSigmoidGated,
    .default_partial_rotary_factor = 0.25,
    .shared_expert_name = "shared_expert",
    .delta_net = DeltaNetLayout::kSeparate,
    .zero_centered_norms = true,
    .attention_output_gate = true,
};

}  // namespace moe::model::architectures
