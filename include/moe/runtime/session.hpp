// BasicSession<Backend>: one sequence's state over a shared model of that backend (`Session` is
// the cpu one): its KV cache (n_ctx tokens), a workspace
// and the logits of the last position. prefill() feeds a prompt in one batched pass, decode()
// feeds one token; both return the next-token logits. A Session is used by one thread at a
// time; many Sessions on many threads may share one Model.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/limits.hpp"
#include "moe/core/tensor.hpp"
#include "moe/core/token_id.hpp"
#include "moe/model/model.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <span>
#include <utility>

namespace moe {

template <class Backend>
class BasicSession {
 public:
  using ModelType = BasicModel<Backend>;
  using Cache = typename ModelType::Cache;
  using Workspace = typename ModelType::Workspace;

  // A session of up to n_ctx tokens (1 <= n_ctx <= config().max_position_embeddings when that is
  // set, and <= limits::kMaxContext). Prompts are fed in passes of at most max_batch_tokens
  // tokens (0: min(n_ctx, 512)); the workspace is sized for that. Throws kInvalidArgument on bad
  // sizes or a null model, kOutOfMemory when the KV cache or workspace cannot be allocated.
  BasicSession(std::shared_ptr<const ModelType> model, index_t n_ctx, index_t max_batch_tokens = 0)
      : model_(std::move(model)) {
    catch_as_error("Session", [&] { init(n_ctx, max_batch_tokens); });
  }

  BasicSession(BasicSession&&) noexcept = default;
  BasicSession& operator=(BasicSession&&) noexcept = default;

  // Appends `tokens` at positions position()..position()+tokens.size()-1 in one forward pass per
  // max_batch_tokens tokens and returns the logits [vocab_size] of the last one (valid until the
  // next call). Errors leave the session unchanged: kContextOverflow if the tokens do not fit in
  // n_ctx, kInvalidArgument for an empty span or an id outside the vocabulary.
  std::span<const float> prefill(std::span<const std::int32_t> tokens) {
    return catch_as_error("Session::prefill", [&] { return prefill_tokens(tokens); });
  }

  // Appends one token and returns the next-token logits [vocab_size]. kContextOverflow when the
  // session already holds n_ctx tokens (the session is unchanged and stays usable).
  std::span<const float> decode(std::int32_t token) {
    return catch_as_error("Session::decode", [&] {
      check_fits(1);
      check_id(token);
      run(std::span<const std::int32_t>(&token, 1));
      return last_logits();
    });
  }

  // Forgets every token (the next prefill starts at position 0).
  void reset() noexcept { cache_.clear(); }

  // Forgets the tokens at positions n.. (n <= position()), e.g. to rewind a shared prefix.
  void truncate(index_t n) { cache_.truncate(n); }

  index_t position() const noexcept { return cache_.size(); }  // tokens held = next position
  index_t n_ctx() const noexcept { return n_ctx_; }
  index_t remaining() const noexcept { return n_ctx_ - cache_.size(); }
  index_t max_batch_tokens() const noexcept { return max_batch_tokens_; }
  index_t vocab_size() const noexcept { return vocab_size_; }

  const ModelType& model() const noexcept { return *model_; }
  const std::shared_ptr<const ModelType>& model_ptr() const noexcept { return model_; }
  Workspace& workspace() noexcept { return *workspace_; }
  const Workspace& workspace() const noexcept { return *workspace_; }
  const Cache& cache() const noexcept { return cache_; }

  // Elastic experts for this session's passes from now on (kernels/reference/expert_budget.hpp;
  // the default budget changes nothing). Throws kInvalidArgument for values out of range.
  void set_expert_budget(const ExpertBudget& budget) {
    budget.validate(model_->config().top_k, "Session::set_expert_budget");
    expert_budget_ = budget;
  }
  const ExpertBudget& expert_budget() const noexcept { return expert_budget_; }

  // Unmerged LoRA: this session's passes from now on run with the model's resident adapter
  // `name` ("" for the base model). Throws kInvalidArgument naming an unknown name and listing
  // the loaded ones (the session is unchanged). Switching mid-sequence is allowed: the cache
  // keeps what earlier passes computed with the adapter of their time.
  void set_adapter(std::string_view name) {
    adapter_index_ = name.empty() ? -1 : model_->adapter_index(name);
    adapter_ = std::string(name);
  }
  const std::string& adapter() const noexcept { return adapter_; }

  // The logits returned by the last prefill/decode.
  std::span<const float> last_logits() const noexcept { return {logits_.data(), vocab_size_}; }

 private:
  void init(index_t n_ctx, index_t max_batch_tokens);
  std::span<const float> prefill_tokens(std::span<const std::int32_t> tokens);
  void check_fits(index_t n) const {
    require(n <= n_ctx_ - cache_.size(), ErrorCode::kContextOverflow,
            "session holds {} of {} tokens; {} more do not fit", cache_.size(), n_ctx_, n);
  }
  void check_id(std::int32_t id) const { check_token_id(id, vocab_size_, "Session"); }
  void run(std::span<const std::int32_t> tokens);

  std::shared_ptr<const ModelType> model_;
  index_t n_ctx_ = 0;
  index_t max_batch_tokens_ = 0;
  index_t vocab_size_ = 0;
  Cache cache_;
  std::unique_ptr<Workspace> workspace_;  // heap-held: Session stays cheap to move
  Tensor<float, 2> logits_;               // [1, vocab_size]
  ExpertBudget expert_budget_;
  std::string adapter_;              // "" : the base model
  std::int32_t adapter_index_ = -1;  // its index among the model's adapters
};

template <class Backend>
void BasicSession<Backend>::init(index_t n_ctx, index_t max_batch_tokens) {
  require(model_ != nullptr, ErrorCode::kInvalidArgument, "Session: null model");
  const auto& cfg = model_->config();
  require(n_ctx >= 1, ErrorCode::kInvalidArgument, "Session: n_ctx must be >= 1, got {}", n_ctx);
  require(cfg.max_position_embeddings == 0 || n_ctx <= cfg.max_position_embeddings,
          ErrorCode::kInvalidArgument, "Session: n_ctx {} exceeds the model's max_position_embeddings {}",
          n_ctx, cfg.max_position_embeddings);
  require(n_ctx <= static_cast<index_t>(limits::kMaxContext), ErrorCode::kInvalidArgument,
          "Session: n_ctx {} exceeds the limit of {} tokens", n_ctx, limits::kMaxContext);
  n_ctx_ = n_ctx;
  max_batch_tokens_ = max_batch_tokens == 0 ? std::min<index_t>(n_ctx, 512) : std::min(max_batch_tokens, n_ctx);
  vocab_size_ = cfg.vocab_size;
  cache_ = model_->make_cache(n_ctx_);
  workspace_ = std::make_unique<Workspace>(model_->make_workspace(max_batch_tokens_));
  logits_ = Tensor<float, 2>({1, vocab_size_});
}

template <class Backend>
std::span<const float> BasicSession<Backend>::prefill_tokens(std::span<const std::int32_t> tokens) {
  require(!tokens.empty(), ErrorCode::kInvalidArgument, "Session::prefill: no tokens");
  check_fits(tokens.size());
  for (const std::int32_t id : tokens) check_id(id);
  const index_t start = cache_.size();
  try {
    for (index_t begin = 0; begin < tokens.size(); begin += max_batch_tokens_) {
      const index_t n = std::min(max_batch_tokens_, tokens.size() - begin);
      run(tokens.subspan(begin, n));
    }
  } catch (...) {
    cache_.truncate(start);  // a failing later chunk must not leave earlier ones behind
    throw;
  }
  return last_logits();
}

template <class Backend>
void BasicSession<Backend>::run(std::span<const std::int32_t> tokens) {
  const typename ModelType::SequenceChunk chunk{&cache_, tokens, expert_budget_, adapter_index_};
  model_->forward(std::span<const typename ModelType::SequenceChunk>(&chunk, 1), *workspace_, logits_.view(),
                  /*all_positions=*/false);
}

using Session = BasicSession<backend::cpu>;

// Compiled once for this project's own executables (instances/; see MOE_EXTERN_GRAPH in
// model/transformer.hpp).
#if defined(MOE_EXTERN_GRAPH)
extern template class BasicSession<backend::cpu>;
extern template class BasicSession<backend::reference>;
#endif
#if defined(MOE_EXTERN_GRAPH_CUDA)
extern template class BasicSession<backend::cuda>;
#endif

}  // namespace moe
