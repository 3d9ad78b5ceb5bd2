// OLMoE (OlmoeForCausalLM): RMSNorm over the whole q and k projections before the head split,
// optional clip_qkv, softmax-top-k router (norm_topk_prob, off by default).
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kOlmoe{
    .hf_class = "OlmoeForCausalLM",
    .family = Family::kOlmoe,
    .n_experts_key = "num_experts",
    .n_experts_key_alt = "num_local_experts",
    .expert_d_ff_key = "intermediate_size",
    .qk_norm = QkNorm::kWholeProjection,
    .clip_qkv = true,
};

}  // namespace moe::model::architectures
