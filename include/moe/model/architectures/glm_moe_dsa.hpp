// GLM-5 (GlmMoeDsaForCausalLM): GLM-4-MoE-Lite's MLA and noaux_tc sigmoid router (dense or MoE per
// layer from mlp_layer_types) with DeepSeek sparse attention; the indexer uses interleaved rope and
// indexer_types "shared" layers reuse the previous layer's top-k selection (no indexer weights).
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kGlmMoeDsa{
    .hf_class = "GlmMoeDsaForCausalLM",
    .family = Family::kGlmMoeDsa,
    .attention = AttentionKind::kMla,
    .n_experts_key = "n_routed_experts",
    .expert_d_ff_key = "moe_intermediate_size",
    .scoring = layers::RouterScoring::kSigmoid,
    .grouped_routing = true,
    .group_score = layers::GroupScore::kTopTwo,
    .norm_topk_prob_default = true,
    .routed_scaling_factor_default = 2.5,
    .correction_bias = true,
    .shared_expert = SharedExpert::kPlain,
    .dense_layers = DenseLayers::kMlpLayerTypes,
    .first_k_dense_replace_default = 3,
    .rope_pairing = kernels::RopePairing::interleaved,
    .mscale_softmax_correction = true,
    .shared_expert_name = "shared_experts",
    .sparse_attention = true,
    .index_n_heads_default = 32,
    .index_rope_pairing = kernels::RopePairing::interleaved,
    .indexer_types_key = true,
};

}  // namespace moe::model::architectures
