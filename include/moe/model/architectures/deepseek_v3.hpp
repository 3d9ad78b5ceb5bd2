// DeepSeek-V3 (DeepseekV3ForCausalLM): multi-head latent attention (rope_interleave picks the
// pairing), sigmoid router with e_score_correction_bias used only for selection, noaux_tc group
// routing (group score = sum of the top two), normalised weights · routed_scaling_factor, shared
// experts, first_k_dense_replace dense layers, YaRN softmax-scale correction mscale(mscale_all_dim)².
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kDeepseekV3{
    .hf_class = "DeepseekV3ForCausalLM",
    .family = Family::kDeepseekV3,
    .attention = AttentionKind::kMla,
    .n_experts_key = "n_routed_experts",
    .expert_d_ff_key = "moe_intermediate_size",
    .scoring = layers::RouterScoring::kSigmoid,
    .grouped_routing = true,
    .group_score = layers::GroupScore::kTopTwo,
    .topk_method_default = "noaux_tc",
    .norm_topk_prob_default = true,
    .routed_scaling_factor_default = 2.5,
    .correction_bias = true,
    .shared_expert = SharedExpert::kPlain,
    .dense_layers = DenseLayers::kFirstK,
    .rope_pairing = kernels::RopePairing::interleaved,
    .rope_interleave_key = true,
    .mscale_softmax_correction = true,
    .shared_expert_name = "shared_experts",
};

}  // namespace moe::model::architectures
