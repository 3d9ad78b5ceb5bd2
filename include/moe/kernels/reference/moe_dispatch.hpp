// Expert dispatch of a MoE layer (the oracle and the host implementation): bucket the (token,
// choice) slots by expert, so that each chosen expert runs one GEMM over all of its tokens, and
// combine the weighted expert outputs back per token in expert order, as transformers' index_add
// loop over experts does.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/arguments.hpp"

#include <algorithm>
#include <cstdint>

namespace moe::kernels {

// ids, weights [n, top_k] (router output; ids in [0, n_experts)). Writes a counting sort of the
// n·top_k slots, stable in token order: expert e owns slots [offsets[e], offsets[e+1]), slot s
// holds token slot_token[s] with mixing weight slot_weight[s]. offsets [n_experts + 1],
// slot_token, slot_weight [n·top_k]. usage [n_experts] (or [0]) counts the tokens routed to each
// expert (accumulated across calls).
inline void bucket_by_expert(backend::reference, View<const std::int32_t, 2> ids, View<const float, 2> weights,
                             View<std::int32_t, 1> offsets, View<std::int32_t, 1> slot_token,
                             View<float, 1> slot_weight, View<std::uint64_t, 1> usage) {
  const index_t n = ids.extent(0), k = ids.extent(1), n_experts = offsets.extent(0) - 1;
  require(offsets.extent(0) >= 1 && weights.extent(0) == n && weights.extent(1) == k &&
              slot_token.extent(0) >= n * k && slot_weight.extent(0) >= n * k &&
              (usage.extent(0) == 0 || usage.extent(0) == n_experts),
          ErrorCode::kInvalidArgument, "bucket_by_expert: ids [{}, {}], {} offsets, {} slots, {} usage counters", n, k,
          offsets.extent(0), slot_token.extent(0), usage.extent(0));
  for (index_t e = 0; e <= n_experts; ++e) offsets[e] = 0;
  for (index_t t = 0; t < n; ++t) {
    for (index_t j = 0; j < k; ++j) ++offsets[static_cast<index_t>(ids(t, j)) + 1];
  }
  if (usage.extent(0) != 0) {
    for (index_t e = 0; e < n_experts; ++e) usage[e] += static_cast<std::uint64_t>(offsets[e + 1]);
  }
  for (index_t e = 0; e < n_experts; ++e) offsets[e + 1] += offsets[e];  // offsets[e] = first slot of e
  for (index_t t = 0; t < n; ++t) {
    for (index_t j = 0; j < k; ++j) {
      const auto e = static_cast<index_t>(ids(t, j));
      const auto slot = static_cast<index_t>(offsets[e]++);
      slot_token[slot] = static_cast<std::int32_t>(t);
      slot_weight[slot] = weights(t, j);
    }
  }
  // offsets[e] is now the end of e's bucket = the start of e + 1's: shift back by one.
  for (index_t e = n_experts; e > 0; --e) offsets[e] = offsets[e - 1];
  offsets[0] = 0;
}

// y[t, :] = Σ over the slots s of token t, in slot (= expert) order, of slot_weight[s] · ys[s, :].
// ys [slots, d] expert outputs, slot_token / slot_weight [slots], y [n, d] (overwritten).
inline void combine_experts(backend::reference, View<const float, 2> ys, View<const std::int32_t, 1> slot_token,
                            View<const float, 1> slot_weight, View<float, 2> y) {
  require(ys.extent(1) == y.extent(1) && slot_token.extent(0) >= ys.extent(0) && slot_weight.extent(0) >= ys.extent(0),
          ErrorCode::kInvalidArgument, "combine_experts: ys [{}, {}], {} slot tokens, y [{}, {}]", ys.extent(0),
          ys.extent(1), slot_token.extent(0), y.extent(0), y.extent(1));
  for (index_t t = 0; t < y.extent(0); ++t) std::fill_n(&y(t, 0), y.extent(1), 0.0f);
  for (index_t s = 0; s < ys.extent(0); ++s) {
    float* dst = &y(static_cast<index_t>(slot_token[s]), 0);
    const float* src = &ys(s, 0);
    const float w = slot_weight[s];
    for (index_t i = 0; i < y.extent(1); ++i) dst[i] += src[i] * w;
  }
}

}  // namespace moe::kernels
