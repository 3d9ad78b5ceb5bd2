// Llama 4 text (Llama4ForCausalLM): top-k of the raw router logits with sigmoid weights that scale
// the experts' INPUT, an always-on shared expert, MoE every interleave_moe_layer_step layers (dense
// MLPs of intermediate_size_mlp elsewhere), chunked local attention with interleaved (complex)
// rope and a weightless q/k RMS normalisation after it, NoPE global layers with attention
// temperature tuning, input-major fused expert banks.
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kLlama4{
    .hf_class = "Llama4ForCausalLM",
    .family = Family::kLlama4,
    .n_experts_key = "num_local_experts",
    .expert_d_ff_key = "intermediate_size",
    // sigmoid is monotone: the top-k of sigmoid scores is the top-k of the logits (Llama4Router).
    .scoring = layers::RouterScoring::kSigmoid,
    .topk_renormalize = TopkRenormalize::kNever,
    .qk_norm = QkNorm::kUnweightedAfterRope,
    .qk_norm_from_use_qk_norm = true,
    .use_qk_norm_default = true,
    .chunked_attention = true,
    .nope_layers = true,
    .attn_temperature_tuning = true,
    .router_weights_scale_inputs = true,
    .shared_expert = SharedExpert::kPlain,
    .n_shared_experts_key = "",
    .shared_expert_d_ff_key = "intermediate_size",
    .dense_layers = DenseLayers::kMoeLayersList,
    .rope_pairing = kernels::RopePairing::interleaved,
    .default_rope_theta = 500000.0,
    .moe_prefix = "feed_forward",
    .router_name = "router",
    .input_major_experts = true,
    .dense_mlp_prefix = "feed_forward",
    .dense_d_ff_key = "intermediate_size_mlp",
    .shared_expert_name = "shared_expert",
};

}  // namespace moe::model::architectures
