// GPT-OSS (GptOssForCausalLM): biased q/k/v/o, per-head attention sinks, alternating
// sliding-window / full layers (layer_types), router with bias whose top-k logits are
// softmaxed, input-major expert banks with interleaved gate/up columns and biases, clamped SwiGLU.
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kGptOss{
    .hf_class = "GptOssForCausalLM",
    .family = Family::kGptOss,
    .n_experts_key = "num_local_experts",
    .n_experts_key_alt = "num_experts",
    .expert_d_ff_key = "intermediate_size",
    .scoring = layers::RouterScoring::kTopkSoftmax,
    .router_bias = true,
    .attention_bias_default = true,
    .sliding_window = SlidingWindow::kLayerTypes,
    .sliding_window_default = 128,
    .attention_sinks = true,
    .activation = ExpertActivation::kClampedSwiglu,
    .default_rope_theta = 150000.0,
    .default_rope_parameters = R"({"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                                   "truncate": false, "original_max_position_embeddings": 4096})",
    .router_name = "router",
};

}  // namespace moe::model::architectures
