// DeepSeek-V3.2 (DeepseekV32ForCausalLM): DeepSeek-V3 (interleaved-rope MLA with q_lora_rank,
// noaux_tc sigmoid routing, shared experts, dense / MoE per mlp_layer_types) with DeepSeek sparse attention
// on every layer: a lightning indexer (index_n_heads, index_head_dim, half-split rope) picks each
// query's top index_topk positions (layers/mla.hpp, kernels/reference/dsa.hpp).
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kDeepseekV32{
    .hf_class = "DeepseekV32ForCausalLM",
    .family = Family::kDeepseekV32,
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
    .dense_layers = DenseLayers::kMlpLayerTypes,
    .first_k_dense_replace_default = 3,
    .rope_pairing = kernels::RopePairing::interleaved,
    .mscale_softmax_correction = true,
    .shared_expert_name = "shared_experts",
    .sparse_attention = true,
    .index_rope_pairing = kernels::RopePairing::half_split,
};

}  // namespace moe::model::architectures
