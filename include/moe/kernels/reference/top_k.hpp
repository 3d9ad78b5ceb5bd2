// Scalar top-k selection (the oracle) with a total, deterministic order.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"

#include <cmath>
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
