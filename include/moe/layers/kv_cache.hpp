// BasicKvCache<Space>: one sequence's attention cache for every layer, in a backend's memory
// (`KvCache` is the host one). A standard attention layer stores
// keys [n_kv_heads·head_dim] and values [n_kv_heads·v_head_dim] per token; an MLA layer stores
// only the normalised latent [kv_lora_rank] (as "keys") and the rotated rope key
// [qk_rope_head_dim] (as "values") per token. A linear-attention (Gated DeltaNet) layer stores no
// tokens but a fixed state per sequence (its recurrent and conv states, state_width floats), kept
// in a region of its own after the token rows; a cache of such layers can be cleared or kept, not
// rewound to an earlier position.
#pragma once

#include "moe/core/buffer.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/cache.hpp"
#include "moe/kernels/reference/expert_budget.hpp"

#include <cstdint>
#include <span>
#include <vector>

namespace moe::layers {

// Floats stored per token by one layer.
struct KvLayerShape {
  index_t key_width = 0;
  index_t value_width = 0;
  index_t state_width = 0;  // floats of fixed per-sequence state (DeltaNet), independent of capacity
  index_t index_width = 0;  // floats per token of the sparse-attention indexer's key (DSA), after the values
  friend bool operator==(const KvLayerShape&, const KvLayerShape&) = default;
};

template <class Space>
class BasicKvCache {
 public:
  using memory = Space;

  BasicKvCache() = default;

  // Allocates (and zero-fills) capacity tokens for every layer. Throws kInvalidArgument if the
  // total size overflows.
  BasicKvCache(std::vector<KvLayerShape> layers, index_t capacity) : shapes_(std::move(layers)), capacity_(capacity) {
    index_t total = 0, before = 0;
    offsets_.reserve(shapes_.size());
    for (const auto& s : shapes_) {
      layers_.push_back(kernels::CacheLayer{before, s.key_width, s.value_width, states_, s.state_width, s.index_width});
      require(s.state_width <= (static_cast<index_t>(-1) / 8) - states_, ErrorCode::kInvalidArgument,
              "KV cache layer state of {} floats overflows", s.state_width);
      states_ += s.state_width;
      before += s.key_width + s.value_width + s.index_width;
      const index_t per_token = s.key_width + s.value_width + s.index_width;
      require(per_token >= s.key_width && (capacity == 0 || per_token <= (static_cast<index_t>(-1) / 4) / capacity),
              ErrorCode::kInvalidArgument, "KV cache of {} tokens x {} floats overflows", capacity, per_token);
      offsets_.push_back(total);
      require(total <= static_cast<index_t>(-1) / 4 - per_token * capacity, ErrorCode::kInvalidArgument,
              "KV cache of {} tokens overflows size_t", capacity);
      total += per_token * capacity;
    }
    require(total <= static_cast<index_t>(-1) / 8 - states_, ErrorCode::kInvalidArgument,
            "KV cache of {} tokens overflows size_t", capacity);
    data_ = Buffer<float, Space>(total + states_);
    tokens_floats_ = total;
  }

  // Bytes a cache of these layers and `capacity` tokens holds; the largest index_t if that
  // overflows (so a comparison against available memory fails safely).
  static index_t bytes_for(const std::vector<KvLayerShape>& layers, index_t capacity) noexcept {
    constexpr index_t kMax = static_cast<index_t>(-1);
    index_t total = 0;
    for (const auto& s : layers) {
      const index_t per_token = s.key_width + s.value_width + s.index_width;
      if (per_token < s.key_width || (capacity != 0 && per_token > kMax / sizeof(float) / capacity)) return kMax;
      if (s.state_width > kMax / sizeof(float) / 2) return kMax;
      const index_t bytes = per_token * capacity * sizeof(float) + s.state_width * sizeof(float);
      if (total > kMax - bytes) return kMax;
      total += bytes;
    }
    return total;
  }

  index_t size() const noexcept { return size_; }          // tokens stored
  index_t capacity() const noexcept { return capacity_; }  // tokens that fit
  index_t n_layers() const noexcept { return shapes_.size(); }
  const std::vector<KvLayerShape>& layer_shapes() const noexcept { return shapes_; }

  void clear() noexcept { size_ = 0; }

  // Forgets every token from position n on (n <= size()). A cache with fixed-state layers
  // (DeltaNet) holds no per-token history to rewind: only n == 0 or n == size() is possible there
  // (kUnsupported otherwise).
  void truncate(index_t n) {
    require(n <= size_, ErrorCode::kInvalidArgument, "KvCache::truncate({}) beyond size {}", n, size_);
    require(n == 0 || n == size_ || !has_state(), ErrorCode::kUnsupported,
            "KvCache::truncate({}) of {} tokens: a linear-attention layer's recurrent state cannot be rewound", n,
            size_);
    size_ = n;
  }

  // Whether some layer keeps a fixed recurrent state instead of per-token rows.
  bool has_state() const noexcept { return states_ != 0; }

  // Layer `layer`'s key rows, [capacity, key_width] (row p = position p).
  TensorView<float, 2, Space> keys(index_t layer) noexcept {
    return TensorView<float, 2, Space>(data_.data() + offsets_[layer], {capacity_, shapes_[layer].key_width});
  }
  TensorView<const float, 2, Space> keys(index_t layer) const noexcept {
    return TensorView<const float, 2, Space>(data_.data() + offsets_[layer], {capacity_, shapes_[layer].key_width});
  }
  // Layer `layer`'s value rows, [capacity, value_width].
  TensorView<float, 2, Space> values(index_t layer) noexcept {
    return TensorView<float, 2, Space>(data_.data() + offsets_[layer] + capacity_ * shapes_[layer].key_width,
                                       {capacity_, shapes_[layer].value_width});
  }
  TensorView<const float, 2, Space> values(index_t layer) const noexcept {
    return TensorView<const float, 2, Space>(data_.data() + offsets_[layer] + capacity_ * shapes_[layer].key_width,
                                             {capacity_, shapes_[layer].value_width});
  }

  // Where layer `layer` lives in the storage (the pass-wide cache ops' view of it).
  const kernels::CacheLayer& layer(index_t layer) const noexcept { return layers_[layer]; }
  // This cache as a slot of a pass whose rows [row0, row0 + n) it receives next.
  kernels::CacheSlot slot(index_t row0, index_t n) noexcept {
    return kernels::CacheSlot{data_.data(), static_cast<std::int64_t>(capacity_), static_cast<std::int64_t>(size_),
                              static_cast<std::int32_t>(row0), static_cast<std::int32_t>(n),
                              states_ == 0 ? nullptr : data_.data() + tokens_floats_};
  }

  // Marks n more tokens as stored (after a forward pass wrote rows size()..size()+n-1 of every
  // layer). Throws kContextOverflow if they do not fit.
  void append(index_t n) {
    require(n <= capacity_ - size_, ErrorCode::kContextOverflow, "KV cache holds {} of {} tokens; {} more do not fit",
            size_, capacity_, n);
    size_ += n;
  }

 private:
  std::vector<KvLayerShape> shapes_;
  std::vector<index_t> offsets_;
  std::vector<kernels::CacheLayer> layers_;
  Buffer<float, Space> data_;
  index_t capacity_ = 0;
  index_t size_ = 0;
  index_t states_ = 0;        // floats of all layers' fixed states (after the token rows)
  index_t tokens_floats_ = 0;  // floats of all layers' token rows
};

using KvCache = BasicKvCache<host_memory>;

// The tokens of one sequence in a forward pass: they are appended to `cache` at positions
// cache->size(), cache->size()+1, ... `expert_budget`: the elastic-experts budget of this
// sequence's tokens (the default changes nothing: the pass is exactly the model's).
template <class Space>
struct BasicSequenceChunk {
  BasicKvCache<Space>* cache = nullptr;
  std::span<const std::int32_t> tokens;
  kernels::ExpertBudget expert_budget{};
  // Unmerged LoRA: the index of this sequence's adapter among the model's resident ones
  // (BasicModel::adapter_index), or -1 for the base model.
  std::int32_t adapter = -1;
};

}  // namespace moe::layers

namespace moe {
using layers::BasicKvCache;
using layers::BasicSequenceChunk;
using layers::KvCache;
using layers::KvLayerShape;
}  // namespace moe
