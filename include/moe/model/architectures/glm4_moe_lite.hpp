// GLM-4-MoE-Lite (Glm4MoeLiteForCausalLM, GLM-4.7-Flash): DeepSeek-V3's multi-head latent attention
// and noaux_tc sigmoid router with GLM's defaults; dense or MoE per layer from mlp_layer_types.
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kGlm4MoeLite{
    .hf_class = "Glm4MoeLiteForCausalLM",
    .family = Family::kGlm4MoeLite,
    .attention = AttentionKind::kMla,
    .n_experts_key = "n_routed_experts",
    .expert_d_ff_key = "moe_intermediate_size",
    .scoring = layers::RouterScoring::kSigmoid,
    .grouped_routing = true,
    .group_score = layers::GroupScore::kTopTwo,
    .norm_topk_prob_default = true,
    .routed_scaling_factor_default = 1.8,
    .correction_bias = true,
    .shared_expert = SharedExpert::kPlain,
    .dense_layers = DenseLayers::kMlpLayerTypes,
    .first_k_dense_replace_default = 1,
    .rope_pairing = kernels::RopePairing::interleaved,
    .rope_interleave_key = true,
    .mscale_softmax_correction = true,
    .shared_expert_name = "shared_experts",
};

}  // namespace moe::model::architectures
