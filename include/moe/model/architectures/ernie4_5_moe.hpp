// ERNIE-4.5-MoE (Ernie4_5_MoeForCausalLM): interleaved-pair rope, use_bias on the attention and
// MLP projections, a softmax router whose moe_statics correction bias steers the choice only
// (weights renormalised), shared experts, MoE layers by start/end index and interval, tied head.
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kErnie45Moe{
    .hf_class = "Ernie4_5_MoeForCausalLM",
    .family = Family::kErnie45Moe,
    .n_experts_key = "moe_num_experts",
    .expert_d_ff_key = "moe_intermediate_size",
    .top_k_key = "moe_k",
    .topk_renormalize = TopkRenormalize::kAlways,
    .correction_bias = true,
    .correction_bias_name = "moe_statics.e_score_correction_bias",
    .correction_bias_name_alt = "gate.moe_statics.e_score_correction_bias",
    .attention_bias_key = "use_bias",
    .reads_mlp_bias = true,
    .mlp_bias_key = "use_bias",
    .tie_word_embeddings_default = true,
    .lm_head_bias_follows_mlp_bias = true,
    .shared_expert = SharedExpert::kPlain,
    .n_shared_experts_default = 2,
    .n_shared_experts_key = "moe_num_shared_experts",
    .dense_layers = DenseLayers::kInterval,
    .rope_pairing = kernels::RopePairing::interleaved,
    .default_rope_theta = 5e5,
    .shared_expert_name = "shared_experts",
};

}  // namespace moe::model::architectures
