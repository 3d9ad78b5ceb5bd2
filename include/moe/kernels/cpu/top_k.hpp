// Top-k selection in one pass with a sorted insertion list: O(n) for the usual k << n (router
// scores over the experts), same total order as the reference.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/kernels/reference/top_k.hpp"

#include <cstdint>
#include <span>

namespace moe::kernels {

// Same contract as the reference: ids/values get the k = ids.size() best scores, best first;
// ties: lower index first; NaN below everything; k > scores.size() throws kInvalidArgument.
template <class Arch>
void top_k(backend::cpu_simd<Arch>, std::span<const float> scores, std::span<std::int32_t> ids,
           std::span<float> values) {
  detail::check_top_k(scores, ids, values);
  const std::size_t k = ids.size();
  if (k == 0) return;
  std::size_t filled = 0;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    const float s = scores[i];
    // Indices arrive in increasing order, so an equal score never displaces an earlier one.
    if (filled == k &&
        !detail::ranks_before(s, i, values[k - 1], static_cast<std::size_t>(ids[k - 1]))) {
      continue;
    }
    std::size_t pos = filled < k ? filled++ : k - 1;
    while (pos > 0 &&
           detail::ranks_before(s, i, values[pos - 1], static_cast<std::size_t>(ids[pos - 1]))) {
      ids[pos] = ids[pos - 1];
      values[pos] = values[pos - 1];
      --pos;
    }
    ids[pos] = static_cast<std::int32_t>(i);
    values[pos] = s;
  }
}

}  // namespace moe::kernels
