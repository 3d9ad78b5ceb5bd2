// Hunyuan-MoE (HunYuanMoEV1ForCausalLM, Hunyuan-A13B): per-head q/k RMSNorm AFTER rope
// (query_layernorm / key_layernorm), a softmax-top-k router (mlp.gate.wg) with renormalised
// weights, an always-on shared MLP as wide as the experts, NTK-alpha rope.
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kHunYuanMoeV1{
    .hf_class = "HunYuanMoEV1ForCausalLM",
    .family = Family::kHunYuanMoeV1,
    .n_experts_key = "num_experts",
    .expert_d_ff_key = "intermediate_size",
    .top_k_key = "moe_topk",
    .topk_renormalize = TopkRenormalize::kAlways,
    .qk_norm = QkNorm::kPerHeadAfterRope,
    .q_norm_name = "query_layernorm",
    .k_norm_name = "key_layernorm",
    .shared_expert = SharedExpert::kPlain,
    .n_shared_experts_key = "",
    .shared_expert_d_ff_key = "intermediate_size",
    .rope_ntk_alpha = true,
    .router_name = "gate.wg",
    .shared_expert_name = "shared_mlp",
};

}  // namespace moe::model::architectures
