// Scalar top-k selection (the oracle) with a total, deterministic order.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>

namespace moe::kernels {

namespace detail {

// The ranking every top_k backend follows: higher score first; equal scores: lower index first;
// NaN below everything (-inf included); NaNs among themselves by index. This is a strict total
// order on indices, so the selected set and its order are unique.
inline bool ranks_before(float score_a, std::size_t index_a, float score_b,
                         std::size_t index_b) noexcept {
  const bool nan_a = std::isnan(score_a), nan_b = std::isnan(score_b);
  if (nan_a != nan_b) return nan_b;
  if (!nan_a && score_a != score_b) return score_a > score_b;
  return index_a < index_b;
}

inline void check_top_k(std::span<const float> scores, std::span<std::int32_t> ids,
                        std::span<float> values) {
  require(ids.size() <= scores.size(), ErrorCode::kInvalidArgument,
          "top_k: k = {} exceeds the number of scores {}", ids.size(), scores.size());
  require(values.size() == ids.size(), ErrorCode::kInvalidArgument,
          "top_k: ids has {} entries but values has {}", ids.size(), values.size());
  require(scores.size() <= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()),
          ErrorCode::kInvalidArgument, "top_k: {} scores do not fit int32 ids", scores.size());
}

// The k = ids.size() best indices of `scores` in the ranking above, best first, in
// O(n log k) time and no memory beyond `ids`: ids holds a binary heap of the best k seen so far
// with the worst of them on top, and each score that ranks before the top replaces it. This is
// the one selection routine of the library (routers, the cpu top_k kernel); a router asked for
// top_k = n_experts = 8192 stays at ~10^5 comparisons per token. Requires k <= scores.size() and
// scores.size() to fit int32 (check_top_k).
inline void select_top_k(std::span<const float> scores, std::span<std::int32_t> ids) noexcept {
  const std::size_t k = ids.size();
  if (k == 0) return;
  const auto before = [&](std::int32_t a, std::int32_t b) {
    return ranks_before(scores[static_cast<std::size_t>(a)], static_cast<std::size_t>(a),
                        scores[static_cast<std::size_t>(b)], static_cast<std::size_t>(b));
  };
  // With `before` as the heap's "less", the heap's front is the worst-ranked element.
  std::size_t filled = 0;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    const auto id = static_cast<std::int32_t>(i);
    if (filled < k) {
      ids[filled++] = id;
      std::push_heap(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(filled), before);
    } else if (before(id, ids[0])) {
      std::pop_heap(ids.begin(), ids.end(), before);
      ids[k - 1] = id;
      std::push_heap(ids.begin(), ids.end(), before);
    }
  }
  std::sort_heap(ids.begin(), ids.end(), before);  // ascending in `before`: best first
}

}  // namespace detail

// Writes the k = ids.size() best scores, best first: ids[r] = index into scores, values[r] =
// scores[ids[r]]. Order: descending; ties: lower index first; NaN ranks below everything.
// k > scores.size() or values.size() != k throws moe::Error(kInvalidArgument).
// Obviously-correct O(n·k) selection: pick r is the best element ranking strictly after pick r-1.
inline void top_k(backend::reference, std::span<const float> scores, std::span<std::int32_t> ids,
                  std::span<float> values) {
  detail::check_top_k(scores, ids, values);
  for (std::size_t r = 0; r < ids.size(); ++r) {
    std::size_t best = scores.size();
    for (std::size_t i = 0; i < scores.size(); ++i) {
      if (r > 0) {
        const auto prev = static_cast<std::size_t>(ids[r - 1]);
        if (!detail::ranks_before(scores[prev], prev, scores[i], i)) continue;  // already taken
      }
      if (best == scores.size() || detail::ranks_before(scores[i], i, scores[best], best)) best = i;
    }
    ids[r] = static_cast<std::int32_t>(best);
    values[r] = scores[best];
  }
}

}  // namespace moe::kernels
