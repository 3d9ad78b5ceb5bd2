// DeepSeek-V2 (DeepseekV2ForCausalLM): multi-head latent attention with interleaved rope pairs
// (transformers applies it as complex multiplication), softmax router with greedy or
// group_limited_greedy (group score = max) selection, routed_scaling_factor, shared experts,
// first_k_dense_replace dense layers, and (transformers 5.17, as V3) the YaRN softmax-scale
// correction mscale(factor, mscale_all_dim)².
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kDeepseekV2{
    .hf_class = "DeepseekV2ForCausalLM",
    .family = Family::kDeepseekV2,
    .attention = AttentionKind::kMla,
    .n_experts_key = "n_routed_experts",
    .expert_d_ff_key = "moe_intermediate_size",
    .grouped_routing = true,
    .group_score = layers::GroupScore::kMax,
    .dropped_groups_to_minus_inf = false,
    .topk_method_default = "greedy",
    .group_limited_topk_method = "group_limited_greedy",
    .topk_renormalize = TopkRenormalize::kNever,
    .reads_mlp_bias = true,
    .shared_expert = SharedExpert::kPlain,
    .n_shared_experts_default = 0,
    .dense_layers = DenseLayers::kFirstK,
    .rope_pairing = kernels::RopePairing::interleaved,
    .mscale_softmax_correction = true,
    .shared_expert_name = "shared_experts",
};

}  // namespace moe::model::architectures
