// Elastic experts: a per-row budget that drops some of the routed experts the router chose, after
// routing and before the dispatch, so the dropped experts are never computed. Two rules, applied
// together: a top-k override (keep the first k' <= top_k experts in the router's ranking order) and
// threshold reduction as ik_llama.cpp's "smart expert reduction" (-ser Kmin,t) describes it: drop a
// kept expert whose weight is below t x the largest kept weight, keeping at least min_k.
//
// Renormalisation (the documented choice): when a row drops experts, its kept weights are scaled
// by (sum of the top_k weights) / (sum of the kept weights), so the routed output keeps the mass
// the router gave it, if and only if `renormalize` is set. ExpertBudget::renormalize defaults to
// kAuto, which resolves to "scale" for routers that normalise their chosen weights
// (norm_topk_prob, and GPT-OSS's softmax over the chosen logits) and to "keep the weights" for the
// others (OLMoE, Qwen2-MoE without norm_topk_prob, DeepSeek-V2): that way a top-k override gives
// what the model's own router would give with num_experts_per_tok = k' (up to rounding).
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>

namespace moe::kernels {

// One row's budget as the kernels read it (trivially copyable: uploaded to a device as is).
struct ExpertBudgetRow {
  std::int32_t top_k = 0;        // experts kept at most (already clamped to [1, top_k])
  std::int32_t min_k = 1;        // kept whatever their weight, in [1, top_k]
  float threshold = 0.0f;        // relative to the largest kept weight, in [0, 1]
  std::int32_t renormalize = 0;  // 1: scale the kept weights to the routed mass of all top_k
};

// A budget as a caller states it (GenerationOptions, a server request): 0 / defaults mean "as the
// model routes". Checked by validate(), turned into a kernel row by resolve().
struct ExpertBudget {
  enum class Renormalize : std::uint8_t { kAuto, kAlways, kNever };
  std::int32_t top_k = 0;    // use at most this many routed experts (0: the model's top_k)
  float threshold = 0.0f;    // drop experts below threshold x the top weight (0: off), in [0, 1]
  std::int32_t min_k = 0;    // keep at least this many under the threshold (0: 1)
  Renormalize renormalize = Renormalize::kAuto;

  // Whether it changes anything for a model routing model_top_k experts.
  bool active(index_t model_top_k) const noexcept {
    return (top_k > 0 && top_k < static_cast<std::int64_t>(model_top_k)) || threshold > 0.0f;
  }
  // Throws kInvalidArgument naming `source` and the option for values outside their ranges.
  void validate(index_t model_top_k_in, std::string_view source) const {
    const auto model_top_k = static_cast<std::int64_t>(model_top_k_in);
    require(top_k >= 0 && top_k <= model_top_k, ErrorCode::kInvalidArgument,
            "{}: expert top_k = {} must be in [1, {}] (the model routes {} experts; 0 = all)", source, top_k,
            model_top_k, model_top_k);
    require(std::isfinite(threshold) && threshold >= 0.0f && threshold <= 1.0f, ErrorCode::kInvalidArgument,
            "{}: expert threshold = {} must be in [0, 1]", source, threshold);
    require(min_k >= 0 && min_k <= model_top_k, ErrorCode::kInvalidArgument,
            "{}: expert min_k = {} must be in [1, {}] (0 = 1)", source, min_k, model_top_k);
  }
  // The kernel row for a router of model_top_k experts; normalizing_router: the router divides
  // its chosen weights by their sum (norm_topk_prob) or softmaxes over them (GPT-OSS).
  ExpertBudgetRow resolve(index_t model_top_k, bool normalizing_router) const noexcept;
};

namespace detail {

// Applies one row's budget to ids / weights [k] in place: dropped slots get id -1 and weight 0.
// Returns the number of experts kept.
inline std::int32_t limit_row(const ExpertBudgetRow& b, std::int32_t* ids, std::ptrdiff_t ids_stride, float* weights,
                              std::ptrdiff_t w_stride, std::int32_t k) {
  const std::int32_t keep = std::clamp<std::int32_t>(b.top_k, 1, k);
  const std::int32_t min_k = std::clamp<std::int32_t>(b.min_k, 1, keep);
  float w_max = weights[0];
  for (std::int32_t j = 1; j < keep; ++j) w_max = std::max(w_max, weights[j * w_stride]);
  const float cut = b.threshold * w_max;
  float sum_all = 0.0f, sum_kept = 0.0f;
  std::int32_t kept = 0;
  for (std::int32_t j = 0; j < k; ++j) {
    const float w = weights[j * w_stride];
    sum_all += w;
    // NaN weights are kept (never silently dropped): the comparison below is false for them.
    const bool drop = j >= keep || (j >= min_k && w < cut);
    if (drop) {
      ids[j * ids_stride] = -1;
      weights[j * w_stride] = 0.0f;
    } else {
      sum_kept += w;
      ++kept;
    }
  }
  if (b.renormalize != 0 && kept < k && sum_kept != 0.0f) {
    const float scale = sum_all / sum_kept;
    for (std::int32_t j = 0; j < k; ++j) {
      if (ids[j * ids_stride] >= 0) weights[j * w_stride] *= scale;
    }
  }
  return kept;
}

}  // namespace detail

inline ExpertBudgetRow ExpertBudget::resolve(index_t model_top_k, bool normalizing_router) const noexcept {
  ExpertBudgetRow r;
  const auto k = static_cast<std::int32_t>(model_top_k);
  r.top_k = top_k > 0 ? std::min(top_k, k) : k;
  r.min_k = std::clamp<std::int32_t>(min_k, 1, r.top_k);
  r.threshold = threshold;
  r.renormalize = renormalize == Renormalize::kAlways || (renormalize == Renormalize::kAuto && normalizing_router);
  return r;
}

// Applies budget[t] to row t of the router's output. budget [n], ids / weights [n, top_k] (the
// route kernel's; updated in place: a dropped slot's id becomes -1, its weight 0). bucket_by_expert
// then leaves dropped slots out of every expert's bucket.
inline void limit_experts(backend::reference, View<const ExpertBudgetRow, 1> budget, View<std::int32_t, 2> ids,
                          View<float, 2> weights) {
  require(budget.extent(0) == ids.extent(0) && weights.extent(0) == ids.extent(0) &&
              weights.extent(1) == ids.extent(1) && ids.extent(1) > 0,
          ErrorCode::kInvalidArgument, "limit_experts: {} budgets, ids [{}, {}], weights [{}, {}]", budget.extent(0),
          ids.extent(0), ids.extent(1), weights.extent(0), weights.extent(1));
  const auto k = static_cast<std::int32_t>(ids.extent(1));
  for (index_t t = 0; t < ids.extent(0); ++t) {
    detail::limit_row(budget[t], &ids(t, 0), ids.stride(1), &weights(t, 0), weights.stride(1), k);
  }
}

}  // namespace moe::kernels

namespace moe {
using kernels::ExpertBudget;
}  // namespace moe
