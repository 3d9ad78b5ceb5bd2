// MiniMax-M2 (MiniMaxM2ForCausalLM): GQA with q/k RMSNorm over the whole projection and partial
// rotary, a sigmoid router whose e_score_correction_bias (beside the gate) steers the choice only,
// chosen weights always renormalised; hub checkpoints name experts w1/w3/w2 under block_sparse_moe.
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kMiniMaxM2{
    .hf_class = "MiniMaxM2ForCausalLM",
    .family = Family::kMiniMaxM2,
    .n_experts_key = "num_local_experts",
    .expert_d_ff_key = "intermediate_size",
    .scoring = layers::RouterScoring::kSigmoid,
    .topk_renormalize = TopkRenormalize::kAlways,
    .correction_bias = true,
    .correction_bias_name = "e_score_correction_bias",
    .qk_norm = QkNorm::kWholeProjection,
    .attention_bias_key = "",
    .default_rope_theta = 5e6,
    .moe_prefix = "mlp",
    .moe_prefix_alt = "block_sparse_moe",
    .expert_gate_alt = "w1",
    .expert_up_alt = "w3",
    .expert_down_alt = "w2",
};

}  // namespace moe::model::architectures
