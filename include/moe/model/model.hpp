// BasicModel<Backend>: an immutable, loaded checkpoint (config + weights in the backend's memory:
// in place in the mapped files for host backends, uploaded once for a device backend) with the
// entry points a runtime needs: make_cache, make_workspace and the batched forward pass.
// `Model` is the cpu backend's; `BasicModel<backend::reference>` runs the scalar oracle and
// `BasicModel<backend::cuda>` the GPU (load_model<Backend> makes either).
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/format.hpp"
#include "moe/core/tensor.hpp"
#include "moe/core/token_id.hpp"
#include "moe/layers/kv_cache.hpp"
#include "moe/model/config.hpp"
#include "moe/model/lora_tables.hpp"
#include "moe/model/repack.hpp"
#include "moe/model/transformer.hpp"
#include "moe/model/weights.hpp"
#include "moe/model/workspace.hpp"

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include <span>
#include <utility>

namespace moe {

template <class Backend>
class BasicModel {
 public:
  using backend_type = Backend;
  using memory = typename Backend::memory;
  using Cache = BasicKvCache<memory>;
  using Workspace = BasicWorkspace<Backend>;
  using SequenceChunk = BasicSequenceChunk<memory>;
  using Weights = model::ModelWeights<memory>;
  using Lora = model::ModelLora<memory>;

  // Takes the config, the bound weights (in the backend's memory) and whatever keeps their bytes
  // alive (the mapped checkpoint, or the device allocation). Throws if the weights do not fit.
  // lora: unmerged LoRA adapters kept resident (model/lora.hpp's make_lora_tables; host backends
  // only for now: kUnsupported on a device backend), each sequence picking one or none.
  // On the cpu backend the Q4_0 / Q8_0 / IQ4_NL / Q4_K / Q6_K matrices are repacked into the kernels'
  // row-interleaved layout here (model/repack.hpp; MOE_CPU_REPACK=0 keeps them as stored), and
  // release, when given, is called with each source matrix's bytes after its copy.
  BasicModel(ModelConfig config, Weights weights, std::shared_ptr<const void> storage, Lora lora = {},
             const model::ReleaseBytes& release = {});

  const ModelConfig& config() const noexcept { return config_; }
  const Weights& weights() const noexcept { return weights_; }
  // The resident unmerged LoRA adapters (empty: none).
  const Lora& lora() const noexcept { return lora_; }
  const std::vector<std::string>& adapter_names() const noexcept { return lora_.names; }
  // The index a SequenceChunk's `adapter` takes for adapter `name`; kInvalidArgument naming it
  // and listing the loaded adapters when there is none of that name.
  std::int32_t adapter_index(std::string_view name) const { return lora_.index_of(name); }
  // Bytes of all weights, and the bytes one decode token reads (the roofline's denominator).
  const model::WeightBytes& weight_bytes() const noexcept { return bytes_; }
  // What the load-time repack did (all zero where the backend does not repack).
  const model::RepackInfo& repack_info() const noexcept { return repack_; }

  // Bytes of a KV cache of max_tokens tokens (saturates at the largest index_t on overflow).
  index_t kv_cache_bytes(index_t max_tokens) const noexcept { return Cache::bytes_for(plan_.kv_shapes, max_tokens); }

  // A cache for one sequence of up to max_tokens tokens. Thread-safe.
  Cache make_cache(index_t max_tokens) const {
    require(max_tokens > 0, ErrorCode::kInvalidArgument, "make_cache: max_tokens must be positive");
    return Cache(plan_.kv_shapes, max_tokens);
  }

  // Activations for forward passes of up to max_batch_tokens tokens in total. Thread-safe.
  Workspace make_workspace(index_t max_batch_tokens) const {
    require(max_batch_tokens > 0, ErrorCode::kInvalidArgument, "make_workspace: max_batch_tokens must be positive");
    WorkspaceSizes s = plan_.sizes;
    s.max_tokens = max_batch_tokens;
    s.logits_rows = is_host_memory_v<memory> ? 0 : max_batch_tokens;
    return Workspace(s, plan_.rope.inv_freq);
  }

  // One pass over all chunks' tokens together: appends each chunk's tokens to its cache at
  // positions cache->size()...; logits (host memory) is [total tokens, vocab] if all_positions,
  // else [chunks.size(), vocab] (each chunk's last token). Everything is validated (token ids,
  // capacities, workspace, shapes, distinct caches) before any cache changes; on error throws
  // moe::Error (kInvalidArgument / kContextOverflow) and leaves the caches untouched.
  // const: many threads may call it at once with their own workspaces and caches.
  void forward(std::span<const SequenceChunk> chunks, Workspace& ws, View<float, 2> logits, bool all_positions) const;

 private:
  // The checks of forward's contract; returns the total number of tokens.
  index_t validate(std::span<const SequenceChunk> chunks, const Workspace& ws) const;

  ModelConfig config_;
  Weights weights_;
  std::shared_ptr<const void> storage_;
  Lora lora_;
  model::ForwardPlan plan_;
  model::WeightBytes bytes_;
  model::RepackInfo repack_;
};

template <class Backend>
BasicModel<Backend>::BasicModel(ModelConfig config, Weights weights, std::shared_ptr<const void> storage, Lora lora,
                                const model::ReleaseBytes& release)
    : config_(std::move(config)), weights_(std::move(weights)), storage_(std::move(storage)), lora_(std::move(lora)) {
  require(lora_.empty() || is_host_memory_v<memory>, ErrorCode::kUnsupported,
          "unmerged LoRA adapters are not supported by backend {} yet (merge them at load)", Backend::name);
  require(lora_.empty() || lora_.layers.size() == weights_.layers.size(), ErrorCode::kInvalidArgument,
          "LoRA tables for {} layers on a model of {}", lora_.layers.size(), weights_.layers.size());
  // Validation through the tensor list: every weight's format must have kernels on this
  // backend (a typed error at load, not at the first forward pass).
  model::require_backend_formats<Backend>(weights_);
  if constexpr (model::interleaves_weights<Backend>()) {
    if (model::repack_enabled_by_environment()) {
      model::Interleaved r = model::interleave_weights(weights_, std::move(storage_), release);
      weights_ = std::move(r.weights), storage_ = std::move(r.storage), repack_ = r.info;
    }
  } else {
    (void)release;
  }
  plan_ = model::make_forward_plan(config_, weights_);
  plan_.sizes.lora_rank = lora_.empty() ? 0 : std::max<index_t>(lora_.max_rank, 1);
  bytes_ = model::weight_bytes(weights_, config_.top_k);
}

template <class Backend>
void BasicModel<Backend>::forward(std::span<const SequenceChunk> chunks, Workspace& ws, View<float, 2> logits, bool all_positions) const {
  const index_t total = validate(chunks, ws);
  const index_t rows = all_positions ? total : chunks.size();
  require(logits.extent(0) == rows && logits.extent(1) == config_.vocab_size &&
              (logits.extent(1) <= 1 || logits.stride(1) == 1),
          ErrorCode::kInvalidArgument, "forward: logits is [{}, {}], expected [{}, {}] with unit inner stride",
          logits.extent(0), logits.extent(1), rows, config_.vocab_size);
  if constexpr (is_host_memory_v<memory>) {
    model::Transformer<Backend>::forward(config_, weights_, plan_, chunks, ws, logits, all_positions,
                                         lora_.empty() ? nullptr : &lora_);
  } else {
    require(logits.extent(1) <= 1 || logits.stride(0) == logits.extent(1), ErrorCode::kInvalidArgument,
            "forward: logits rows must be contiguous for a device backend (row stride {}, {} columns)",
            logits.stride(0), logits.extent(1));
    const auto device_logits = ws.logits(rows);
    model::Transformer<Backend>::forward(config_, weights_, plan_, chunks, ws, device_logits, all_positions);
    kernels::download(Backend{}, TensorView<const float, 1, memory>(device_logits.data(), {rows * config_.vocab_size}),
                      std::span<float>(logits.data(), rows * config_.vocab_size));
  }
}

template <class Backend>
index_t BasicModel<Backend>::validate(std::span<const SequenceChunk> chunks, const Workspace& ws) const {
  require(!chunks.empty(), ErrorCode::kInvalidArgument, "forward: no chunks");
  index_t total = 0;
  for (index_t i = 0; i < chunks.size(); ++i) {
    const auto& ch = chunks[i];
    require(ch.cache != nullptr, ErrorCode::kInvalidArgument, "forward: chunk {} has no cache", i);
    require(!ch.tokens.empty(), ErrorCode::kInvalidArgument, "forward: chunk {} has no tokens", i);
    require(ch.cache->layer_shapes() == plan_.kv_shapes, ErrorCode::kInvalidArgument,
            "forward: chunk {}'s cache was not made by this model", i);
    for (index_t j = 0; j < i; ++j) {
      require(chunks[j].cache != ch.cache, ErrorCode::kInvalidArgument, "forward: chunks {} and {} share one cache",
              j, i);
    }
    require(ch.tokens.size() <= ch.cache->capacity() - ch.cache->size(), ErrorCode::kContextOverflow,
            "forward: chunk {} adds {} tokens to a cache holding {} of {}", i, ch.tokens.size(), ch.cache->size(),
            ch.cache->capacity());
    for (const auto id : ch.tokens) check_token_id(id, config_.vocab_size, "forward");
    ch.expert_budget.validate(config_.top_k, "forward");
    require(ch.adapter == -1 || (ch.adapter >= 0 && static_cast<index_t>(ch.adapter) < lora_.size()),
            ErrorCode::kInvalidArgument,
            "forward: chunk {} picks LoRA adapter {}, but the model has {} resident", i, ch.adapter, lora_.size());
    total += ch.tokens.size();
  }
  require(ws.sizes().same_model(plan_.sizes), ErrorCode::kInvalidArgument,
          "forward: the workspace was made for another model");
  require(total <= ws.max_tokens(), ErrorCode::kInvalidArgument, "forward: {} tokens exceed the workspace's {} tokens",
          total, ws.max_tokens());
  return total;
}

using Model = BasicModel<backend::cpu>;

// Compiled once for this project's own executables (instances/; see MOE_EXTERN_GRAPH in
// model/transformer.hpp).
#if defined(MOE_EXTERN_GRAPH)
extern template class BasicModel<backend::cpu>;
extern template class BasicModel<backend::reference>;
#endif
#if defined(MOE_EXTERN_GRAPH_CUDA)
extern template class BasicModel<backend::cuda>;
#endif

}  // namespace moe
