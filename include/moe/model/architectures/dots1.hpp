// dots.llm1 (Dots1ForCausalLM): Qwen3-style attention (per-head q/k RMSNorm) with DeepSeek-V3's
// noaux_tc sigmoid router and a shared expert; layers at or above max_window_layers slide when
// sliding_window is set (from layer_types when config.json lists them).
#pragma once

#include "moe/model/architecture.hpp"

namespace moe::model::architectures {

inline constexpr ArchitectureSpec kDots1{
    .hf_class = "Dots1ForCausalLM",
    .family = Family::kDots1,
    .n_experts_key = "n_routed_experts",
    .n_experts_key_alt = "num_local_experts",
    .expert_d_ff_key = "moe_intermediate_size",
    .scoring = layers::RouterScoring::kSigmoid,
    .grouped_routing = true,
    .group_score = layers::GroupScore::kTopTwo,
    .correction_bias = true,
    .qk_norm = QkNorm::kPerHead,
    .shared_expert = SharedExpert::kPlain,
    .dense_layers = DenseLayers::kFirstK,
    .sliding_window = SlidingWindow::kLayerTypes,
    .sliding_window_default = 4096,
    .sliding_from_max_window_layers = true,
    .shared_expert_name = "shared_experts",
};

}  // namespace moe::model::architectures
