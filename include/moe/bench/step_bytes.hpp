// Bytes one batched decode step reads (the roofline of batched decode, used by bench_model and
// moe-bench).
#pragma once

#include <moe/model/weights.hpp>

#include <cmath>
#include <cstddef>

namespace moe::bench {

// Bytes one decode step of `batch` sequences reads: every dense weight once, and of each MoE
// layer's routed experts the expected number that at least one of the batch's batch·top_k picks
// selects, E·(1 - (1 - k/E)^batch) (routing of random weights is close to uniform), plus the
// output head and one embedding row per sequence. Batch 1 gives the per-token bytes of
// model::weight_bytes.
template <class S>
double step_bytes(const moe::model::ModelWeights<S>& w, moe::index_t top_k, moe::index_t batch) {
  double bytes = 0;
  std::size_t sum = 0;
  const auto count = [&sum](const char*, const auto& t) {
    sum += t.empty() ? 0 : t.bytes();
    return t;
  };
  for (const auto& L : w.layers) {
    sum = 0;
    (void)L.moe_weights.experts.transform(count);
    const double experts = static_cast<double>(sum);
    sum = 0;
    (void)L.transform(count);
    bytes += static_cast<double>(sum) - experts;
    const double E = static_cast<double>(L.moe_weights.experts.n_experts);
    if (L.moe && E > 0) {
      const double touched = E * (1.0 - std::pow(1.0 - static_cast<double>(top_k) / E, static_cast<double>(batch)));
      bytes += experts / E * touched;
    }
  }
  bytes += static_cast<double>(w.lm_head.bytes() + w.final_norm.bytes()) +
           static_cast<double>(batch) * static_cast<double>(format_row_bytes(w.embed.dtype, w.embed.cols));
  return bytes;
}

}  // namespace moe::bench
