// Qwen3-MoE (Qwen3MoeForCausalLM): per-head q/k RMSNorm before rope, explicit head_dim,
// softmax-top-k router (norm_topk_prob), dense layers from mlp_only_layers / decoder_sparse_step.
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kQwen3Moe{
    .hf_class = "Qwen3MoeForCausalLM",
    .family = Family::kQwen3Moe,
    .n_experts_key = "num_experts",
    .n_experts_key_alt = "num_local_experts",
    .expert_d_ff_key = "moe_intermediate_size",
    .qk_norm = QkNorm::kPerHead,
    .dense_layers = DenseLayers::kSparseStep,
    .sliding_window = SlidingWindow::kAllLayersIfEnabled,
};

}  // namespace moe::model::architectures
