// Run statistics: prompt and generation throughput, and which experts each MoE layer used most
// (from the per-layer token counts a Workspace collects).
#pragma once

#include "moe/core/tensor.hpp"
#include "moe/model/workspace.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace moe {

// Wall-clock seconds since construction or the last restart().
class Stopwatch {
 public:
  Stopwatch() noexcept : start_(clock::now()) {}
  void restart() noexcept { start_ = clock::now(); }
  double seconds() const noexcept { return std::chrono::duration<double>(clock::now() - start_).count(); }

 private:
  using clock = std::chrono::steady_clock;
  clock::time_point start_;
};

struct GenerationTimings {
  index_t prompt_tokens = 0;      // tokens fed by prefill
  double prompt_seconds = 0.0;    // wall time of the prefill passes
  index_t generated_tokens = 0;   // tokens sampled (including a final EOS that ended the run)
  double generation_seconds = 0.0;  // wall time from the end of prefill to the end of the run

  double prompt_tokens_per_second() const noexcept {
    return prompt_seconds > 0.0 ? static_cast<double>(prompt_tokens) / prompt_seconds : 0.0;
  }
  double generation_tokens_per_second() const noexcept {
    return generation_seconds > 0.0 ? static_cast<double>(generated_tokens) / generation_seconds : 0.0;
  }
};

// One expert's share of the routed token slots of a layer.
struct ExpertShare {
  std::int32_t expert = 0;
  double fraction = 0.0;  // of all (token, slot) assignments in that layer, in [0, 1]
};

// The k experts with the most assignments among `counts` ([n_experts] of one layer), most used
// first, ties by lower expert id; experts with zero count are left out. Empty if nothing was
// routed.
template <class Count>
std::vector<ExpertShare> top_experts(std::span<const Count> counts, std::size_t k) {
  double total = 0.0;
  for (const Count c : counts) total += static_cast<double>(c);
  std::vector<ExpertShare> shares;
  if (total <= 0.0) return shares;
  for (std::size_t e = 0; e < counts.size(); ++e) {
    if (counts[e] > 0) shares.push_back({static_cast<std::int32_t>(e), static_cast<double>(counts[e]) / total});
  }
  std::sort(shares.begin(), shares.end(), [](const ExpertShare& a, const ExpertShare& b) {
    return a.fraction != b.fraction ? a.fraction > b.fraction : a.expert < b.expert;
  });
  if (shares.size() > k) shares.resize(k);
  return shares;
}

// "e3 31%, e7 22%, e0 12%".
inline std::string format_expert_shares(const std::vector<ExpertShare>& shares) {
  std::string out;
  for (const auto& s : shares) {
    if (!out.empty()) out += ", ";
    out += fmt::format("e{} {:.0f}%", s.expert, s.fraction * 100.0);
  }
  return out;
}

// One MoE layer's most used experts.
struct LayerExpertUsage {
  index_t layer = 0;
  std::uint64_t assignments = 0;  // (token, slot) pairs routed in this layer
  std::vector<ExpertShare> top;
};

// The k most used experts of every layer that routed anything (dense layers are left out), in
// layer order, from the counters a Workspace collected since its last reset_expert_usage().
inline std::vector<LayerExpertUsage> expert_usage_report(const ExpertUsage& usage, std::size_t k) {
  std::vector<LayerExpertUsage> out;
  for (index_t l = 0; l < usage.n_layers(); ++l) {
    const std::span<const std::uint64_t> counts = usage.layer(l);
    std::uint64_t total = 0;
    for (const std::uint64_t c : counts) total += c;
    if (total == 0) continue;
    out.push_back({l, total, top_experts(counts, k)});
  }
  return out;
}

}  // namespace moe
