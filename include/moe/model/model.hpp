// Model: an immutable, loaded checkpoint (config + weights in place in the mapped files) with the
// entry points a runtime needs: make_cache, make_workspace and the batched forward pass.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/layers/kv_cache.hpp"
#include "moe/model/config.hpp"
#include "moe/model/transformer.hpp"
#include "moe/model/weights.hpp"
#include "moe/model/workspace.hpp"

#include <memory>
#include <span>
#include <utility>

namespace moe {

class Model {
 public:
  using SequenceChunk = moe::SequenceChunk;

  // Takes the config, the bound weights and whatever keeps the weight bytes alive (the mapped
  // checkpoint). Throws if the weights do not fit the config.
  Model(ModelConfig config, model::ModelWeights weights, std::shared_ptr<const void> storage)
      : config_(std::move(config)), weights_(std::move(weights)), storage_(std::move(storage)) {
    plan_ = model::make_forward_plan(config_, weights_);
  }

  const ModelConfig& config() const noexcept { return config_; }
  const model::ModelWeights& weights() const noexcept { return weights_; }

  // A cache for one sequence of up to max_tokens tokens. Thread-safe.
  // Bytes of a KV cache of max_tokens tokens (saturates at the largest index_t on overflow).
  index_t kv_cache_bytes(index_t max_tokens) const noexcept { return KvCache::bytes_for(plan_.kv_shapes, max_tokens); }

  KvCache make_cache(index_t max_tokens) const {
    require(max_tokens > 0, ErrorCode::kInvalidArgument, "make_cache: max_tokens must be positive");
    return KvCache(plan_.kv_shapes, max_tokens);
  }

  // Activations for forward passes of up to max_batch_tokens tokens in total. Thread-safe.
  Workspace make_workspace(index_t max_batch_tokens) const {
    require(max_batch_tokens > 0, ErrorCode::kInvalidArgument, "make_workspace: max_batch_tokens must be positive");
    WorkspaceSizes s = plan_.sizes;
    s.max_tokens = max_batch_tokens;
    return Workspace(s);
  }

  // One pass over all chunks' tokens together: appends each chunk's tokens to its cache at
  // positions cache->size()...; logits is [total tokens, vocab] if all_positions, else
  // [chunks.size(), vocab] (each chunk's last token). Everything is validated (token ids,
  // capacities, workspace, shapes, distinct caches) before any cache changes; on error throws
  // moe::Error (kInvalidArgument / kContextOverflow) and leaves the caches untouched.
  // const: many threads may call it at once with their own workspaces and caches.
  void forward(std::span<const SequenceChunk> chunks, Workspace& ws, View<float, 2> logits, bool all_positions) const {
    require(!chunks.empty(), ErrorCode::kInvalidArgument, "forward: no chunks");
    index_t total = 0;
    for (index_t i = 0; i < chunks.size(); ++i) {
      const auto& ch = chunks[i];
      require(ch.cache != nullptr, ErrorCode::kInvalidArgument, "forward: chunk {} has no cache", i);
      require(!ch.tokens.empty(), ErrorCode::kInvalidArgument, "forward: chunk {} has no tokens", i);
      require(ch.cache->layer_shapes() == plan_.kv_shapes, ErrorCode::kInvalidArgument,
              "forward: chunk {}'s cache was not made by this model", i);
      for (index_t j = 0; j < i; ++j) {
        require(chunks[j].cache != ch.cache, ErrorCode::kInvalidArgument,
                "forward: chunks {} and {} share one cache", j, i);
      }
      require(ch.tokens.size() <= ch.cache->capacity() - ch.cache->size(), ErrorCode::kContextOverflow,
              "forward: chunk {} adds {} tokens to a cache holding {} of {}", i, ch.tokens.size(), ch.cache->size(),
              ch.cache->capacity());
      for (const auto id : ch.tokens) {
        require(id >= 0 && static_cast<index_t>(id) < config_.vocab_size, ErrorCode::kInvalidArgument,
                "forward: token id {} outside the vocabulary [0, {})", id, config_.vocab_size);
      }
      total += ch.tokens.size();
    }
    require(ws.sizes().same_model(plan_.sizes), ErrorCode::kInvalidArgument,
            "forward: the workspace was made for another model");
    require(total <= ws.max_tokens(), ErrorCode::kInvalidArgument,
            "forward: {} tokens exceed the workspace's {} tokens", total, ws.max_tokens());
    const index_t rows = all_positions ? total : chunks.size();
    require(logits.extent(0) == rows && logits.extent(1) == config_.vocab_size &&
                (logits.extent(1) <= 1 || logits.stride(1) == 1),
            ErrorCode::kInvalidArgument, "forward: logits is [{}, {}], expected [{}, {}] with unit inner stride",
            logits.extent(0), logits.extent(1), rows, config_.vocab_size);
    model::Transformer<backend::cpu>::forward(config_, weights_, plan_, chunks, ws, logits, all_positions);
  }

 private:
  ModelConfig config_;
  model::ModelWeights weights_;
  std::shared_ptr<const void> storage_;
  model::ForwardPlan plan_;
};

}  // namespace moe
