// Perplexity of a model over a token sequence with the sliding-window scheme of the transformers
// perplexity guide (window W, stride S): with S < W every token after the first is scored
// exactly once, with at least W - S tokens of context (except near the start).
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/token_id.hpp"
#include "moe/core/tensor.hpp"
#include "moe/model/model.hpp"
#include "moe/runtime/expert_stats.hpp"
#include "moe/runtime/stats.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <span>

namespace moe {

struct PerplexityOptions {
  index_t window = 256;  // W: tokens per forward pass
  index_t stride = 128;  // S: start of window k is k*S (1 <= S <= W)
  ExpertBudget expert_budget{};  // elastic experts for every window (default: the model's routing)
};

struct PerplexityResult {
  double perplexity = 0.0;     // exp(nll_sum / tokens_scored)
  double nll_sum = 0.0;        // sum of -log p(t[j] | window context), natural log
  index_t tokens_scored = 0;   // N - 1 when S < W; N - windows when S == W
  index_t tokens_evaluated = 0;  // tokens fed through the model (overlaps counted again)
  index_t windows = 0;
  double seconds = 0.0;
  ExpertCounts expert_counts;  // tokens routed to each expert of each MoE layer over all windows
  double tokens_per_second() const noexcept { return seconds > 0 ? static_cast<double>(tokens_evaluated) / seconds : 0.0; }
};

// -log softmax(row)[target], computed in double: max-subtracted log-sum-exp.
inline double token_nll(std::span<const float> row, std::int32_t target) noexcept {
  double max_logit = -INFINITY;
  for (const float v : row) max_logit = std::max(max_logit, static_cast<double>(v));
  double sum = 0.0;
  for (const float v : row) sum += std::exp(static_cast<double>(v) - max_logit);
  return max_logit + std::log(sum) - static_cast<double>(row[static_cast<std::size_t>(target)]);
}

// tokens t[0..N); prev_end = 0; for begin = 0, S, 2S, ...: end = min(begin + W, N); the window
// t[begin:end] goes through the model in one pass (fresh cache), and each j in
// [max(prev_end, begin + 1), end) adds -log p(t[j]) from the logits at position j - 1;
// prev_end = end; stop when end == N. `on_window(done_tokens, N)` (optional) reports progress.
// Throws kInvalidArgument for fewer than 2 tokens, W < 2, S == 0 or S > W, an id outside the
// vocabulary; kInvalidArgument if W exceeds max_position_embeddings.
template <class Backend>
PerplexityResult perplexity(const BasicModel<Backend>& model, std::span<const std::int32_t> tokens,
                                   const PerplexityOptions& options = {},
                                   const std::function<void(index_t, index_t)>& on_window = {}) {
  return catch_as_error("perplexity", [&]() -> PerplexityResult {
    const auto& cfg = model.config();
    const index_t n = tokens.size();
    const index_t w = options.window;
    const index_t s = options.stride;
    require(n >= 2, ErrorCode::kInvalidArgument, "perplexity: need at least 2 tokens, got {}", n);
    require(w >= 2, ErrorCode::kInvalidArgument, "perplexity: window must be >= 2, got {}", w);
    require(s >= 1 && s <= w, ErrorCode::kInvalidArgument, "perplexity: stride must be in [1, window = {}], got {}", w, s);
    require(cfg.max_position_embeddings == 0 || w <= cfg.max_position_embeddings, ErrorCode::kInvalidArgument,
            "perplexity: window {} exceeds the model's max_position_embeddings {}", w, cfg.max_position_embeddings);
    for (const std::int32_t id : tokens) check_token_id(id, cfg.vocab_size, "perplexity");
    options.expert_budget.validate(cfg.top_k, "perplexity");
    const index_t capacity = std::min(w, n);
    auto cache = model.make_cache(capacity);
    auto ws = model.make_workspace(capacity);
    Tensor<float, 2> logits({capacity, cfg.vocab_size});  // [window tokens, vocab_size]

    PerplexityResult r;
    Stopwatch clock;
    index_t prev_end = 0;
    for (index_t begin = 0;; begin += s) {
      const index_t end = std::min(begin + w, n);
      cache.clear();
      const typename BasicModel<Backend>::SequenceChunk chunk{&cache, tokens.subspan(begin, end - begin),
                                                              options.expert_budget};
      model.forward(std::span<const typename BasicModel<Backend>::SequenceChunk>(&chunk, 1), ws, logits.view().slice(0, end - begin),
                    /*all_positions=*/true);
      for (index_t j = std::max(prev_end, begin + 1); j < end; ++j) {
        const std::span<const float> row(logits.data() + (j - 1 - begin) * cfg.vocab_size, cfg.vocab_size);
        r.nll_sum += token_nll(row, tokens[j]);
        ++r.tokens_scored;
      }
      r.tokens_evaluated += end - begin;
      ++r.windows;
      prev_end = end;
      if (on_window) on_window(end, n);
      if (end == n) break;
    }
    r.seconds = clock.seconds();
    r.expert_counts = ExpertCounts::from(ws.expert_usage(), moe_layers(model));
    r.perplexity = std::exp(r.nll_sum / static_cast<double>(r.tokens_scored));
    return r;
  });
}

// Compiled once for this project's own executables (instances/; see MOE_EXTERN_GRAPH in
// model/transformer.hpp).
#if defined(MOE_EXTERN_GRAPH)
extern template PerplexityResult perplexity<backend::cpu>(const BasicModel<backend::cpu>&, std::span<const std::int32_t>,
                                                         const PerplexityOptions&,
                                                         const std::function<void(index_t, index_t)>&);
extern template PerplexityResult perplexity<backend::reference>(const BasicModel<backend::reference>&, std::span<const std::int32_t>,
                                                         const PerplexityOptions&,
                                                         const std::function<void(index_t, index_t)>&);
#endif
#if defined(MOE_EXTERN_GRAPH_CUDA)
extern template PerplexityResult perplexity<backend::cuda>(const BasicModel<backend::cuda>&, std::span<const std::int32_t>,
                                                         const PerplexityOptions&,
                                                         const std::function<void(index_t, index_t)>&);
#endif

}  // namespace moe
