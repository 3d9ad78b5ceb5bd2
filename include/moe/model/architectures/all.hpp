// The table of supported architectures, looked up by config.json's "architectures" entry.
#pragma once

#include "moe/model/architectures/deepseek_v2.hpp"
#include "moe/model/architectures/deepseek_v3.hpp"
#include "moe/model/architectures/deepseek_v32.hpp"
#include "moe/model/architectures/dots1.hpp"
#include "moe/model/architectures/ernie4_5_moe.hpp"
#include "moe/model/architectures/glm4_moe.hpp"
#include "moe/model/architectures/glm4_moe_lite.hpp"
#include "moe/model/architectures/glm_moe_dsa.hpp"
#include "moe/model/architectures/gpt_oss.hpp"
#include "moe/model/architectures/granitemoe.hpp"
#include "moe/model/architectures/hunyuan_v1_moe.hpp"
#include "moe/model/architectures/llama4.hpp"
#include "moe/model/architectures/minimax_m2.hpp"
#include "moe/model/architectures/mixtral.hpp"
#include "moe/model/architectures/olmoe.hpp"
#include "moe/model/architectures/qwen2_moe.hpp"
#include "moe/model/architectures/qwen3_5_moe.hpp"
#include "moe/model/architectures/qwen3_moe.hpp"
#include "moe/model/architectures/qwen3_next.hpp"

#include <array>
#include <string_view>

namespace moe::model {

inline constexpr std::array kArchitectures{
    &architectures::kMixtral,      &architectures::kQwen2Moe,   &architectures::kQwen3Moe,
    &architectures::kOlmoe,        &architectures::kDeepseekV2, &architectures::kDeepseekV3,
    &architectures::kGptOss,       &architectures::kGlm4Moe,    &architectures::kGlm4MoeLite,
    &architectures::kDots1,        &architectures::kMiniMaxM2,  &architectures::kErnie45Moe,
    &architectures::kHunYuanMoeV1, &architectures::kGraniteMoe, &architectures::kQwen3Next,
    &architectures::kQwen35Moe,    &architectures::kLlama4,     &architectures::kDeepseekV32,
    &architectures::kGlmMoeDsa,
};

// The spec whose hf_class is `name`, or nullptr.
inline const ArchitectureSpec* find_architecture(std::string_view name) noexcept {
  for (const auto* a : kArchitectures) {
    if (a->hf_class == name) return a;
  }
  return nullptr;
}

}  // namespace moe::model
