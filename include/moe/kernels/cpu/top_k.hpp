// Top-k selection in O(n log k) with a bounded heap (detail::select_top_k), same total order as
// the reference.
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
  detail::select_top_k(scores, ids);
  for (std::size_t r = 0; r < ids.size(); ++r) values[r] = scores[static_cast<std::size_t>(ids[r])];
}

}  // namespace moe::kernels
