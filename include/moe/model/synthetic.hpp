// Random weights of a real model's shape, made directly in a backend's memory (benchmarks; the
// hub's dummy-weight loaders do the same): a ModelConfig from config.json contents and every
// tensor it needs, filled by kernels::fill_uniform with DESIGN.md §9's scales (matrices of
// variance 1/fan_in, embeddings of variance 1, norm weights 1 ± 0.1·√3·u, biases ±0.1·√3·u).
// The fused expert layout is used, so a layer is a handful of allocations. With a block format
// (q8_0, q4_K, ...) the matrices are quantized (ggml's reference quantizers) and vectors stay f32.
#pragma once

#include "moe/core/buffer.hpp"
#include "moe/core/format.hpp"
#include "moe/kernels/kernels.hpp"
#include "moe/model/config.hpp"
#include "moe/model/model.hpp"
#include "moe/model/weights.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace moe::model {

namespace synthetic_detail {

inline bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace synthetic_detail

// The random tensors of a synthetic model, made on demand (bind_weights asks for them by name and
// shape), each in its own buffer of Backend's memory and kept alive by the source. made() lists
// them in the order they were made, under the names they were asked for (the fused expert layout:
// "....experts.gate_up_proj" [E, 2F, D] and "....experts.down_proj" [E, D, F]), so that a host
// program can write the very same weights to files (model/checkpoint_tensors.hpp). Not
// thread-safe while a model is being bound from it; read-only afterwards.
template <class Backend>
class SyntheticSource final : public TensorSource {
  using Mem = typename Backend::memory;

 public:
  struct Made {
    std::string name;
    std::vector<index_t> shape;  // outermost first
    TensorRef ref;               // in Backend's memory
  };

  SyntheticSource(DType dtype, std::uint64_t seed) : dtype_(dtype), seed_(seed) {}

  bool contains(std::string_view name) const override {
    if (synthetic_detail::ends_with(name, "_blocks")) return false;          // MXFP4 banks
    if (name.find(".experts.0.") != std::string_view::npos) return false;  // per-expert layout: use the fused one
    // MLA: kv_b_proj as checkpoints store it (the split k_b/v_b form is GGUF's, read from files)
    if (synthetic_detail::ends_with(name, "k_b_proj.weight") || synthetic_detail::ends_with(name, "v_b_proj.weight")) {
      return false;
    }
    return true;
  }
  std::optional<std::vector<index_t>> shape_of(std::string_view) const override { return std::nullopt; }

  TensorRef get(std::string_view name, std::span<const index_t> shape) const override {
    index_t n = 1;
    for (const index_t e : shape) n *= e;
    const DType dtype = format_for(name, shape);
    auto& buffer = buffers_.emplace_back(format_row_bytes(dtype, n));
    bytes_ += buffer.bytes();
    const float fan_in = static_cast<float>(shape.empty() ? 1 : shape.back());
    float scale = std::sqrt(3.0f / fan_in), offset = 0.0f;
    if (synthetic_detail::ends_with(name, "norm.weight") || synthetic_detail::ends_with(name, "layernorm.weight")) {
      scale = 0.1f * std::sqrt(3.0f), offset = 1.0f;
    } else if (synthetic_detail::ends_with(name, ".bias") || synthetic_detail::ends_with(name, "correction_bias") || synthetic_detail::ends_with(name, "sinks")) {
      scale = 0.1f * std::sqrt(3.0f);
    } else if (synthetic_detail::ends_with(name, "embed_tokens.weight")) {
      scale = std::sqrt(3.0f);
    }
    visit_format<Backend>(dtype, [&](auto tag) {
      using T = decltype(tag);
      const index_t blocks = n / FormatTraits<T>::block_elements;  // a view of a block format counts blocks
      kernels::fill_uniform(Backend{}, TensorView<T, 1, Mem>(reinterpret_cast<T*>(buffer.data()), {blocks}),
                            seed_ + buffers_.size(), scale, offset);
    });
    made_.push_back({std::string(name), std::vector<index_t>(shape.begin(), shape.end()), {dtype, buffer.data()}});
    return made_.back().ref;
  }
  std::size_t bytes() const noexcept { return bytes_; }
  const std::vector<Made>& made() const noexcept { return made_; }
  DType dtype() const noexcept { return dtype_; }

 private:
  // A block format is used for matrices whose rows are whole blocks; vectors, biases and the
  // rest stay f32 (as in GGUF files, where norms and biases are F32).
  DType format_for(std::string_view name, std::span<const index_t> shape) const {
    if (!is_block_dtype(dtype_)) return dtype_;
    const bool matrix = shape.size() >= 2 && !synthetic_detail::ends_with(name, "bias");
    return matrix && shape.back() % format_block_elements(dtype_) == 0 ? dtype_ : DType::f32;
  }

  DType dtype_;
  std::uint64_t seed_;
  mutable std::list<Buffer<std::byte, Mem>> buffers_;  // stable addresses
  mutable std::size_t bytes_ = 0;
  mutable std::vector<Made> made_;
};


// A model of `config` (config.json contents) bound to the tensors `source` makes (kept alive by
// the model). Throws what ModelConfig::from_json and bind_weights throw, kOutOfMemory / kDevice
// when the weights do not fit.
template <class Backend>
std::shared_ptr<const BasicModel<Backend>> make_synthetic_model(const nlohmann::json& config,
                                                                std::shared_ptr<SyntheticSource<Backend>> source) {
  using Mem = typename Backend::memory;
  return catch_as_error("make_synthetic_model", [&] {
    require(source != nullptr, ErrorCode::kInvalidArgument, "make_synthetic_model: no source");
    ModelConfig cfg = ModelConfig::from_json(config, "synthetic config");
    // bind_weights only computes addresses, so binding device pointers through the host-typed
    // structs is safe; they are retyped to the backend's space before anything reads them.
    ModelWeights<host_memory> bound = bind_weights(cfg, *source);
    auto weights = bound.transform([](const char*, const auto& t) {
      using HostT = std::remove_cvref_t<decltype(t)>;
      if constexpr (std::is_same_v<HostT, layers::WeightMatrix<host_memory>>) {
        return layers::WeightMatrix<Mem>{t.dtype, t.data, t.rows, t.cols, t.row_stride};
      } else {
        return layers::WeightVector<Mem>{t.dtype, t.data, t.size};
      }
    });
    return std::make_shared<const BasicModel<Backend>>(std::move(cfg), std::move(weights),
                                                       std::shared_ptr<const void>(std::move(source)));
  });
}

// A model of `config` (config.json contents) with random `dtype` weights in Backend's memory.
template <class Backend>
std::shared_ptr<const BasicModel<Backend>> make_synthetic_model(const nlohmann::json& config, DType dtype,
                                                                std::uint64_t seed = 1) {
  return make_synthetic_model<Backend>(config, std::make_shared<SyntheticSource<Backend>>(dtype, seed));
}

}  // namespace moe::model
