// ModelLora<Space>: the unmerged LoRA adapters resident on one model. Per adapted weight, a table
// with one factor reference per adapter (layers::LoraWeight, built by model/lora.hpp's
// make_lora_tables), laid out like the weights (per layer: attention, dense MLP, MoE shared expert,
// shared gate and routed experts; the LM head). An adapter is picked per sequence by its index in
// `names` (BasicSequenceChunk::adapter); -1 is the base model.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/layers/lora_linear.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace moe::model {

template <class Space = host_memory>
struct LayerLora {
  layers::AttentionLora<Space> attn;
  layers::MlpLora<Space> mlp;  // dense layers
  layers::MoeLora<Space> moe;  // MoE layers
};

template <class Space = host_memory>
struct ModelLora {
  std::vector<std::string> names;  // adapter a's name is names[a]
  index_t max_rank = 0;            // the largest rank of any adapted weight (the scratch width)
  std::vector<LayerLora<Space>> layers;
  layers::LoraWeight<Space> lm_head;
  std::shared_ptr<const void> storage;  // the packed factors and the tables the views point into

  index_t size() const noexcept { return static_cast<index_t>(names.size()); }
  bool empty() const noexcept { return names.empty(); }

  // The index of adapter `name`; kInvalidArgument naming it and listing the loaded ones otherwise.
  std::int32_t index_of(std::string_view name) const {
    for (std::size_t a = 0; a < names.size(); ++a) {
      if (names[a] == name) return static_cast<std::int32_t>(a);
    }
    std::string loaded;
    for (const auto& n : names) loaded += (loaded.empty() ? "" : ", ") + n;
    fail(ErrorCode::kInvalidArgument, "unknown LoRA adapter '{}' (loaded: {})", name,
         loaded.empty() ? std::string("none") : loaded);
  }
};

}  // namespace moe::model
