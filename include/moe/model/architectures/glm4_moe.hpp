// GLM-4-MoE (Glm4MoeForCausalLM): partial rotary (partial_rotary_factor, 0.5 by default), optional
// per-head q/k RMSNorm (use_qk_norm), q/k/v biases, DeepSeek-V3-style sigmoid noaux_tc router
// with e_score_correction_bias, shared experts, first_k_dense_replace dense layers.
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kGlm4Moe{
    .hf_class = "Glm4MoeForCausalLM",
    .family = Family::kGlm4Moe,
    .n_experts_key = "n_routed_experts",
    .expert_d_ff_key = "moe_intermediate_size",
    .scoring = layers::RouterScoring::kSigmoid,
    .grouped_routing = true,
    .group_score = layers::GroupScore::kTopTwo,
    .norm_topk_prob_default = true,
    .correction_bias = true,
    .qk_norm = QkNorm::kPerHead,
    .qk_norm_from_use_qk_norm = true,
    .o_proj_bias_follows = false,
    .shared_expert = SharedExpert::kPlain,
    .dense_layers = DenseLayers::kFirstK,
    .first_k_dense_replace_default = 1,
    .default_partial_rotary_factor = 0.5,
    .shared_expert_name = "shared_experts",
};

}  // namespace moe::model::architectures
