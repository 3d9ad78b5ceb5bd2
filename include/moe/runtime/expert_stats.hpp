// Expert telemetry: the per-layer, per-expert routing counters a Workspace collects (tokens
// routed, routing-weight sums; kept in the backend's memory and read on demand) turned into the
// statistics a person watches: each expert's share of the routed slots, the activation rate
// (experts used at least once in the window), load imbalance (max/mean and the coefficient of
// variation of the per-expert counts) and the mean routing weight. Also their JSON form, the
// Prometheus series and the layers x experts heatmap as SVG (runtime/expert_heatmap.hpp).
#pragma once

#include "moe/core/tensor.hpp"
#include "moe/model/workspace.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <utility>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

namespace moe {

// A copy of the counters (a window is the difference of two copies).
struct ExpertCounts {
  index_t n_layers = 0;
  index_t n_experts = 0;
  std::vector<std::uint64_t> tokens;  // [n_layers · n_experts] layer-major
  std::vector<double> weight_sum;     // [n_layers · n_experts]
  std::vector<bool> moe_layer;        // [n_layers]: the layer routes (dense layers are left out)
  // Optional: [n_layers · n_experts · n_experts] tokens that chose both experts (a · E + b), when
  // the workspace's co-activation telemetry was on; empty otherwise.
  std::vector<std::uint64_t> coactivation;

  static ExpertCounts from(const ExpertUsage& u, std::vector<bool> moe_layers = {}) {
    ExpertCounts c;
    c.n_layers = u.n_layers();
    c.n_experts = u.n_experts();
    c.tokens.resize(c.n_layers * c.n_experts);
    c.weight_sum.resize(c.n_layers * c.n_experts);
    for (index_t l = 0; l < c.n_layers; ++l) {
      for (index_t e = 0; e < c.n_experts; ++e) {
        c.tokens[l * c.n_experts + e] = u.count(l, e);
        c.weight_sum[l * c.n_experts + e] = u.weight_sum(l, e);
      }
    }
    c.moe_layer = std::move(moe_layers);
    if (c.moe_layer.size() != c.n_layers) {  // unknown: the layers that routed anything
      c.moe_layer.assign(c.n_layers, false);
      for (index_t l = 0; l < c.n_layers; ++l) {
        for (index_t e = 0; e < c.n_experts; ++e) c.moe_layer[l] = c.moe_layer[l] || c.tokens[l * c.n_experts + e] > 0;
      }
    }
    return c;
  }

  // What was counted after `before` (same shape; counters only grow between resets).
  ExpertCounts since(const ExpertCounts& before) const {
    ExpertCounts d = *this;
    if (before.tokens.size() != tokens.size()) return d;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      d.tokens[i] = tokens[i] >= before.tokens[i] ? tokens[i] - before.tokens[i] : tokens[i];
      d.weight_sum[i] = tokens[i] >= before.tokens[i] ? weight_sum[i] - before.weight_sum[i] : weight_sum[i];
    }
    if (before.coactivation.size() == coactivation.size()) {
      for (std::size_t i = 0; i < coactivation.size(); ++i) {
        if (coactivation[i] >= before.coactivation[i]) d.coactivation[i] = coactivation[i] - before.coactivation[i];
      }
    }
    return d;
  }
};

// The MoE layers of a model (for ExpertCounts::from).
template <class Model>
std::vector<bool> moe_layers(const Model& model) {
  std::vector<bool> out;
  for (const auto& L : model.weights().layers) out.push_back(L.moe);
  return out;
}

struct LayerExpertStats {
  index_t layer = 0;
  std::uint64_t routed = 0;             // (token, expert) assignments in the window
  std::vector<std::uint64_t> tokens;    // [n_experts]
  std::vector<double> share;            // [n_experts] tokens / routed (0 when nothing routed)
  std::vector<double> mean_weight;      // [n_experts] weight_sum / tokens (0 for an unused expert)
  index_t active_experts = 0;           // experts with at least one token
  double activation_rate = 0.0;         // active_experts / n_experts
  double max_over_mean = 0.0;           // max count / mean count (1 = perfectly balanced)
  double cv = 0.0;                      // population standard deviation / mean of the counts
};

struct ExpertStats {
  index_t n_experts = 0;
  std::vector<LayerExpertStats> layers;  // MoE layers only, in layer order
};

inline ExpertStats expert_stats(const ExpertCounts& c) {
  ExpertStats s;
  s.n_experts = c.n_experts;
  for (index_t l = 0; l < c.n_layers; ++l) {
    if (l < c.moe_layer.size() && !c.moe_layer[l]) continue;
    LayerExpertStats L;
    L.layer = l;
    const index_t E = c.n_experts;
    L.tokens.assign(c.tokens.begin() + l * E, c.tokens.begin() + (l + 1) * E);
    L.share.assign(E, 0.0);
    L.mean_weight.assign(E, 0.0);
    double sum = 0.0, sum_sq = 0.0, max_count = 0.0;
    for (index_t e = 0; e < E; ++e) {
      const auto n = static_cast<double>(L.tokens[e]);
      L.routed += L.tokens[e];
      sum += n;
      sum_sq += n * n;
      max_count = std::max(max_count, n);
      if (L.tokens[e] > 0) {
        ++L.active_experts;
        L.mean_weight[e] = c.weight_sum[l * E + e] / n;
      }
    }
    if (E > 0) {
      L.activation_rate = static_cast<double>(L.active_experts) / static_cast<double>(E);
      const double mean = sum / static_cast<double>(E);
      if (mean > 0) {
        for (index_t e = 0; e < E; ++e) L.share[e] = static_cast<double>(L.tokens[e]) / sum;
        L.max_over_mean = max_count / mean;
        const double var = std::max(0.0, sum_sq / static_cast<double>(E) - mean * mean);
        L.cv = std::sqrt(var) / mean;
      }
    }
    s.layers.push_back(std::move(L));
  }
  return s;
}

// {"n_experts", "layers": [{"layer", "routed", "activation_rate", "active_experts",
// "max_over_mean", "cv", "tokens": [...], "share": [...], "mean_weight": [...]}]}.
inline nlohmann::json expert_stats_json(const ExpertStats& s) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& L : s.layers) {
    layers.push_back({{"layer", L.layer},
                      {"routed", L.routed},
                      {"active_experts", L.active_experts},
                      {"activation_rate", L.activation_rate},
                      {"max_over_mean", L.max_over_mean},
                      {"cv", L.cv},
                      {"tokens", L.tokens},
                      {"share", L.share},
                      {"mean_weight", L.mean_weight}});
  }
  return {{"n_experts", s.n_experts}, {"layers", std::move(layers)}};
}

// The expert pairs chosen together most often, per MoE layer: {"layers": [{"layer", "pairs":
// [{"experts": [a, b], "tokens", "lift"}]}]}, at most `top` pairs a layer, most frequent first
// (ties: lower ids). lift = tokens · T / (tokens_a · tokens_b), T = the layer's routed slots /
// top_k: 1 when the two are chosen independently, above 1 when they go together. Empty
// "layers" when no co-activation counts were collected.
inline nlohmann::json coactivation_json(const ExpertCounts& c, index_t top_k, std::size_t top = 16) {
  nlohmann::json layers = nlohmann::json::array();
  const index_t E = c.n_experts;
  if (c.coactivation.size() != c.n_layers * E * E || top_k == 0) return {{"layers", layers}};
  for (index_t l = 0; l < c.n_layers; ++l) {
    if (l < c.moe_layer.size() && !c.moe_layer[l]) continue;
    const std::uint64_t* m = c.coactivation.data() + l * E * E;
    const std::uint64_t* n = c.tokens.data() + l * E;
    double routed = 0;
    for (index_t e = 0; e < E; ++e) routed += static_cast<double>(n[e]);
    const double tokens = routed / static_cast<double>(top_k);
    std::vector<std::pair<index_t, index_t>> pairs;
    for (index_t a = 0; a < E; ++a) {
      for (index_t b = a + 1; b < E; ++b) {
        if (m[a * E + b] > 0) pairs.emplace_back(a, b);
      }
    }
    const std::size_t keep = std::min(top, pairs.size());
    std::partial_sort(pairs.begin(), pairs.begin() + static_cast<std::ptrdiff_t>(keep), pairs.end(),
                      [&](const auto& x, const auto& y) {
                        const auto cx = m[x.first * E + x.second], cy = m[y.first * E + y.second];
                        return cx != cy ? cx > cy : x < y;
                      });
    nlohmann::json out = nlohmann::json::array();
    for (std::size_t i = 0; i < keep; ++i) {
      const auto [a, b] = pairs[i];
      const double both = static_cast<double>(m[a * E + b]);
      const double expect = static_cast<double>(n[a]) * static_cast<double>(n[b]);
      out.push_back({{"experts", {a, b}}, {"tokens", m[a * E + b]}, {"lift", expect > 0 ? both * tokens / expect : 0.0}});
    }
    layers.push_back({{"layer", l}, {"pairs", std::move(out)}});
  }
  return {{"layers", std::move(layers)}};
}

}  // namespace moe
