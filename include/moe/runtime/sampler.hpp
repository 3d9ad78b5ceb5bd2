// The sampler chain: turns one position's logits into the next token id. Stages, in Hugging Face
// transformers' order: repetition penalty (HF), presence/frequency penalties (OpenAI),
// temperature, top-k, top-p, min-p, then a draw from the remaining distribution with the
// sampler's own PRNG (or argmax when greedy). Reproducible across standard libraries for a seed.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/token_id.hpp"
#include "moe/core/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace moe {

// Options of the chain. Every stage is off at its neutral value.
struct SamplerConfig {
  float temperature = 1.0f;         // logits /= temperature; 0 means greedy
  std::int32_t top_k = 0;           // keep the k most likely tokens; 0 = off
  float top_p = 1.0f;               // keep the smallest prefix (by probability) reaching top_p; 1 = off
  float min_p = 0.0f;               // drop tokens with p < min_p * p_max; 0 = off
  float repetition_penalty = 1.0f;  // HF CTRL penalty over prompt + generated tokens; 1 = off
  float presence_penalty = 0.0f;    // OpenAI: logit -= presence * (count > 0), generated tokens only
  float frequency_penalty = 0.0f;   // OpenAI: logit -= frequency * count, generated tokens only
  bool greedy = false;              // argmax of the penalized logits (also when temperature == 0)
  std::uint64_t seed = 0;           // PRNG seed: same seed + same logits = same tokens

  bool is_greedy() const noexcept { return greedy || temperature == 0.0f; }

  // Throws Error(kInvalidArgument) naming the option and the value on an out-of-range setting.
  void validate() const {
    require(std::isfinite(temperature) && temperature >= 0.0f, ErrorCode::kInvalidArgument,
            "sampler: temperature must be finite and >= 0, got {}", temperature);
    require(top_k >= 0, ErrorCode::kInvalidArgument, "sampler: top_k must be >= 0, got {}", top_k);
    require(top_p > 0.0f && top_p <= 1.0f, ErrorCode::kInvalidArgument,
            "sampler: top_p must be in (0, 1], got {}", top_p);
    require(min_p >= 0.0f && min_p <= 1.0f, ErrorCode::kInvalidArgument,
            "sampler: min_p must be in [0, 1], got {}", min_p);
    require(std::isfinite(repetition_penalty) && repetition_penalty > 0.0f,
            ErrorCode::kInvalidArgument, "sampler: repetition_penalty must be finite and > 0, got {}",
            repetition_penalty);
    require(std::isfinite(presence_penalty), ErrorCode::kInvalidArgument,
            "sampler: presence_penalty must be finite, got {}", presence_penalty);
    require(std::isfinite(frequency_penalty), ErrorCode::kInvalidArgument,
            "sampler: frequency_penalty must be finite, got {}", frequency_penalty);
  }
};

// xoshiro256** (Blackman & Vigna, 2018) seeded through splitmix64. Written out here so a seed
// gives the same stream on every platform and standard library.
class Xoshiro256 {
 public:
  explicit Xoshiro256(std::uint64_t seed = 0) noexcept { reseed(seed); }

  void reseed(std::uint64_t seed) noexcept {
    std::uint64_t x = seed;
    for (auto& s : s_) s = splitmix64(x);
  }

  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits (exactly representable doubles k * 2^-53).
  double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  static std::uint64_t splitmix64(std::uint64_t& x) noexcept {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::uint64_t s_[4]{};
};

// One vocabulary entry still in the running.
struct TokenCandidate {
  std::int32_t id;
  float logit;
  float prob;  // valid after a stage that computes probabilities (softmax, top-p, min-p)
};

namespace sampling {

// Total order used everywhere a ranking is needed: higher logit first, ties by lower id. With a
// total order, std::sort/partial_sort give the same result on every standard library.
inline bool ranks_before(const TokenCandidate& a, const TokenCandidate& b) noexcept {
  if (a.logit != b.logit) return a.logit > b.logit;
  return a.id < b.id;
}

// HF RepetitionPenaltyLogitsProcessor: for each distinct token seen, a positive logit is divided
// by `penalty` and a negative one multiplied, so penalty > 1 always makes the token less likely.
// `seen_ids` must hold distinct ids < logits.size().
inline void apply_repetition_penalty(std::span<float> logits, std::span<const std::int32_t> seen_ids,
                                     float penalty) noexcept {
  if (penalty == 1.0f) return;
  for (const std::int32_t id : seen_ids) {
    float& l = logits[static_cast<std::size_t>(id)];
    l = l > 0.0f ? l / penalty : l * penalty;
  }
}

// OpenAI presence/frequency penalties: logit[j] -= count[j] * frequency + (count[j] > 0) * presence,
// over the distinct ids in `counted_ids` (counts indexed by token id).
inline void apply_presence_frequency(std::span<float> logits, std::span<const std::int32_t> counted_ids,
                                     std::span<const std::int32_t> counts, float presence,
                                     float frequency) noexcept {
  if (presence == 0.0f && frequency == 0.0f) return;
  for (const std::int32_t id : counted_ids) {
    const auto i = static_cast<std::size_t>(id);
    const std::int32_t c = counts[i];
    if (c > 0) logits[i] -= static_cast<float>(c) * frequency + presence;
  }
}

// Lowest id among the largest logits; NaN ranks below everything. Empty input gives -1.
inline std::int32_t argmax(std::span<const float> logits) noexcept {
  std::int32_t best = -1;
  float best_value = 0.0f;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    const float v = logits[i];
    if (std::isnan(v)) continue;
    if (best < 0 || v > best_value) {
      best = static_cast<std::int32_t>(i);
      best_value = v;
    }
  }
  return best < 0 && !logits.empty() ? 0 : best;
}

}  // namespace sampling

// The working set of one sampling step: a list of candidates, filtered stage by stage. Holds a
// buffer sized to the vocabulary once; no stage allocates.
class Candidates {
 public:
  explicit Candidates(index_t vocab_size) { items_.reserve(vocab_size); }

  // Starts from every token of `logits` (NaN becomes -inf so it can never be drawn).
  void fill(std::span<const float> logits) {
    require(logits.size() <= items_.capacity(), ErrorCode::kInvalidArgument,
            "sampler: {} logits for a vocabulary of {}", logits.size(), items_.capacity());
    items_.resize(logits.size());
    for (std::size_t i = 0; i < logits.size(); ++i) {
      const float l = std::isnan(logits[i]) ? -std::numeric_limits<float>::infinity() : logits[i];
      items_[i] = TokenCandidate{static_cast<std::int32_t>(i), l, 0.0f};
    }
    sorted_ = false;
    has_probs_ = false;
  }

  std::span<const TokenCandidate> items() const noexcept { return items_; }
  std::size_t size() const noexcept { return items_.size(); }
  bool sorted() const noexcept { return sorted_; }

  // logits /= t (t > 0).
  void apply_temperature(float t) noexcept {
    if (t == 1.0f) return;
    for (auto& c : items_) c.logit /= t;
    has_probs_ = false;
  }

  // Keeps the k best (ranks_before order), sorted. k == 0 or k >= size() keeps everything.
  void apply_top_k(std::int32_t k) {
    if (k <= 0 || static_cast<std::size_t>(k) >= items_.size()) return;
    const auto kk = static_cast<std::size_t>(k);
    std::partial_sort(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(kk), items_.end(),
                      sampling::ranks_before);
    items_.resize(kk);
    sorted_ = true;
    has_probs_ = false;
  }

  // prob = softmax(logit) over the current candidates (max-subtracted; sum in double).
  void softmax() noexcept {
    if (items_.empty()) return;
    float max_logit = -std::numeric_limits<float>::infinity();
    for (const auto& c : items_) max_logit = std::max(max_logit, c.logit);
    if (max_logit == -std::numeric_limits<float>::infinity()) {
      // Nothing is possible: make it a point mass on the best-ranked candidate.
      for (auto& c : items_) c.prob = 0.0f;
      best().prob = 1.0f;
      has_probs_ = true;
      return;
    }
    double sum = 0.0;
    for (auto& c : items_) {
      c.prob = std::exp(c.logit - max_logit);
      sum += c.prob;
    }
    const auto inv = static_cast<float>(1.0 / sum);
    for (auto& c : items_) c.prob *= inv;
    has_probs_ = true;
  }

  // Nucleus filtering (HF TopPLogitsWarper): in ranks_before order, keeps each token whose
  // preceding cumulative probability is < p (so the token that crosses p is kept, and always at
  // least one), then renormalizes.
  void apply_top_p(float p) {
    if (p >= 1.0f || items_.empty()) return;
    sort();
    if (!has_probs_) softmax();
    double cumulative = 0.0;
    std::size_t keep = 0;
    while (keep < items_.size() && (keep == 0 || cumulative < p)) {
      cumulative += items_[keep].prob;
      ++keep;
    }
    items_.resize(keep);
    renormalize();
  }

  // HF MinPLogitsWarper: drops tokens with prob < min_p * max prob (at least one stays), then
  // renormalizes. Keeps the current order.
  void apply_min_p(float min_p) {
    if (min_p <= 0.0f || items_.empty()) return;
    if (!has_probs_) softmax();
    float max_prob = 0.0f;
    for (const auto& c : items_) max_prob = std::max(max_prob, c.prob);
    const float threshold = min_p * max_prob;
    std::size_t out = 0;
    for (std::size_t i = 0; i < items_.size(); ++i) {
      if (items_[i].prob >= threshold) items_[out++] = items_[i];
    }
    items_.resize(out);  // out >= 1: the max itself passes
    renormalize();
  }

  // Draws one id with probability prob, walking candidates in their current order against one
  // uniform number from `rng`.
  std::int32_t draw(Xoshiro256& rng) noexcept {
    if (items_.empty()) return -1;
    if (!has_probs_) softmax();
    double total = 0.0;
    for (const auto& c : items_) total += c.prob;
    const double u = rng.uniform() * total;
    double cumulative = 0.0;
    for (const auto& c : items_) {
      cumulative += c.prob;
      if (u < cumulative) return c.id;
    }
    // Rounding left u at the very end: take the last candidate with nonzero probability.
    for (std::size_t i = items_.size(); i-- > 0;) {
      if (items_[i].prob > 0.0f) return items_[i].id;
    }
    return items_.front().id;
  }

 private:
  TokenCandidate& best() noexcept {
    return *std::min_element(items_.begin(), items_.end(), sampling::ranks_before);
  }
  void sort() {
    if (sorted_) return;
    std::sort(items_.begin(), items_.end(), sampling::ranks_before);
    sorted_ = true;
  }
  void renormalize() noexcept {
    double sum = 0.0;
    for (const auto& c : items_) sum += c.prob;
    if (sum <= 0.0) return;
    const auto inv = static_cast<float>(1.0 / sum);
    for (auto& c : items_) c.prob *= inv;
  }

  std::vector<TokenCandidate> items_;
  bool sorted_ = false;
  bool has_probs_ = false;
};

// The stateful chain for one sequence: remembers the tokens seen (for the penalties) and owns the
// PRNG. Not thread-safe; one per sequence. All buffers are sized to the vocabulary at
// construction, so add_prompt/accept/sample never allocate.
class Sampler {
 public:
  Sampler(const SamplerConfig& config, index_t vocab_size)
      : config_(config), vocab_size_(vocab_size), candidates_(vocab_size), rng_(config.seed) {
    config.validate();
    require(vocab_size > 0 && vocab_size <= static_cast<index_t>(std::numeric_limits<std::int32_t>::max()),
            ErrorCode::kInvalidArgument, "sampler: vocabulary size {} out of range", vocab_size);
    logits_.resize(vocab_size);
    seen_.assign(vocab_size, 0);
    counts_.assign(vocab_size, 0);
    seen_ids_.reserve(vocab_size);
    counted_ids_.reserve(vocab_size);
  }

  const SamplerConfig& config() const noexcept { return config_; }
  index_t vocab_size() const noexcept { return vocab_size_; }

  // Forgets every token seen and restarts the PRNG from the seed.
  void reset() noexcept {
    for (const std::int32_t id : seen_ids_) seen_[static_cast<std::size_t>(id)] = 0;
    for (const std::int32_t id : counted_ids_) counts_[static_cast<std::size_t>(id)] = 0;
    seen_ids_.clear();
    counted_ids_.clear();
    rng_.reseed(config_.seed);
  }

  // Records prompt tokens (they count for the repetition penalty only). Throws kInvalidArgument on
  // an id outside [0, vocab_size).
  void add_prompt(std::span<const std::int32_t> ids) {
    for (const std::int32_t id : ids) check_id(id);
    for (const std::int32_t id : ids) mark_seen(id);
  }

  // Records a generated token (repetition, presence and frequency penalties).
  void accept(std::int32_t id) {
    check_id(id);
    mark_seen(id);
    const auto i = static_cast<std::size_t>(id);
    if (counts_[i]++ == 0) counted_ids_.push_back(id);
  }

  // Runs the chain on `logits` ([vocab_size], not modified) and returns the chosen id. Does not
  // record it: call accept() with the token actually used.
  std::int32_t sample(std::span<const float> logits) {
    penalize(logits);
    if (config_.is_greedy()) return sampling::argmax(logits_);
    filter();
    return candidates_.draw(rng_);
  }

  // The distribution sample() would draw from for `logits` (ids and probabilities, after every
  // stage). For greedy, a single candidate with probability 1. Valid until the next call.
  std::span<const TokenCandidate> distribution(std::span<const float> logits) {
    penalize(logits);
    if (config_.is_greedy()) {
      const std::int32_t id = sampling::argmax(logits_);
      greedy_one_ = TokenCandidate{id, logits_[static_cast<std::size_t>(id)], 1.0f};
      return {&greedy_one_, 1};
    }
    filter();
    if (candidates_.size() > 0) candidates_.softmax();
    return candidates_.items();
  }

 private:
  void check_id(std::int32_t id) const { check_token_id(id, vocab_size_, "sampler"); }
  void mark_seen(std::int32_t id) {
    const auto i = static_cast<std::size_t>(id);
    if (!seen_[i]) {
      seen_[i] = 1;
      seen_ids_.push_back(id);
    }
  }
  void penalize(std::span<const float> logits) {
    require(logits.size() == vocab_size_, ErrorCode::kInvalidArgument,
            "sampler: got {} logits for a vocabulary of {}", logits.size(), vocab_size_);
    std::copy(logits.begin(), logits.end(), logits_.begin());
    sampling::apply_repetition_penalty(logits_, seen_ids_, config_.repetition_penalty);
    sampling::apply_presence_frequency(logits_, counted_ids_, counts_, config_.presence_penalty,
                                       config_.frequency_penalty);
  }
  void filter() {
    candidates_.fill(logits_);
    candidates_.apply_temperature(config_.temperature);
    candidates_.apply_top_k(config_.top_k);
    candidates_.apply_top_p(config_.top_p);
    candidates_.apply_min_p(config_.min_p);
  }

  SamplerConfig config_;
  index_t vocab_size_;
  Candidates candidates_;
  Xoshiro256 rng_;
  std::vector<float> logits_;               // [vocab_size] penalized copy of the input
  std::vector<std::uint8_t> seen_;          // [vocab_size] 1 if in prompt or generated
  std::vector<std::int32_t> counts_;        // [vocab_size] times generated
  std::vector<std::int32_t> seen_ids_;      // distinct ids with seen_ == 1
  std::vector<std::int32_t> counted_ids_;   // distinct ids with counts_ > 0
  TokenCandidate greedy_one_{0, 0.0f, 1.0f};
};

}  // namespace moe
