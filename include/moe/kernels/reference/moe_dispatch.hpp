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

// Telemetry: weight_sum[e] += the routing weights in expert e's bucket (offsets [n_experts + 1],
// slot_weight [>= offsets[n_experts]], bucket_by_expert's), summed in slot order; weight_sum
// [n_experts] accumulates across calls (double: millions of tokens stay exact to ~1e-9).
inline void accumulate_expert_weights(backend::reference, View<const std::int32_t, 1> offsets,
                                      View<const float, 1> slot_weight, View<double, 1> weight_sum) {
  require(offsets.extent(0) == weight_sum.extent(0) + 1, ErrorCode::kInvalidArgument,
          "accumulate_expert_weights: {} offsets for {} experts", offsets.extent(0), weight_sum.extent(0));
  for (index_t e = 0; e < weight_sum.extent(0); ++e) {
    double sum = 0.0;
    for (auto s = static_cast<index_t>(offsets[e]); s < static_cast<index_t>(offsets[e + 1]); ++s) sum += slot_weight[s];
    weight_sum[e] += sum;
  }
}

// ids, weights [n, top_k] (router output; ids in [0, n_experts)). Writes a counting sort of the
// n·top_k slots, stable in token order: expert e owns slots [offsets[e], offsets[e+1]), slot s
// holds token slot_token[s] with mixing weight slot_weight[s]. offsets [n_experts + 1],
// slot_token, slot_weight [n·top_k]. usage [n_experts] (or [0]) counts the tokens routed to each
// expert (accumulated across calls). A negative id (a slot an expert budget dropped) is in no
// bucket: such slots fill [offsets[n_experts], n·top_k) with slot_token -1 and weight 0, which
// gather_rows and combine_experts skip. weight_sum [n_experts] (or [0]): the telemetry of
// accumulate_expert_weights over the buckets written, in the same call.
inline void bucket_by_expert(backend::reference, View<const std::int32_t, 2> ids, View<const float, 2> weights,
                             View<std::int32_t, 1> offsets, View<std::int32_t, 1> slot_token,
                             View<float, 1> slot_weight, View<std::uint64_t, 1> usage,
                             View<double, 1> weight_sum = {}) {
  const index_t n = ids.extent(0), k = ids.extent(1), n_experts = offsets.extent(0) - 1;
  require(offsets.extent(0) >= 1 && weights.extent(0) == n && weights.extent(1) == k &&
              slot_token.extent(0) >= n * k && slot_weight.extent(0) >= n * k &&
              (usage.extent(0) == 0 || usage.extent(0) == n_experts) &&
              (weight_sum.extent(0) == 0 || weight_sum.extent(0) == n_experts),
          ErrorCode::kInvalidArgument,
          "bucket_by_expert: ids [{}, {}], {} offsets, {} slots, {} usage counters, {} weight sums", n, k,
          offsets.extent(0), slot_token.extent(0), usage.extent(0), weight_sum.extent(0));
  for (index_t e = 0; e <= n_experts; ++e) offsets[e] = 0;
  bool dropped = false;  // a slot an expert budget dropped (id -1; kernels/reference/expert_budget.hpp)
  for (index_t t = 0; t < n; ++t) {
    for (index_t j = 0; j < k; ++j) {
      const std::int32_t e = ids(t, j);
      if (e < 0) {
        dropped = true;
        continue;
      }
      ++offsets[static_cast<index_t>(e) + 1];
    }
  }
  if (usage.extent(0) != 0) {
    for (index_t e = 0; e < n_experts; ++e) usage[e] += static_cast<std::uint64_t>(offsets[e + 1]);
  }
  for (index_t e = 0; e < n_experts; ++e) offsets[e + 1] += offsets[e];  // offsets[e] = first slot of e
  index_t tail = static_cast<index_t>(offsets[n_experts]);  // dropped slots go past every bucket
  for (index_t t = 0; t < n; ++t) {
    for (index_t j = 0; j < k; ++j) {
      if (dropped && ids(t, j) < 0) {
        slot_token[tail] = -1;
        slot_weight[tail++] = 0.0f;
        continue;
      }
      const auto e = static_cast<index_t>(ids(t, j));
      const auto slot = static_cast<index_t>(offsets[e]++);
      slot_token[slot] = static_cast<std::int32_t>(t);
      slot_weight[slot] = weights(t, j);
    }
  }
  // offsets[e] is now the end of e's bucket = the start of e + 1's: shift back by one.
  for (index_t e = n_experts; e > 0; --e) offsets[e] = offsets[e - 1];
  offsets[0] = 0;
  if (weight_sum.extent(0) != 0) {
    accumulate_expert_weights(backend::reference{}, View<const std::int32_t, 1>(offsets),
                              View<const float, 1>(slot_weight), weight_sum);
  }
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
    if (slot_token[s] < 0) continue;  // dropped by an expert budget (see bucket_by_expert)
    float* dst = &y(static_cast<index_t>(slot_token[s]), 0);
    const float* src = &ys(s, 0);
    const float w = slot_weight[s];
    for (index_t i = 0; i < y.extent(1); ++i) dst[i] += src[i] * w;
  }
}

// Telemetry: for every two distinct experts a, b one token was routed to (ids [n, top_k]; dropped
// slots, id -1, are skipped), counts[a · n_experts + b] and counts[b · n_experts + a] += 1.
// counts [n_experts²] accumulates across calls.
inline void accumulate_coactivation(backend::reference, View<const std::int32_t, 2> ids, View<std::uint64_t, 1> counts,
                                    index_t n_experts) {
  require(counts.extent(0) == n_experts * n_experts, ErrorCode::kInvalidArgument,
          "accumulate_coactivation: {} counters for {} experts", counts.extent(0), n_experts);
  const auto valid = [&](std::int32_t e) { return e >= 0 && static_cast<index_t>(e) < n_experts; };
  for (index_t t = 0; t < ids.extent(0); ++t) {
    for (index_t i = 0; i < ids.extent(1); ++i) {
      const std::int32_t a = ids(t, i);
      if (!valid(a)) continue;
      for (index_t j = i + 1; j < ids.extent(1); ++j) {
        const std::int32_t b = ids(t, j);
        if (!valid(b) || b == a) continue;
        ++counts[static_cast<index_t>(a) * n_experts + static_cast<index_t>(b)];
        ++counts[static_cast<index_t>(b) * n_experts + static_cast<index_t>(a)];
      }
    }
  }
}

}  // namespace moe::kernels
