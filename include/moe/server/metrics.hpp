// Server metrics: counters, gauges and latency histograms shared by the HTTP threads and the
// scheduling loop, rendered in the Prometheus text exposition format (version 0.0.4) for
// GET /metrics.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
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
  std::int64_t slots = 0;

  Histogram time_to_first_token{latency_bounds()};
  Histogram inter_token_latency{latency_bounds()};
  Histogram request_latency{latency_bounds()};   // arrival to last token
  Histogram queue_wait{latency_bounds()};        // arrival to slot
  Histogram batch_size{{1, 2, 4, 8, 16, 32, 64, 128, 256}};  // sequences per forward pass

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
    return out;
  }

 private:
  mutable std::mutex requests_mu_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
};

}  // namespace moe::server
