// Continuous batching: many sequences advance together, one Model::forward per step. Each
// sequence has its own KV cache, position, sampler and stop rules; requests wait in a queue,
// join when a slot is free (their prompt is prefilled in the same forward as the others' decode
// tokens, split over several steps when it exceeds the token budget) and leave when finished.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/token_id.hpp"
#include "moe/core/limits.hpp"
#include "moe/core/tensor.hpp"
#include "moe/model/model.hpp"
#include "moe/runtime/generate.hpp"
#include "moe/runtime/sampler.hpp"
#include "moe/runtime/stats.hpp"
#include "moe/tokenizer/tokenizer.hpp"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace moe {

struct BatchOptions {
  index_t max_sequences = 4;     // slots: sequences decoding at the same time
  index_t n_ctx = 0;             // tokens per sequence; 0: max_position_embeddings capped at 2048
  index_t max_batch_tokens = 0;  // tokens per forward pass; 0: max(max_sequences, min(n_ctx, 512))
};

struct BatchRequest {
  std::vector<std::int32_t> prompt;  // token ids (already encoded, specials included as wanted)
  GenerationOptions options;
  TokenCallback on_token;  // called from step(), on the thread that calls it
};

using RequestId = std::uint64_t;

template <class Backend>
class BasicBatchGenerator {
 public:
  using ModelType = BasicModel<Backend>;
  using Workspace = typename ModelType::Workspace;

  // `extra_eos_ids` are added to every request's stop ids (e.g. generation_config.json's); the
  // model config's eos ids always apply unless a request sets ignore_eos.
  BasicBatchGenerator(std::shared_ptr<const ModelType> model, std::shared_ptr<const Tokenizer> tokenizer,
                      const BatchOptions& options = {}, std::vector<std::int32_t> extra_eos_ids = {})
      : model_(std::move(model)), tokenizer_(std::move(tokenizer)), extra_eos_(std::move(extra_eos_ids)) {
    catch_as_error("BatchGenerator", [&] { init(options); });
  }

  // Queues a request; it joins at the next step() with a free slot. Throws (nothing queued)
  // kInvalidArgument for an empty prompt, an id outside the vocabulary or bad sampler options,
  // kContextOverflow for a prompt longer than n_ctx.
  RequestId submit(BatchRequest request) {
    return catch_as_error("BatchGenerator::submit", [&] { return enqueue(std::move(request)); });
  }

  // Encodes `prompt` with the tokenizer and queues it.
  RequestId submit(std::string_view prompt, const GenerationOptions& options, TokenCallback on_token = {}) {
    return submit(BatchRequest{tokenizer_->encode(prompt, options.add_special_tokens), options, std::move(on_token)});
  }

  // One scheduling step: admits queued requests into free slots, then runs ONE forward pass over
  // every active sequence's next chunk (a decode token, or the next piece of a prompt) and
  // samples where a sequence has a complete prompt. Returns whether work remains. Callbacks run
  // inside; one that throws propagates out of step() and leaves that request's slot in an
  // unspecified state (do not throw from callbacks; return false to stop a request).
  // Single-threaded: submit/step/take_finished from one thread; only the requests' cancel flags
  // and stop tokens may be set from others.
  bool step() {
    return catch_as_error("BatchGenerator::step", [&] { return step_once(); });
  }

  // Steps until every queued and active request has finished.
  void run() {
    while (step()) {
    }
  }

 private:
  void init(const BatchOptions& options);

  RequestId enqueue(BatchRequest request);

  bool step_once();

 public:
  bool idle() const noexcept { return queue_.empty() && active() == 0; }
  index_t active() const noexcept {
    return static_cast<index_t>(std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.busy; }));
  }
  index_t queued() const noexcept { return queue_.size(); }

  // Finished requests since the last call, in the order they finished.
  std::vector<std::pair<RequestId, GenerationResult>> take_finished() { return std::exchange(finished_, {}); }

  index_t n_ctx() const noexcept { return n_ctx_; }
  index_t max_sequences() const noexcept { return slots_.size(); }
  index_t max_batch_tokens() const noexcept { return max_batch_tokens_; }
  std::uint64_t forward_calls() const noexcept { return forward_calls_; }        // one per step with work
  std::uint64_t tokens_processed() const noexcept { return tokens_processed_; }  // over all forwards
  Workspace& workspace() noexcept { return *workspace_; }
  const Tokenizer& tokenizer() const noexcept { return *tokenizer_; }

 private:
  struct Pending {
    RequestId id;
    BatchRequest request;
    std::int32_t adapter = -1;  // options.adapter resolved at enqueue
  };
  struct Slot {
    bool busy = false;
    bool decoding = false;         // prompt complete; next_token is fed at the next step
    RequestId id = 0;
    typename ModelType::Cache cache;
    std::vector<std::int32_t> prompt;
    index_t prompt_done = 0;       // prompt tokens already in the cache
    std::int32_t next_token = 0;   // sampled, not yet in the cache
    GenerationOptions options;
    std::int32_t adapter = -1;     // the model's LoRA adapter index, -1: the base model
    TokenCallback on_token;
    std::vector<std::int32_t> eos;
    std::optional<Sampler> sampler;
    std::optional<TextStream> stream;
    GenerationResult result;
    Stopwatch clock;
  };
  struct PlannedChunk {
    std::size_t slot;
    index_t n_tokens;
  };

  void admit();

  // A sequence's next-token logits are ready: sample, stream, and decide whether it goes on.
  void on_logits(Slot& s, std::span<const float> logits);

  void finish(Slot& s, StopReason reason);

  std::shared_ptr<const ModelType> model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::vector<std::int32_t> extra_eos_;
  index_t n_ctx_ = 0;
  index_t max_batch_tokens_ = 0;
  index_t vocab_size_ = 0;
  std::vector<Slot> slots_;
  std::vector<std::size_t> admission_order_;  // busy slots, oldest request first
  std::deque<Pending> queue_;
  std::unique_ptr<Workspace> workspace_;
  Tensor<float, 2> logits_;  // [max_sequences, vocab_size]
  std::vector<typename ModelType::SequenceChunk> chunks_;
  std::vector<PlannedChunk> plan_;
  std::vector<std::pair<RequestId, GenerationResult>> finished_;
  RequestId next_id_ = 0;
  std::uint64_t forward_calls_ = 0;
  std::uint64_t tokens_processed_ = 0;
};

template <class Backend>
void BasicBatchGenerator<Backend>::init(const BatchOptions& options) {
  require(model_ != nullptr && tokenizer_ != nullptr, ErrorCode::kInvalidArgument,
          "BatchGenerator: null model or tokenizer");
  const auto& cfg = model_->config();
  require(options.max_sequences >= 1 && options.max_sequences <= static_cast<index_t>(limits::kMaxParallelSequences),
          ErrorCode::kInvalidArgument, "BatchGenerator: max_sequences must be in [1, {}], got {}",
          limits::kMaxParallelSequences, options.max_sequences);
  n_ctx_ = options.n_ctx;
  if (n_ctx_ == 0) n_ctx_ = cfg.max_position_embeddings == 0 ? 2048 : std::min<index_t>(cfg.max_position_embeddings, 2048);
  require(cfg.max_position_embeddings == 0 || n_ctx_ <= cfg.max_position_embeddings, ErrorCode::kInvalidArgument,
          "BatchGenerator: n_ctx {} exceeds the model's max_position_embeddings {}", n_ctx_,
          cfg.max_position_embeddings);
  require(n_ctx_ <= static_cast<index_t>(limits::kMaxContext), ErrorCode::kInvalidArgument,
          "BatchGenerator: n_ctx {} exceeds the limit of {} tokens", n_ctx_, limits::kMaxContext);
  // One cache per slot, each zero-filled: refuse a total beyond physical memory up front
  // instead of summoning the OOM killer halfway through.
  const index_t per_cache = model_->kv_cache_bytes(n_ctx_);
  const index_t physical = physical_memory_bytes();
  if (physical != 0 && per_cache > physical / options.max_sequences) {
    fail(ErrorCode::kOutOfMemory, "BatchGenerator: {} KV caches of {} bytes ({} tokens each) exceed the {} bytes of memory",
         options.max_sequences, per_cache, n_ctx_, physical);
  }
  max_batch_tokens_ = options.max_batch_tokens;
  if (max_batch_tokens_ == 0) max_batch_tokens_ = std::max(options.max_sequences, std::min<index_t>(n_ctx_, 512));
  require(max_batch_tokens_ >= options.max_sequences, ErrorCode::kInvalidArgument,
          "BatchGenerator: max_batch_tokens {} must be at least max_sequences {} (one decode token each)",
          max_batch_tokens_, options.max_sequences);
  vocab_size_ = cfg.vocab_size;
  slots_.resize(options.max_sequences);
  for (auto& s : slots_) s.cache = model_->make_cache(n_ctx_);
  workspace_ = std::make_unique<Workspace>(model_->make_workspace(max_batch_tokens_));
  logits_ = Tensor<float, 2>({options.max_sequences, vocab_size_});
  chunks_.reserve(options.max_sequences);
  plan_.reserve(options.max_sequences);
  admission_order_.reserve(options.max_sequences);
}

template <class Backend>
RequestId BasicBatchGenerator<Backend>::enqueue(BatchRequest request) {
  require(!request.prompt.empty(), ErrorCode::kInvalidArgument, "BatchGenerator: empty prompt");
  require(request.prompt.size() <= n_ctx_, ErrorCode::kContextOverflow,
          "BatchGenerator: prompt of {} tokens exceeds n_ctx {}", request.prompt.size(), n_ctx_);
  for (const std::int32_t id : request.prompt) check_token_id(id, vocab_size_, "BatchGenerator");
  request.options.sampler.validate();
  if (request.options.expert_budget) request.options.expert_budget->validate(model_->config().top_k, "BatchGenerator");
  const std::int32_t adapter =
      request.options.adapter && !request.options.adapter->empty() ? model_->adapter_index(*request.options.adapter) : -1;
  const RequestId id = next_id_++;
  queue_.push_back(Pending{id, std::move(request), adapter});
  return id;
}

template <class Backend>
bool BasicBatchGenerator<Backend>::step_once() {
  admit();
  for (auto& s : slots_) {
    if (s.busy && s.options.cancelled()) finish(s, StopReason::kCancelled);
  }
  admit();  // slots freed by cancellation

  chunks_.clear();
  plan_.clear();
  index_t budget = max_batch_tokens_;
  for (std::size_t i = 0; i < slots_.size(); ++i) {  // decode tokens first: one per sequence
    Slot& s = slots_[i];
    if (s.busy && s.decoding) {
      chunks_.push_back({&s.cache, std::span<const std::int32_t>(&s.next_token, 1),
                         s.options.expert_budget.value_or(ExpertBudget{}), s.adapter});
      plan_.push_back({i, 1});
      --budget;
    }
  }
  for (const std::size_t i : admission_order_) {  // then prompt pieces, oldest request first
    Slot& s = slots_[i];
    if (!s.busy || s.decoding || budget == 0) continue;
    const index_t n = std::min(budget, s.prompt.size() - s.prompt_done);
    chunks_.push_back({&s.cache, std::span<const std::int32_t>(s.prompt).subspan(s.prompt_done, n),
                       s.options.expert_budget.value_or(ExpertBudget{}), s.adapter});
    plan_.push_back({i, n});
    budget -= n;
  }
  if (chunks_.empty()) return !idle();

  model_->forward(chunks_, *workspace_, logits_.view().slice(0, chunks_.size()), /*all_positions=*/false);
  ++forward_calls_;
  tokens_processed_ += max_batch_tokens_ - budget;

  for (std::size_t c = 0; c < plan_.size(); ++c) {
    Slot& s = slots_[plan_[c].slot];
    if (!s.decoding) {
      s.prompt_done += plan_[c].n_tokens;
      if (s.prompt_done < s.prompt.size()) continue;  // more prompt next step
      s.decoding = true;
      s.result.timings.prompt_tokens = s.prompt.size();
      s.result.timings.prompt_seconds = s.clock.seconds();
      s.clock.restart();
      if (s.options.max_new_tokens == 0) {
        finish(s, StopReason::kMaxTokens);
        continue;
      }
    }
    on_logits(s, std::span<const float>(logits_.data() + c * vocab_size_, vocab_size_));
  }
  return !idle();
}

template <class Backend>
void BasicBatchGenerator<Backend>::admit() {
  for (std::size_t i = 0; i < slots_.size() && !queue_.empty(); ++i) {
    Slot& s = slots_[i];
    if (s.busy) continue;
    Pending p = std::move(queue_.front());
    queue_.pop_front();
    s.busy = true;
    s.decoding = false;
    s.id = p.id;
    s.cache.clear();
    s.prompt = std::move(p.request.prompt);
    s.prompt_done = 0;
    s.options = std::move(p.request.options);
    s.adapter = p.adapter;
    s.on_token = std::move(p.request.on_token);
    s.eos = s.options.ignore_eos ? std::vector<std::int32_t>{}
                                 : merge_token_ids(merge_token_ids(model_->config().eos_token_ids, extra_eos_),
                                                   s.options.eos_token_ids);
    s.sampler.emplace(s.options.sampler, vocab_size_);
    s.sampler->add_prompt(s.prompt);
    s.stream.emplace(*tokenizer_, s.options);
    s.result = GenerationResult{};
    s.result.tokens.reserve(std::min(s.options.max_new_tokens, n_ctx_));
    s.clock.restart();
    admission_order_.push_back(i);
  }
}

template <class Backend>
void BasicBatchGenerator<Backend>::on_logits(Slot& s, std::span<const float> logits) {
  const std::int32_t id = s.sampler->sample(logits);
  ++s.result.timings.generated_tokens;
  if (std::find(s.eos.begin(), s.eos.end(), id) != s.eos.end()) return finish(s, StopReason::kEos);
  s.sampler->accept(id);
  s.result.tokens.push_back(id);
  bool text_stopped = false;
  const std::string_view piece = s.stream->push(id, &text_stopped);
  s.result.text += piece;
  const bool go_on = s.on_token ? s.on_token(id, piece) : true;
  if (text_stopped) return finish(s, StopReason::kStopString);
  if (!go_on) return finish(s, StopReason::kCallback);
  if (s.result.timings.generated_tokens >= s.options.max_new_tokens) return finish(s, StopReason::kMaxTokens);
  if (s.cache.size() >= n_ctx_) return finish(s, StopReason::kContextFull);
  s.next_token = id;
}

template <class Backend>
void BasicBatchGenerator<Backend>::finish(Slot& s, StopReason reason) {
  bool tail_stopped = false;
  const std::string tail = s.stream->finish(&tail_stopped);
  if (tail_stopped) reason = StopReason::kStopString;
  if (!tail.empty()) {
    s.result.text += tail;
    if (s.on_token) s.on_token(kNoToken, tail);
  }
  s.result.stop_reason = reason;
  if (s.decoding) {
    s.result.timings.generation_seconds = s.clock.seconds();
  } else {  // cancelled during its prompt
    s.result.timings.prompt_tokens = s.prompt_done;
    s.result.timings.prompt_seconds = s.clock.seconds();
  }
  finished_.emplace_back(s.id, std::move(s.result));
  s.result = GenerationResult{};
  s.busy = false;
  s.decoding = false;
  s.cache.clear();
  const auto index = static_cast<std::size_t>(&s - slots_.data());
  admission_order_.erase(std::find(admission_order_.begin(), admission_order_.end(), index));
}

using BatchGenerator = BasicBatchGenerator<backend::cpu>;

// Compiled once for this project's own executables (instances/; see MOE_EXTERN_GRAPH in
// model/transformer.hpp).
#if defined(MOE_EXTERN_GRAPH)
extern template class BasicBatchGenerator<backend::cpu>;
extern template class BasicBatchGenerator<backend::reference>;
#endif
#if defined(MOE_EXTERN_GRAPH_CUDA)
extern template class BasicBatchGenerator<backend::cuda>;
#endif

}  // namespace moe
