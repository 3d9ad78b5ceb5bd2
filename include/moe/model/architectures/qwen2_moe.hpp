// Qwen2-MoE (Qwen2MoeForCausalLM): q/k/v biases, softmax-top-k router (norm_topk_prob), a
// sigmoid-gated shared expert, dense layers from mlp_only_layers / decoder_sparse_step.
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kQwen2Moe{
    .hf_class = "Qwen2MoeForCausalLM",
    .family = Family::kQwen2Moe,
    .n_experts_key = "num_experts",
    .n_experts_key_alt = "num_local_experts",
    .expert_d_ff_key = "moe_intermediate_size",
    .attention_bias_key = "qkv_bias",
    .attention_bias_default = true,
    .o_proj_bias_follows = false,
    .shared_expert = SharedExpert::kSigmoidGated,
    .dense_layers = DenseLayers::kSparseStep,
    .sliding_window = SlidingWindow::kLayerTypes,
    .layer_types_need_use_sliding_window = true,
    .max_window_layers_default = 28,
    .shared_expert_name = "shared_expert",
};

}  // namespace moe::model::architectures
