// The table of supported architectures, looked up by config.json's "architectures" entry.
#pragma once

#include "moe/model/architectures/deepseek_v2.hpp"
#include "moe/model/architectures/deepseek_v3.hpp"
#include "moe/model/architectures/glm4_moe.hpp"
#include "moe/model/architectures/gpt_oss.hpp"
#include "moe/model/architectures/mixtral.hpp"
#include "moe/model/architectures/olmoe.hpp"
#include "moe/model/architectures/qwen2_moe.hpp"
#include "moe/model/architectures/qwen3_moe.hpp"

#include <array>
#include <string_view>

namespace moe::model {

inline constexpr std::array<const ArchitectureSpec*, 8> kArchitectures{
    &architectures::kMixtral,    &architectures::kQwen2Moe,   &architectures::kQwen3Moe, &architectures::kOlmoe,
    &architectures::kDeepseekV2, &architectures::kDeepseekV3, &architectures::kGptOss,   &architectures::kGlm4Moe,
};

// The spec whose hf_class is `name`, or nullptr.
inline const ArchitectureSpec* find_architecture(std::string_view name) noexcept {
  for (const auto* a : kArchitectures) {
    if (a->hf_class == name) return a;
  }
  return nullptr;
}

}  // namespace moe::model
