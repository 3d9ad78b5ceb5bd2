// The server's continuous-batching loop: one model, one thread that runs forward passes, and
// any number of client threads that submit sequences and read their tokens from a channel.
// Sequences join and leave between steps; each step feeds every decoding sequence one token and
// fills the rest of the token budget with prompt pieces (oldest first), so a long prompt is
// prefilled over several steps while the others keep decoding. Admission is bounded by the
// free slots, a KV-token budget (each sequence reserves prompt + max_tokens) and a queue length.
// The budget bounds the KV memory too: a slot's cache is allocated when a sequence is admitted
// (reused by later sequences that fit in it), and the caches of all slots together never hold
// more than kv_tokens tokens (idle slots give theirs back when a new sequence needs the room).
//
// Why not BatchGenerator: the server needs, per sequence, the logits at sampling time (for
// logprobs), a deadline, a reservation against a shared KV budget, timings for the metrics and
// thread-safe submission while the loop runs; the stepping itself follows BatchGenerator's
// (decode tokens first, then prompt chunks, one Model::forward per step), and it uses the same
// TextStream, so the text of a sequence is the one generate() gives.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/limits.hpp"
#include "moe/core/tensor.hpp"
#include "moe/core/token_id.hpp"
#include "moe/model/model.hpp"
#include "moe/runtime/expert_stats.hpp"
#include "moe/runtime/generate.hpp"
#include "moe/runtime/sampler.hpp"
#include "moe/server/api_error.hpp"
#include "moe/server/metrics.hpp"
#include "moe/tokenizer/tokenizer.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace moe::server {

using Clock = std::chrono::steady_clock;

// One generated token's log-probability (natural log of the model's softmax over the raw
// logits, before penalties and temperature, as vLLM and OpenAI report them) and the most likely
// alternatives at that position.
struct TokenLogprob {
  std::int32_t id = 0;
  float logprob = 0.0f;
  std::vector<std::pair<std::int32_t, float>> top;  // [top_logprobs] best first
};

enum class FinishReason { kStop, kLength, kCancelled };

inline const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
  }
  return "stop";
}

// What the loop tells a client about one sequence (`choice` tells the sequences of one request
// apart).
struct SequenceEvent {
  enum Kind { kText, kFinished, kError } kind = kText;
  std::size_t choice = 0;
  std::string text;                     // kText: final text (never splits a UTF-8 character)
  std::vector<TokenLogprob> logprobs;   // kText / kFinished: tokens whose text this event completes
  FinishReason finish = FinishReason::kStop;
  index_t prompt_tokens = 0;            // kFinished
  index_t completion_tokens = 0;        // kFinished: tokens sampled, a final EOS included
  std::optional<ApiError> error;        // kError (the sequence ended)
};

// Where the loop delivers one request's events; the client thread waits on it. Cancelling it
// (the client went away) ends every sequence of the request at the next step.
class ResponseChannel {
 public:
  void push(SequenceEvent e) {
    {
      const std::lock_guard lock(mu_);
      events_.push_back(std::move(e));
    }
    cv_.notify_all();
  }

  // Moves every pending event into `out` (cleared first), waiting up to `timeout` for one.
  // Returns whether any was taken.
  template <class Duration>
  bool wait_pop(std::vector<SequenceEvent>& out, Duration timeout) {
    out.clear();
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !events_.empty(); });
    while (!events_.empty()) {
      out.push_back(std::move(events_.front()));
      events_.pop_front();
    }
    return !out.empty();
  }

  void cancel() noexcept { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const noexcept { return cancelled_.load(std::memory_order_relaxed); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<SequenceEvent> events_;
  std::atomic<bool> cancelled_{false};
};

// One sequence to generate.
struct SequenceJob {
  std::vector<std::int32_t> prompt;  // token ids, checked against the vocabulary by submit()
  GenerationOptions options;         // sampler, max_new_tokens, stop strings, ...; cancel is ignored
                                     // options.adapter: the LoRA adapter's name (unset or "": the base)
  std::int32_t adapter = -1;         // set by submit(): options.adapter's index among the model's adapters
  int logprobs = -1;                 // -1: none; else alternatives per token (at most 20)
  std::size_t choice = 0;
  std::shared_ptr<ResponseChannel> channel;
  Clock::time_point arrival = Clock::now();
  Clock::time_point deadline = Clock::time_point::max();
};

struct SchedulerOptions {
  index_t max_sequences = 8;     // batch slots
  index_t n_ctx = 0;             // tokens per sequence; 0: max_position_embeddings capped at 4096
  index_t max_batch_tokens = 0;  // tokens per forward pass; 0: max(max_sequences, min(n_ctx, 512))
  index_t kv_tokens = 0;         // reserved tokens (prompt + max_tokens) in flight; 0: slots x n_ctx
  std::size_t max_queue = 64;    // sequences waiting beyond the free slots; more are refused (429)
};

template <class Backend>
class BasicScheduler {
 public:
  using ModelType = BasicModel<Backend>;
  using Workspace = typename ModelType::Workspace;

  // Allocates the workspace now; KV caches as sequences are admitted, at most kv_tokens tokens
  // in all (kOutOfMemory when the budget exceeds the machine's memory). `metrics` (optional) must outlive the scheduler. Call start() to run.
  BasicScheduler(std::shared_ptr<const ModelType> model, std::shared_ptr<const Tokenizer> tokenizer,
                 const SchedulerOptions& options, std::vector<std::int32_t> extra_eos_ids = {},
                 ServerMetrics* metrics = nullptr)
      : model_(std::move(model)), tokenizer_(std::move(tokenizer)), extra_eos_(std::move(extra_eos_ids)),
        metrics_(metrics != nullptr ? metrics : &own_metrics_) {
    catch_as_error("Scheduler", [&] { init(options); });
  }

  BasicScheduler(const BasicScheduler&) = delete;
  BasicScheduler& operator=(const BasicScheduler&) = delete;
  ~BasicScheduler() { stop(); }

  // Starts the loop thread (once).
  void start();

  // Ends the loop: every queued and active sequence gets a 503 error event. Idempotent.
  void stop();

  // Queues all `jobs` (one request's sequences) or none. Throws ApiError: 400 when a sequence
  // can never fit (prompt + max_tokens beyond n_ctx or the KV budget; empty prompt; a token id
  // outside the vocabulary; bad sampler options), 429 when the queue cannot take them all, 503
  // when the scheduler is stopping. Thread-safe.
  void submit(std::vector<SequenceJob> jobs);

  // The largest prompt + max_tokens one sequence may reserve: min(n_ctx, kv_tokens).
  index_t max_sequence_tokens() const noexcept { return std::min(n_ctx_, kv_tokens_); }
  index_t n_ctx() const noexcept { return n_ctx_; }
  index_t kv_tokens() const noexcept { return kv_tokens_; }
  // Tokens the slots' KV caches can hold, allocated now (<= kv_tokens()); thread-safe.
  index_t kv_tokens_allocated() const noexcept { return kv_allocated_.load(); }
  index_t max_sequences() const noexcept { return slots_.size(); }
  std::size_t max_queue() const noexcept { return max_queue_; }
  ServerMetrics& metrics() noexcept { return *metrics_; }  // thread-safe (atomics and locks)
  const Tokenizer& tokenizer() const noexcept { return *tokenizer_; }
  const ModelType& model() const noexcept { return *model_; }

 private:
  struct Slot {
    bool busy = false;
    bool decoding = false;        // prompt complete; next_token is fed at the next step
    typename ModelType::Cache cache;
    SequenceJob job;
    index_t prompt_done = 0;
    std::int32_t next_token = 0;
    index_t generated = 0;         // tokens sampled (a final EOS included)
    index_t reservation = 0;
    std::vector<std::int32_t> eos;
    std::optional<Sampler> sampler;
    std::optional<TextStream> stream;
    std::vector<TokenLogprob> pending_logprobs;  // tokens whose text is still held back
    Clock::time_point last_token;
  };
  struct PlannedChunk {
    std::size_t slot;
    index_t n_tokens;
  };

  void init(const SchedulerOptions& options);

  void check(SequenceJob& job) const;

  void loop();

  // Hands the expert counters to the metrics at most once a second, and when the batch has
  // drained (so the last request's routing shows); on a device backend each is one download.
  void publish_experts();

  static SequenceEvent error_event(const SequenceJob& job, const ApiError& err);

  static ApiError timeout_error(const SequenceJob& job);

  // Drops cancelled and timed-out requests from the queue, then moves queued sequences into free
  // slots in arrival order while their reservation fits the KV budget (the first one that does not
  // fit waits, and so do the ones behind it: no request is starved by smaller ones).
  void admit(Clock::time_point now);

  // A free slot whose cache holds `need` tokens: the smallest that already does, else one whose
  // cache is (re)allocated, idle slots giving theirs back while the caches would exceed
  // kv_tokens. Null when they still would (busy slots hold the room; the caller waits).
  Slot* slot_with_cache(index_t need);

  void give_back_cache(Slot& s);

  void publish_allocated(index_t tokens);

  void step();

  // Log-softmax of the raw logits at the sampled id, and the best `k` alternatives.
  TokenLogprob logprob_of(std::span<const float> logits, std::int32_t id, int k);

  void on_logits(Slot& s, std::span<const float> logits);

  void finish(Slot& s, FinishReason reason);

  void end_with_error(Slot& s, const ApiError& err);

  void release(Slot& s);

  std::shared_ptr<const ModelType> model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::vector<std::int32_t> extra_eos_;
  ServerMetrics own_metrics_;
  ServerMetrics* metrics_;
  index_t n_ctx_ = 0;
  index_t max_batch_tokens_ = 0;
  index_t kv_tokens_ = 0;
  index_t vocab_size_ = 0;
  std::size_t max_queue_ = 0;
  static constexpr index_t kCacheGrain = 64;  // slot caches are allocated in multiples of this (<= n_ctx)
  std::atomic<index_t> kv_allocated_{0};      // sum of the slots' cache capacities

  // Loop thread only.
  std::vector<Slot> slots_;
  std::vector<std::size_t> admission_order_;  // busy slots, oldest first
  std::unique_ptr<Workspace> workspace_;
  Tensor<float, 2> logits_;  // [max_sequences, vocab_size]
  std::vector<typename ModelType::SequenceChunk> chunks_;
  std::vector<PlannedChunk> plan_;
  std::vector<std::int32_t> order_;  // top-logprob scratch
  index_t reserved_ = 0;
  Clock::time_point last_publish_{};
  std::vector<bool> moe_layers_;

  // Shared with the client threads, under mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<SequenceJob> queue_;
  std::atomic<index_t> active_{0};
  bool stopping_ = false;
  std::thread thread_;
};

template <class Backend>
void BasicScheduler<Backend>::start() {
  const std::lock_guard lock(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { loop(); });
}

template <class Backend>
void BasicScheduler<Backend>::stop() {
  {
    const std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

template <class Backend>
void BasicScheduler<Backend>::submit(std::vector<SequenceJob> jobs) {
  for (auto& job : jobs) check(job);
  {
    const std::lock_guard lock(mu_);
    if (stopping_) throw ApiError(503, "server_error", "the server is shutting down", std::nullopt, "unavailable");
    // Free slots take sequences without queueing (the loop admits them at its next step).
    const index_t active = active_.load();
    const std::size_t free_slots = active < slots_.size() ? slots_.size() - active : 0;
    if (queue_.size() + jobs.size() > max_queue_ + free_slots) {
      metrics_->rejected_queue_full.fetch_add(1);
      throw ApiError(429, "rate_limit_error",
                     fmt::format("the server's queue is full ({} sequences waiting, limit {}); retry later",
                                 queue_.size(), max_queue_),
                     std::nullopt, "queue_full");
    }
    for (auto& job : jobs) queue_.push_back(std::move(job));
    metrics_->queue_depth.store(static_cast<std::int64_t>(queue_.size()));
  }
  cv_.notify_all();
}

template <class Backend>
void BasicScheduler<Backend>::init(const SchedulerOptions& options) {
  require(model_ != nullptr && tokenizer_ != nullptr, ErrorCode::kInvalidArgument, "Scheduler: null model or tokenizer");
  const auto& cfg = model_->config();
  require(options.max_sequences >= 1 && options.max_sequences <= static_cast<index_t>(limits::kMaxParallelSequences),
          ErrorCode::kInvalidArgument, "Scheduler: max_sequences must be in [1, {}], got {}",
          limits::kMaxParallelSequences, options.max_sequences);
  n_ctx_ = options.n_ctx;
  if (n_ctx_ == 0) n_ctx_ = cfg.max_position_embeddings == 0 ? 4096 : std::min<index_t>(cfg.max_position_embeddings, 4096);
  require(cfg.max_position_embeddings == 0 || n_ctx_ <= cfg.max_position_embeddings, ErrorCode::kInvalidArgument,
          "Scheduler: n_ctx {} exceeds the model's max_position_embeddings {}", n_ctx_, cfg.max_position_embeddings);
  require(n_ctx_ <= static_cast<index_t>(limits::kMaxContext), ErrorCode::kInvalidArgument,
          "Scheduler: n_ctx {} exceeds the limit of {} tokens", n_ctx_, limits::kMaxContext);
  kv_tokens_ = options.kv_tokens == 0 ? options.max_sequences * n_ctx_ : options.kv_tokens;
  const index_t kv_bytes = model_->kv_cache_bytes(kv_tokens_);
  const index_t physical = physical_memory_bytes();
  if (physical != 0 && kv_bytes > physical) {
    fail(ErrorCode::kOutOfMemory, "Scheduler: a KV budget of {} tokens ({} bytes) exceeds the {} bytes of memory",
         kv_tokens_, kv_bytes, physical);
  }
  max_batch_tokens_ = options.max_batch_tokens;
  if (max_batch_tokens_ == 0) max_batch_tokens_ = std::max(options.max_sequences, std::min<index_t>(n_ctx_, 512));
  require(max_batch_tokens_ >= options.max_sequences, ErrorCode::kInvalidArgument,
          "Scheduler: max_batch_tokens {} must be at least max_sequences {} (one decode token each)",
          max_batch_tokens_, options.max_sequences);
  max_queue_ = options.max_queue;
  vocab_size_ = cfg.vocab_size;
  slots_.resize(options.max_sequences);
  workspace_ = std::make_unique<Workspace>(model_->make_workspace(max_batch_tokens_));
  moe_layers_ = moe_layers(*model_);
  logits_ = Tensor<float, 2>({options.max_sequences, vocab_size_});
  chunks_.reserve(options.max_sequences);
  plan_.reserve(options.max_sequences);
  metrics_->kv_tokens_budget = kv_tokens_;
  metrics_->slots = options.max_sequences;
}

template <class Backend>
void BasicScheduler<Backend>::check(SequenceJob& job) const {
  if (job.prompt.empty()) bad_request("prompt", "the prompt is empty (no tokens)");
  for (const std::int32_t id : job.prompt) {
    if (id < 0 || static_cast<index_t>(id) >= vocab_size_)
      bad_request("prompt", "token id {} is outside the vocabulary [0, {})", id, vocab_size_);
  }
  const index_t need = job.prompt.size() + job.options.max_new_tokens;
  if (job.options.max_new_tokens < 1) bad_request("max_tokens", "max_tokens must be at least 1");
  if (job.prompt.size() > max_sequence_tokens() || need > max_sequence_tokens()) {
    throw ApiError(400, "invalid_request_error",
                   fmt::format("This model's maximum context length is {} tokens. However, you requested {} tokens "
                               "({} in the prompt, {} for the completion). Please reduce the prompt or the "
                               "completion length.",
                               max_sequence_tokens(), need, job.prompt.size(), job.options.max_new_tokens),
                   std::nullopt, "context_length_exceeded");
  }
  try {
    job.options.sampler.validate();
    StopStringMatcher check_stops(job.options.stop_strings);
  } catch (const Error& e) {
    bad_request("", "{}", e.what());
  }
  if (job.options.expert_budget) {
    try {
      job.options.expert_budget->validate(model_->config().top_k, "expert_budget");
    } catch (const Error& e) {
      bad_request("expert_budget", "{}", e.what());
    }
  }
  job.adapter = -1;
  if (job.options.adapter && !job.options.adapter->empty()) {
    try {
      job.adapter = model_->adapter_index(*job.options.adapter);
    } catch (const Error& e) {
      bad_request("model", "{}", e.what());
    }
  }
  if (job.logprobs > 20) bad_request("top_logprobs", "at most 20 alternatives per token, got {}", job.logprobs);
  if (job.channel == nullptr) job.channel = std::make_shared<ResponseChannel>();
}

template <class Backend>
void BasicScheduler<Backend>::loop() {
  while (true) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || active_ > 0; });
      if (stopping_) break;
    }
    try {
      step();
      publish_experts();
    } catch (const std::exception& e) {
      // A forward pass that fails is a bug or a device error: the sequences in it end with a
      // 500, the loop keeps serving the next ones.
      const ApiError err(500, "server_error", fmt::format("generation failed: {}", e.what()));
      for (auto& s : slots_) {
        if (s.busy) end_with_error(s, err);
      }
    }
  }
  const ApiError err(503, "server_error", "the server is shutting down", std::nullopt, "unavailable");
  for (auto& s : slots_) {
    if (s.busy) end_with_error(s, err);
  }
  const std::lock_guard lock(mu_);
  for (auto& job : queue_) job.channel->push(error_event(job, err));
  queue_.clear();
}

template <class Backend>
void BasicScheduler<Backend>::publish_experts() {
  const auto now = Clock::now();
  if (active_ > 0 && now - last_publish_ < std::chrono::seconds(1)) return;
  last_publish_ = now;
  metrics_->publish_experts(ExpertCounts::from(workspace_->expert_usage(), moe_layers_), now);
}

template <class Backend>
SequenceEvent BasicScheduler<Backend>::error_event(const SequenceJob& job, const ApiError& err) {
  SequenceEvent e;
  e.kind = SequenceEvent::kError;
  e.choice = job.choice;
  e.error = err;
  return e;
}

template <class Backend>
ApiError BasicScheduler<Backend>::timeout_error(const SequenceJob& job) {
  const double seconds = std::chrono::duration<double>(job.deadline - job.arrival).count();
  return ApiError(503, "server_error", fmt::format("the request timed out after {:.1f} s", seconds), std::nullopt,
                  "timeout");
}

template <class Backend>
void BasicScheduler<Backend>::admit(Clock::time_point now) {
  const std::lock_guard lock(mu_);
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->channel->cancelled()) {
      metrics_->cancelled_requests.fetch_add(1);
      it = queue_.erase(it);
    } else if (now >= it->deadline) {
      metrics_->cancelled_requests.fetch_add(1);
      it->channel->push(error_event(*it, timeout_error(*it)));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  while (!queue_.empty() && active_ < slots_.size()) {
    SequenceJob& job = queue_.front();
    const index_t need = job.prompt.size() + job.options.max_new_tokens;
    if (reserved_ + need > kv_tokens_) break;
    Slot* slot = nullptr;
    try {
      slot = slot_with_cache(need);
    } catch (const std::exception& e) {  // the allocation failed: this request ends, the others go on
      job.channel->push(error_event(job, ApiError(503, "server_error",
                                                  fmt::format("no memory for the KV cache: {}", e.what()))));
      queue_.pop_front();
      continue;
    }
    if (slot == nullptr) break;  // idle caches given back still leave too little: wait
    Slot& s = *slot;
    const auto i = static_cast<std::size_t>(&s - slots_.data());
    s.busy = true;
    s.decoding = false;
    s.cache.clear();
    s.job = std::move(job);
    queue_.pop_front();
    s.prompt_done = 0;
    s.generated = 0;
    s.reservation = need;
    reserved_ += need;
    const auto& o = s.job.options;
    s.eos = o.ignore_eos ? std::vector<std::int32_t>{}
                         : merge_token_ids(merge_token_ids(model_->config().eos_token_ids, extra_eos_), o.eos_token_ids);
    s.sampler.emplace(o.sampler, vocab_size_);
    s.sampler->add_prompt(s.job.prompt);
    s.stream.emplace(*tokenizer_, o);
    s.pending_logprobs.clear();
    admission_order_.push_back(i);
    ++active_;
    metrics_->queue_wait.observe(std::chrono::duration<double>(now - s.job.arrival).count());
  }
  metrics_->queue_depth.store(static_cast<std::int64_t>(queue_.size()));
  metrics_->active_sequences.store(active_);
  metrics_->kv_tokens_reserved.store(reserved_);
}

template <class Backend>
auto BasicScheduler<Backend>::slot_with_cache(index_t need) -> Slot* {
  Slot* best = nullptr;
  for (auto& s : slots_) {
    if (!s.busy && s.cache.capacity() >= need && (best == nullptr || s.cache.capacity() < best->cache.capacity()))
      best = &s;
  }
  if (best != nullptr) return best;
  // Room for more than this sequence when the budget allows it, so that later ones reuse it.
  const index_t rounded = std::min(n_ctx_, (need + kCacheGrain - 1) / kCacheGrain * kCacheGrain);
  auto allocated = [&] {
    index_t n = 0;
    for (const auto& s : slots_) n += s.cache.capacity();
    return n;
  };
  Slot* target = nullptr;
  for (auto& s : slots_) {
    if (!s.busy && (target == nullptr || s.cache.capacity() > target->cache.capacity())) target = &s;
  }
  if (target == nullptr) return nullptr;
  give_back_cache(*target);
  while (allocated() + need > kv_tokens_) {
    Slot* idle = nullptr;
    for (auto& s : slots_) {
      if (!s.busy && s.cache.capacity() > 0 && (idle == nullptr || s.cache.capacity() > idle->cache.capacity()))
        idle = &s;
    }
    if (idle == nullptr) return nullptr;
    give_back_cache(*idle);
  }
  const index_t capacity = allocated() + rounded <= kv_tokens_ ? rounded : need;
  target->cache = model_->make_cache(capacity);
  publish_allocated(allocated());
  return target;
}

template <class Backend>
void BasicScheduler<Backend>::give_back_cache(Slot& s) {
  s.cache = typename ModelType::Cache{};
  index_t n = 0;
  for (const auto& slot : slots_) n += slot.cache.capacity();
  publish_allocated(n);
}

template <class Backend>
void BasicScheduler<Backend>::publish_allocated(index_t tokens) {
  kv_allocated_.store(tokens);
  metrics_->kv_tokens_allocated.store(static_cast<std::int64_t>(tokens));
  metrics_->kv_cache_bytes.store(static_cast<std::int64_t>(model_->kv_cache_bytes(tokens)));
}

template <class Backend>
void BasicScheduler<Backend>::step() {
  const auto now = Clock::now();
  for (auto& s : slots_) {
    if (!s.busy) continue;
    if (s.job.channel->cancelled()) {
      metrics_->cancelled_requests.fetch_add(1);
      release(s);
    } else if (now >= s.job.deadline) {
      metrics_->cancelled_requests.fetch_add(1);
      end_with_error(s, timeout_error(s.job));
    }
  }
  admit(now);

  chunks_.clear();
  plan_.clear();
  index_t budget = max_batch_tokens_;
  for (std::size_t i = 0; i < slots_.size(); ++i) {  // decode tokens first: one per sequence
    Slot& s = slots_[i];
    if (s.busy && s.decoding) {
      chunks_.push_back({&s.cache, std::span<const std::int32_t>(&s.next_token, 1),
                         s.job.options.expert_budget.value_or(ExpertBudget{}), s.job.adapter});
      plan_.push_back({i, 1});
      --budget;
    }
  }
  for (const std::size_t i : admission_order_) {  // then prompt pieces, oldest request first
    Slot& s = slots_[i];
    if (!s.busy || s.decoding || budget == 0) continue;
    const index_t n = std::min(budget, s.job.prompt.size() - s.prompt_done);
    chunks_.push_back({&s.cache, std::span<const std::int32_t>(s.job.prompt).subspan(s.prompt_done, n),
                       s.job.options.expert_budget.value_or(ExpertBudget{}), s.job.adapter});
    plan_.push_back({i, n});
    budget -= n;
  }
  if (chunks_.empty()) return;

  model_->forward(chunks_, *workspace_, logits_.view().slice(0, chunks_.size()), /*all_positions=*/false);
  metrics_->forward_passes.fetch_add(1);
  metrics_->batch_size.observe(static_cast<double>(chunks_.size()));

  for (std::size_t c = 0; c < plan_.size(); ++c) {
    Slot& s = slots_[plan_[c].slot];
    if (!s.decoding) {
      s.prompt_done += plan_[c].n_tokens;
      metrics_->prompt_tokens.fetch_add(plan_[c].n_tokens);
      if (s.prompt_done < s.job.prompt.size()) continue;  // more prompt next step
      s.decoding = true;
    }
    on_logits(s, std::span<const float>(logits_.data() + c * vocab_size_, vocab_size_));
  }
}

template <class Backend>
TokenLogprob BasicScheduler<Backend>::logprob_of(std::span<const float> logits, std::int32_t id, int k) {
  float max_logit = -std::numeric_limits<float>::infinity();
  for (const float l : logits) max_logit = std::max(max_logit, l);
  double sum = 0.0;
  for (const float l : logits) sum += std::exp(static_cast<double>(l) - max_logit);
  const double log_z = max_logit + std::log(sum);
  auto lp = [&](std::int32_t i) { return static_cast<float>(logits[static_cast<std::size_t>(i)] - log_z); };
  TokenLogprob out{id, lp(id), {}};
  if (k > 0) {
    order_.resize(logits.size());
    for (std::size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<std::int32_t>(i);
    const auto kk = std::min<std::size_t>(static_cast<std::size_t>(k), order_.size());
    std::partial_sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(kk), order_.end(),
                      [&](std::int32_t a, std::int32_t b) {
                        const float la = logits[static_cast<std::size_t>(a)], lb = logits[static_cast<std::size_t>(b)];
                        return la != lb ? la > lb : a < b;
                      });
    for (std::size_t i = 0; i < kk; ++i) out.top.emplace_back(order_[i], lp(order_[i]));
  }
  return out;
}

template <class Backend>
void BasicScheduler<Backend>::on_logits(Slot& s, std::span<const float> logits) {
  const auto now = Clock::now();
  const std::int32_t id = s.sampler->sample(logits);
  ++s.generated;
  metrics_->generated_tokens.fetch_add(1);
  if (s.generated == 1) {
    metrics_->time_to_first_token.observe(std::chrono::duration<double>(now - s.job.arrival).count());
  } else {
    metrics_->inter_token_latency.observe(std::chrono::duration<double>(now - s.last_token).count());
  }
  s.last_token = now;
  if (std::find(s.eos.begin(), s.eos.end(), id) != s.eos.end()) return finish(s, FinishReason::kStop);
  if (s.job.logprobs >= 0) s.pending_logprobs.push_back(logprob_of(logits, id, s.job.logprobs));
  s.sampler->accept(id);
  bool text_stopped = false;
  const std::string_view piece = s.stream->push(id, &text_stopped);
  if (!piece.empty()) {
    SequenceEvent e;
    e.kind = SequenceEvent::kText;
    e.choice = s.job.choice;
    e.text = std::string(piece);
    e.logprobs = std::exchange(s.pending_logprobs, {});
    s.job.channel->push(std::move(e));
  }
  if (text_stopped) return finish(s, FinishReason::kStop);
  if (s.generated >= s.job.options.max_new_tokens) return finish(s, FinishReason::kLength);
  if (s.cache.size() >= s.cache.capacity()) return finish(s, FinishReason::kLength);  // unreachable: reservations fit
  s.next_token = id;
}

template <class Backend>
void BasicScheduler<Backend>::finish(Slot& s, FinishReason reason) {
  bool tail_stopped = false;
  std::string tail = s.stream->finish(&tail_stopped);
  if (tail_stopped) reason = FinishReason::kStop;
  SequenceEvent e;
  e.kind = SequenceEvent::kFinished;
  e.choice = s.job.choice;
  e.text = std::move(tail);
  e.logprobs = std::exchange(s.pending_logprobs, {});
  e.finish = reason;
  e.prompt_tokens = s.job.prompt.size();
  e.completion_tokens = s.generated;
  metrics_->request_latency.observe(std::chrono::duration<double>(Clock::now() - s.job.arrival).count());
  s.job.channel->push(std::move(e));
  release(s);
}

template <class Backend>
void BasicScheduler<Backend>::end_with_error(Slot& s, const ApiError& err) {
  s.job.channel->push(error_event(s.job, err));
  release(s);
}

template <class Backend>
void BasicScheduler<Backend>::release(Slot& s) {
  metrics_->finished_requests.fetch_add(1);
  s.busy = false;
  s.decoding = false;
  s.cache.clear();
  s.job.channel.reset();
  s.job.prompt = {};
  reserved_ -= s.reservation;
  s.reservation = 0;
  --active_;
  const auto index = static_cast<std::size_t>(&s - slots_.data());
  admission_order_.erase(std::find(admission_order_.begin(), admission_order_.end(), index));
  metrics_->active_sequences.store(active_);
  metrics_->kv_tokens_reserved.store(reserved_);
}

using Scheduler = BasicScheduler<backend::cpu>;

// Compiled once for this project's own executables (instances/; see MOE_EXTERN_GRAPH in
// model/transformer.hpp).
#if defined(MOE_EXTERN_GRAPH)
extern template class BasicScheduler<backend::cpu>;
extern template class BasicScheduler<backend::reference>;
#endif
#if defined(MOE_EXTERN_GRAPH_CUDA)
extern template class BasicScheduler<backend::cuda>;
#endif

}  // namespace moe::server
