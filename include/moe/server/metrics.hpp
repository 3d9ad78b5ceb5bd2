// Server metrics: counters, gauges and latency histograms shared by the HTTP threads and the
// scheduling loop, rendered in the Prometheus text exposition format (version 0.0.4) for
// GET /metrics.
#pragma once

#include "moe/runtime/expert_heatmap.hpp"
#include "moe/runtime/expert_stats.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace moe::server {

// A histogram with fixed upper bounds (Prometheus' cumulative "le" buckets). Thread-safe.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {
    std::sort(bounds_.begin(), bounds_.end());
  }

  void observe(double v) {
    const std::lock_guard lock(mu_);
    const auto i = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
    ++counts_[i];
    sum_ += v;
    ++count_;
  }

  std::uint64_t count() const {
    const std::lock_guard lock(mu_);
    return count_;
  }

  // The q-quantile (q in [0, 1]) estimated as Prometheus' histogram_quantile does: linear inside
  // the bucket holding the rank; values past the last bound report that bound. 0 when empty.
  double quantile(double q) const {
    const std::lock_guard lock(mu_);
    if (count_ == 0) return 0.0;
    const double rank = q * static_cast<double>(count_);
    std::uint64_t below = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      if (static_cast<double>(below + counts_[i]) >= rank && counts_[i] > 0) {
        if (i == bounds_.size()) return bounds_.empty() ? 0.0 : bounds_.back();
        const double lo = i == 0 ? 0.0 : bounds_[i - 1];
        const double frac = (rank - static_cast<double>(below)) / static_cast<double>(counts_[i]);
        return lo + (bounds_[i] - lo) * std::clamp(frac, 0.0, 1.0);
      }
      below += counts_[i];
    }
    return bounds_.empty() ? 0.0 : bounds_.back();
  }

  // Appends the _bucket, _sum and _count lines of metric `name` (HELP/TYPE written by the caller).
  void render(std::string& out, const std::string& name) const {
    const std::lock_guard lock(mu_);
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < bounds_.size(); ++i) {
      cumulative += counts_[i];
      out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
    }
    out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n", name, count_);
    out += fmt::format("{}_sum {}\n{}_count {}\n", name, sum_, name, count_);
  }

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;  // [bounds + 1]: the last is past every bound
  double sum_ = 0.0;
  std::uint64_t count_ = 0;
};

// Bounds in seconds from 1 ms to 2 min, about three per decade.
inline std::vector<double> latency_bounds() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
}

// Everything GET /metrics reports. Counters and gauges are atomics; the HTTP threads count
// requests by route and status, the scheduling loop the rest.
struct ServerMetrics {
  std::atomic<std::uint64_t> prompt_tokens{0};      // prompt tokens prefilled
  std::atomic<std::uint64_t> generated_tokens{0};   // tokens sampled
  std::atomic<std::uint64_t> forward_passes{0};
  std::atomic<std::uint64_t> finished_requests{0};  // sequences that ended (any reason)
  std::atomic<std::uint64_t> cancelled_requests{0}; // by the client (disconnect) or a timeout
  std::atomic<std::uint64_t> rejected_queue_full{0};
  std::atomic<std::int64_t> queue_depth{0};         // sequences waiting for a slot
  std::atomic<std::int64_t> active_sequences{0};    // sequences in a slot
  std::atomic<std::int64_t> kv_tokens_reserved{0};  // sum of reservations in flight
  std::int64_t kv_tokens_budget = 0;
  std::atomic<std::int64_t> kv_tokens_allocated{0}; // tokens the slots' KV caches hold (<= budget)
  std::atomic<std::int64_t> kv_cache_bytes{0};      // their bytes
  std::int64_t slots = 0;

  Histogram time_to_first_token{latency_bounds()};
  Histogram inter_token_latency{latency_bounds()};
  Histogram request_latency{latency_bounds()};   // arrival to last token
  Histogram queue_wait{latency_bounds()};        // arrival to slot
  Histogram batch_size{{1, 2, 4, 8, 16, 32, 64, 128, 256}};  // sequences per forward pass

  // Expert telemetry: the scheduling loop publishes the workspace's counters (at most about once a
  // second: on a device backend each publication is one download); the series below are the
  // totals since start and a window of the last minute or so (snapshots kept every 10 s).
  static constexpr std::size_t kMaxExpertSeries = 4096;  // per-expert series only up to layers x experts
  static constexpr double kWindowSeconds = 60.0;

  void publish_experts(ExpertCounts total, std::chrono::steady_clock::time_point now) {
    const std::lock_guard lock(experts_mu_);
    if (snapshots_.empty() || now - snapshots_.back().first >= std::chrono::seconds(10)) {
      snapshots_.emplace_back(now, total);
      while (snapshots_.size() > 1 &&
             now - snapshots_[1].first >= std::chrono::duration<double>(kWindowSeconds)) {
        snapshots_.pop_front();
      }
    }
    window_ = total.since(snapshots_.front().second);
    window_seconds_ = std::chrono::duration<double>(now - snapshots_.front().first).count();
    experts_ = std::move(total);
  }
  bool has_expert_counts() const {
    const std::lock_guard lock(experts_mu_);
    return experts_.n_layers > 0 && experts_.n_experts > 0;
  }
  // The statistics of the window (everything since start while the window is still empty).
  ExpertStats expert_window_stats(double* seconds = nullptr) const {
    const std::lock_guard lock(experts_mu_);
    std::uint64_t routed = 0;
    for (const auto n : window_.tokens) routed += n;
    if (seconds != nullptr) *seconds = routed > 0 ? window_seconds_ : 0.0;
    return expert_stats(routed > 0 ? window_ : experts_);
  }
  ExpertStats expert_total_stats() const {
    const std::lock_guard lock(experts_mu_);
    return expert_stats(experts_);
  }
  std::string expert_heatmap() const {
    double seconds = 0.0;
    const ExpertStats s = expert_window_stats(&seconds);
    return expert_heatmap_svg(s, seconds > 0 ? fmt::format("Expert routing, last {:.0f} s", seconds)
                                             : std::string("Expert routing since start"));
  }

  void count_request(const std::string& route, int status) {
    const std::lock_guard lock(requests_mu_);
    ++requests_[{route, status}];
  }

  std::uint64_t requests(const std::string& route, int status) const {
    const std::lock_guard lock(requests_mu_);
    const auto it = requests_.find({route, status});
    return it == requests_.end() ? 0 : it->second;
  }

  // The Prometheus text format: HELP and TYPE lines, then samples; names prefixed moe_.
  std::string prometheus() const {
    std::string out;
    auto metric = [&](const char* name, const char* type, const char* help) {
      out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    };
    metric("moe_http_requests_total", "counter", "HTTP requests by route and status code.");
    {
      const std::lock_guard lock(requests_mu_);
      for (const auto& [key, n] : requests_) {
        out += fmt::format("moe_http_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
      }
    }
    auto scalar = [&](const char* name, const char* type, const char* help, auto value) {
      metric(name, type, help);
      out += fmt::format("{} {}\n", name, value);
    };
    scalar("moe_prompt_tokens_total", "counter", "Prompt tokens prefilled.", prompt_tokens.load());
    scalar("moe_generation_tokens_total", "counter", "Tokens generated.", generated_tokens.load());
    scalar("moe_forward_passes_total", "counter", "Forward passes of the batching loop.", forward_passes.load());
    scalar("moe_sequences_finished_total", "counter", "Sequences that ended, for any reason.", finished_requests.load());
    scalar("moe_sequences_cancelled_total", "counter", "Sequences ended by a client disconnect or a timeout.",
           cancelled_requests.load());
    scalar("moe_requests_rejected_queue_full_total", "counter", "Requests refused with 429 (queue full).",
           rejected_queue_full.load());
    scalar("moe_queue_depth", "gauge", "Sequences waiting for a slot.", queue_depth.load());
    scalar("moe_active_sequences", "gauge", "Sequences in a batch slot.", active_sequences.load());
    scalar("moe_batch_slots", "gauge", "Batch slots (sequences decoded together at most).", slots);
    scalar("moe_kv_tokens_reserved", "gauge", "KV-cache tokens reserved by the sequences in flight.",
           kv_tokens_reserved.load());
    scalar("moe_kv_tokens_budget", "gauge", "KV-cache token budget (--kv-tokens).", kv_tokens_budget);
    scalar("moe_kv_tokens_allocated", "gauge", "KV-cache tokens allocated in the slots' caches (at most the budget).",
           kv_tokens_allocated.load());
    scalar("moe_kv_cache_bytes", "gauge", "Bytes of the KV caches allocated.", kv_cache_bytes.load());
    const std::pair<const char*, const Histogram*> histograms[] = {
        {"moe_time_to_first_token_seconds", &time_to_first_token},
        {"moe_inter_token_latency_seconds", &inter_token_latency},
        {"moe_request_latency_seconds", &request_latency},
        {"moe_queue_wait_seconds", &queue_wait},
        {"moe_batch_size", &batch_size}};
    const char* helps[] = {"Arrival to the first generated token.", "Time between consecutive tokens of a sequence.",
                           "Arrival to the end of a sequence.", "Arrival to a batch slot.",
                           "Sequences in one forward pass."};
    for (std::size_t i = 0; i < std::size(histograms); ++i) {
      metric(histograms[i].first, "histogram", helps[i]);
      histograms[i].second->render(out, histograms[i].first);
    }
    if (has_expert_counts()) render_experts(out, metric);
    return out;
  }

 private:
  // Per layer: routed slots (counter), activation rate, max/mean and CV of the window (gauges);
  // per layer and expert, while layers x experts <= kMaxExpertSeries: tokens (counter), share of
  // the window and mean routing weight (gauges). Dense layers are left out.
  template <class Metric>
  void render_experts(std::string& out, Metric& metric) const {
    const ExpertStats total = expert_total_stats();
    const ExpertStats window = expert_window_stats();
    const bool per_expert = total.layers.size() * static_cast<std::size_t>(total.n_experts) <= kMaxExpertSeries;
    metric("moe_expert_routed_slots_total", "counter", "Token slots routed to the experts of a MoE layer.");
    for (const auto& l : total.layers) out += fmt::format("moe_expert_routed_slots_total{{layer=\"{}\"}} {}\n", l.layer, l.routed);
    auto per_layer = [&](const char* name, const char* help, auto value) {
      metric(name, "gauge", help);
      for (const auto& l : window.layers) out += fmt::format("{}{{layer=\"{}\"}} {}\n", name, l.layer, value(l));
    };
    per_layer("moe_expert_activation_rate", "Share of a layer's experts used at least once in the last minute.",
              [](const LayerExpertStats& l) { return l.activation_rate; });
    per_layer("moe_expert_load_max_over_mean", "Most-used expert's tokens over the mean, last minute (1 = balanced).",
              [](const LayerExpertStats& l) { return l.max_over_mean; });
    per_layer("moe_expert_load_cv", "Coefficient of variation of the experts' token counts, last minute.",
              [](const LayerExpertStats& l) { return l.cv; });
    if (!per_expert) return;
    metric("moe_expert_tokens_total", "counter", "Tokens routed to an expert.");
    for (const auto& l : total.layers) {
      for (std::size_t e = 0; e < l.tokens.size(); ++e)
        out += fmt::format("moe_expert_tokens_total{{layer=\"{}\",expert=\"{}\"}} {}\n", l.layer, e, l.tokens[e]);
    }
    metric("moe_expert_share", "gauge", "An expert's share of its layer's routed slots, last minute.");
    for (const auto& l : window.layers) {
      for (std::size_t e = 0; e < l.share.size(); ++e)
        out += fmt::format("moe_expert_share{{layer=\"{}\",expert=\"{}\"}} {}\n", l.layer, e, l.share[e]);
    }
    metric("moe_expert_mean_weight", "gauge", "Mean routing weight of the tokens routed to an expert, since start.");
    for (const auto& l : total.layers) {
      for (std::size_t e = 0; e < l.mean_weight.size(); ++e)
        out += fmt::format("moe_expert_mean_weight{{layer=\"{}\",expert=\"{}\"}} {}\n", l.layer, e, l.mean_weight[e]);
    }
  }

  mutable std::mutex experts_mu_;
  ExpertCounts experts_, window_;
  double window_seconds_ = 0.0;
  std::deque<std::pair<std::chrono::steady_clock::time_point, ExpertCounts>> snapshots_;

  mutable std::mutex requests_mu_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
};

}  // namespace moe::server
