// Qwen3-Next (Qwen3NextForCausalLM): Gated DeltaNet linear-attention layers mixed with gated full
// attention (layer_types / full_attention_interval), the attention's q_proj doubled with a sigmoid
// output gate, per-head QK-norm, partial rotary; zero-centred (1 + w) RMSNorms; softmax-top-k
// routing (norm_topk_prob) with a sigmoid-gated shared expert; dense layers from mlp_only_layers /
// decoder_sparse_step. The DeltaNet input projections are grouped per key head (in_proj_qkvz, ba).
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kQwen3Next{
    .hf_class = "Qwen3NextForCausalLM",
    .family = Family::kQwen3Next,
    .n_experts_key = "num_experts",
    .n_experts_key_alt = "num_local_experts",
    .expert_d_ff_key = "moe_intermediate_size",
    .norm_topk_prob_default = true,
    .qk_norm = QkNorm::kPerHead,
    .shared_expert = SharedExpert::kSigmoidGated,
    .dense_layers = DenseLayers::kSparseStep,
    .default_partial_rotary_factor = 0.25,
    .shared_expert_name = "shared_expert",
    .delta_net = DeltaNetLayout::kGroupedQkvz,
    .zero_centered_norms = true,
    .attention_output_gate = true,
};

}  // namespace moe::model::architectures
