// Text generation over a Session: prefill the prompt, then sample and decode one token at a
// time, streaming UTF-8-safe text pieces to a callback, until an end-of-sequence id, a stop
// string, the token limit, the context end, the callback or a cancellation ends it.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/json.hpp"
#include "moe/core/limits.hpp"
#include "moe/core/token_id.hpp"
#include "moe/core/tensor.hpp"
#include "moe/io/json_file.hpp"
#include "moe/io/load_model.hpp"
#include "moe/io/load_tokenizer.hpp"
#include "moe/model/model.hpp"
#include "moe/runtime/sampler.hpp"
#include "moe/runtime/session.hpp"
#include "moe/runtime/stats.hpp"
#include "moe/runtime/stop_strings.hpp"
#include "moe/tokenizer/stream_decoder.hpp"
#include "moe/tokenizer/tokenizer.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moe {

// ---- generation_config.json -------------------------------------------------------------------

// What a model folder's generation_config.json says (every field optional; `found` is false when
// the file does not exist).
struct GenerationDefaults {
  bool found = false;
  std::vector<std::int32_t> eos_token_ids;  // "eos_token_id": an int or a list of ints
  std::optional<std::int32_t> bos_token_id;
  std::optional<bool> do_sample;
  std::optional<float> temperature;
  std::optional<std::int32_t> top_k;
  std::optional<float> top_p;
  std::optional<float> min_p;
  std::optional<float> repetition_penalty;
  std::optional<index_t> max_new_tokens;

  // The sampler settings the file asks for, on top of `base`: do_sample == false means greedy
  // (transformers' default for do_sample is false).
  SamplerConfig apply_to(SamplerConfig base) const {
    if (temperature) base.temperature = *temperature;
    if (top_k) base.top_k = *top_k;
    if (top_p) base.top_p = *top_p;
    if (min_p) base.min_p = *min_p;
    if (repetition_penalty) base.repetition_penalty = *repetition_penalty;
    base.greedy = !do_sample.value_or(false);
    return base;
  }
};

namespace detail {

inline std::int32_t json_token_id(const nlohmann::json& v, const std::string& file, std::string_view key) {
  require(v.is_number_integer(), ErrorCode::kConfig, "{}: \"{}\" must be an integer token id or a list of them, got {}",
          file, key, describe(v));
  const auto id = v.get<std::int64_t>();
  require(id >= 0 && id <= std::numeric_limits<std::int32_t>::max(), ErrorCode::kConfig,
          "{}: \"{}\" token id {} out of range", file, key, id);
  return static_cast<std::int32_t>(id);
}

template <class T>
std::optional<T> json_number(const nlohmann::json& j, const std::string& file, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if constexpr (std::is_same_v<T, bool>) {
    require(it->is_boolean(), ErrorCode::kConfig, "{}: \"{}\" must be true or false, got {}", file, key, describe(*it));
    return it->get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    require(it->is_number_integer(), ErrorCode::kConfig, "{}: \"{}\" must be an integer, got {}", file, key, describe(*it));
    const auto v = it->get<std::int64_t>();
    require(v >= 0 && static_cast<std::uint64_t>(v) <= static_cast<std::uint64_t>(std::numeric_limits<T>::max()),
            ErrorCode::kConfig, "{}: \"{}\" = {} out of range", file, key, v);
    return static_cast<T>(v);
  } else {
    require(it->is_number(), ErrorCode::kConfig, "{}: \"{}\" must be a number, got {}", file, key, describe(*it));
    return static_cast<T>(it->get<double>());
  }
}

}  // namespace detail

// The settings of a parsed generation_config.json; `file` names it in messages. Throws kConfig
// (naming the file and key) on a value of the wrong type or range.
inline GenerationDefaults parse_generation_config(const nlohmann::json& j, const std::string& file) {
  return catch_as_error("parse_generation_config", [&]() -> GenerationDefaults {
    GenerationDefaults d;
    require(j.is_object(), ErrorCode::kConfig, "{}: expected a JSON object, got {}", file, describe(j));
    d.found = true;
    if (const auto it = j.find("eos_token_id"); it != j.end() && !it->is_null()) {
      if (it->is_array()) {
        for (const auto& v : *it) d.eos_token_ids.push_back(detail::json_token_id(v, file, "eos_token_id"));
      } else {
        d.eos_token_ids.push_back(detail::json_token_id(*it, file, "eos_token_id"));
      }
    }
    if (const auto it = j.find("bos_token_id"); it != j.end() && !it->is_null()) {
      d.bos_token_id = detail::json_token_id(*it, file, "bos_token_id");
    }
    d.do_sample = detail::json_number<bool>(j, file, "do_sample");
    d.temperature = detail::json_number<float>(j, file, "temperature");
    d.top_k = detail::json_number<std::int32_t>(j, file, "top_k");
    d.top_p = detail::json_number<float>(j, file, "top_p");
    d.min_p = detail::json_number<float>(j, file, "min_p");
    d.repetition_penalty = detail::json_number<float>(j, file, "repetition_penalty");
    d.max_new_tokens = detail::json_number<index_t>(j, file, "max_new_tokens");
    return d;
  });
}

// Reads `folder`/generation_config.json if it exists (a default GenerationDefaults otherwise).
// Throws kIo for a file that is not regular or exceeds limits::kMaxGenerationConfigBytes, kFormat
// on invalid JSON, kConfig (naming the file and key) on a value of the wrong type or range.
inline GenerationDefaults read_generation_config(const std::filesystem::path& folder) {
  return catch_as_error("read_generation_config", [&]() -> GenerationDefaults {
    const auto path = folder / "generation_config.json";
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return GenerationDefaults{};
    const nlohmann::json j = io::read_json_file(path, limits::kMaxGenerationConfigBytes, "generation_config.json");
    return parse_generation_config(j, path.string());
  });
}

// ---- one generation -----------------------------------------------------------------------------

enum class StopReason {
  kMaxTokens,    // max_new_tokens were generated
  kEos,          // an end-of-sequence id was sampled
  kStopString,   // a stop string appeared in the text
  kCallback,     // the streaming callback returned false
  kCancelled,    // the cancel flag or stop_token was set (from any thread)
  kContextFull,  // the session reached n_ctx tokens
};

constexpr std::string_view to_string(StopReason r) noexcept {
  switch (r) {
    case StopReason::kMaxTokens: return "max tokens";
    case StopReason::kEos: return "end of sequence";
    case StopReason::kStopString: return "stop string";
    case StopReason::kCallback: return "callback";
    case StopReason::kCancelled: return "cancelled";
    case StopReason::kContextFull: return "context full";
  }
  return "?";
}

struct GenerationOptions {
  SamplerConfig sampler;
  index_t max_new_tokens = 256;
  std::vector<std::string> stop_strings;    // text-level; the stop string itself is not emitted
  std::vector<std::int32_t> eos_token_ids;  // extra stop ids, on top of the model config's
  bool ignore_eos = false;                  // do not stop on any end-of-sequence id
  bool skip_special_tokens = true;          // leave special tokens out of the text
  bool add_special_tokens = true;           // when encoding a text prompt (BOS etc.)
  // Elastic experts for this generation (fewer routed experts per token; see
  // kernels/reference/expert_budget.hpp); unset: the session's budget (by default none).
  std::optional<ExpertBudget> expert_budget;
  // Unmerged LoRA: the name of the resident adapter this generation runs with (the model's
  // adapter_names(); "" for the base model); unset: the session's (BatchGenerator: the base).
  // An unknown name is kInvalidArgument naming it and listing the loaded ones.
  std::optional<std::string> adapter;
  // Cancellation from another thread: either is checked before every step and between prefill
  // passes; generation then ends with StopReason::kCancelled.
  const std::atomic<bool>* cancel = nullptr;
  std::stop_token stop_token;

  bool cancelled() const noexcept {
    return (cancel != nullptr && cancel->load(std::memory_order_relaxed)) || stop_token.stop_requested();
  }
};

// Called once per sampled token (except a final EOS) with the text that became final with it
// (possibly empty: held back inside a UTF-8 code point or a possible stop string), and once more
// with id kNoToken for text released at the end. Return false to stop (StopReason::kCallback).
using TokenCallback = std::function<bool(std::int32_t id, std::string_view piece)>;
inline constexpr std::int32_t kNoToken = -1;

struct GenerationResult {
  std::vector<std::int32_t> tokens;  // sampled ids, in order; a final EOS is not included
  std::string text;                  // their text, ending before a stop string
  StopReason stop_reason = StopReason::kMaxTokens;
  GenerationTimings timings;
};

// The stop ids: the model config's eos_token_ids, then `extra`, without duplicates.
inline std::vector<std::int32_t> merge_token_ids(std::span<const std::int32_t> a, std::span<const std::int32_t> b) {
  std::vector<std::int32_t> out(a.begin(), a.end());
  for (const std::int32_t id : b) {
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  }
  return out;
}

// Streams one token's text through the UTF-8 decoder and the stop-string matcher; shared by
// generate() and BatchGenerator so single and batched runs behave the same.
class TextStream {
 public:
  TextStream(const Tokenizer& tokenizer, const GenerationOptions& options)
      : decoder_(tokenizer, options.skip_special_tokens),
        stops_(options.stop_strings),
        tokenizer_(&tokenizer) {}

  // Text of `id` that is final now; sets *stopped when a stop string completed. Ids the model
  // has but the tokenizer lacks (padded embedding rows) have no text.
  std::string_view push(std::int32_t id, bool* stopped) {
    const std::string piece = tokenizer_->has_id(id) ? decoder_.push(id) : std::string();
    const auto step = stops_.push(piece);
    *stopped = step.stopped;
    return step.emit;
  }

  // Text held back at the end (an incomplete UTF-8 tail, a partial stop string); sets *stopped
  // if the decoder's tail completed a stop string.
  std::string finish(bool* stopped) {
    *stopped = false;
    if (stops_.stopped()) return {};
    const std::string tail = decoder_.flush();
    const auto step = stops_.push(tail);
    std::string out(step.emit);
    if (step.stopped) {
      *stopped = true;
      return out;
    }
    out += stops_.flush();
    return out;
  }

 private:
  StreamDecoder decoder_;
  StopStringMatcher stops_;
  const Tokenizer* tokenizer_;
};

// Feeds `prompt` to `session` after whatever it already holds, then samples up to
// options.max_new_tokens tokens. Throws (session unchanged) kContextOverflow if the prompt does
// not fit, kInvalidArgument for an empty prompt, a bad id or bad options; every other end is
// a StopReason in the result. `tokenizer` must belong to the session's model. Single-threaded
// over `session`; only options.cancel / stop_token may be touched by other threads.
template <class Backend>
GenerationResult generate(BasicSession<Backend>& session, const Tokenizer& tokenizer, std::span<const std::int32_t> prompt,
                          const GenerationOptions& options, const TokenCallback& on_token = {}) {
  return catch_as_error("generate", [&]() -> GenerationResult {
    require(!prompt.empty(), ErrorCode::kInvalidArgument, "generate: empty prompt");
    require(prompt.size() <= session.remaining(), ErrorCode::kContextOverflow,
            "generate: prompt of {} tokens does not fit the session ({} of {} tokens free)", prompt.size(),
            session.remaining(), session.n_ctx());
    for (const std::int32_t id : prompt) {  // all checked before the first pass changes the session
      check_token_id(id, session.vocab_size(), "generate: prompt");
    }
    Sampler sampler(options.sampler, session.vocab_size());
    // The generation's budget for its passes, the session's own restored afterwards.
    struct BudgetScope {
      BudgetScope(BasicSession<Backend>& session, const ExpertBudget& budget)
          : s(session), saved(session.expert_budget()) {
        s.set_expert_budget(budget);  // validates
      }
      BudgetScope(const BudgetScope&) = delete;
      BudgetScope& operator=(const BudgetScope&) = delete;
      ~BudgetScope() { s.set_expert_budget(saved); }
      BasicSession<Backend>& s;
      ExpertBudget saved;
    };
    std::optional<BudgetScope> budget_scope;
    if (options.expert_budget) budget_scope.emplace(session, *options.expert_budget);
    // The same for the LoRA adapter.
    struct AdapterScope {
      AdapterScope(BasicSession<Backend>& session, const std::string& name) : s(session), saved(session.adapter()) {
        s.set_adapter(name);  // validates
      }
      AdapterScope(const AdapterScope&) = delete;
      AdapterScope& operator=(const AdapterScope&) = delete;
      ~AdapterScope() { s.set_adapter(saved); }
      BasicSession<Backend>& s;
      std::string saved;
    };
    std::optional<AdapterScope> adapter_scope;
    if (options.adapter) adapter_scope.emplace(session, *options.adapter);
    const std::vector<std::int32_t> eos =
        options.ignore_eos ? std::vector<std::int32_t>{}
                           : merge_token_ids(session.model().config().eos_token_ids, options.eos_token_ids);
    auto is_eos = [&eos](std::int32_t id) { return std::find(eos.begin(), eos.end(), id) != eos.end(); };
    TextStream stream(tokenizer, options);
    GenerationResult result;
    result.tokens.reserve(std::min<index_t>(options.max_new_tokens, session.n_ctx()));

    // Prefill, one pass per max_batch_tokens, checking for cancellation between passes.
    Stopwatch clock;
    std::span<const float> logits;
    for (index_t begin = 0; begin < prompt.size(); begin += session.max_batch_tokens()) {
      if (options.cancelled()) {
        result.stop_reason = StopReason::kCancelled;
        result.timings.prompt_tokens = begin;
        result.timings.prompt_seconds = clock.seconds();
        return result;
      }
      logits = session.prefill(prompt.subspan(begin, std::min(session.max_batch_tokens(), prompt.size() - begin)));
    }
    result.timings.prompt_tokens = prompt.size();
    result.timings.prompt_seconds = clock.seconds();
    sampler.add_prompt(prompt);

    clock.restart();
    bool text_stopped = false;
    result.stop_reason = StopReason::kMaxTokens;
    while (result.timings.generated_tokens < options.max_new_tokens) {
      if (options.cancelled()) {
        result.stop_reason = StopReason::kCancelled;
        break;
      }
      const std::int32_t id = sampler.sample(logits);
      ++result.timings.generated_tokens;
      if (is_eos(id)) {
        result.stop_reason = StopReason::kEos;
        break;
      }
      sampler.accept(id);
      result.tokens.push_back(id);
      const std::string_view piece = stream.push(id, &text_stopped);
      result.text += piece;
      const bool go_on = on_token ? on_token(id, piece) : true;
      if (text_stopped) {
        result.stop_reason = StopReason::kStopString;
        break;
      }
      if (!go_on) {
        result.stop_reason = StopReason::kCallback;
        break;
      }
      if (result.timings.generated_tokens == options.max_new_tokens) break;
      if (session.remaining() == 0) {
        result.stop_reason = StopReason::kContextFull;
        break;
      }
      logits = session.decode(id);
    }
    bool tail_stopped = false;
    const std::string tail = stream.finish(&tail_stopped);
    if (tail_stopped) result.stop_reason = StopReason::kStopString;
    if (!tail.empty()) {
      result.text += tail;
      if (on_token) on_token(kNoToken, tail);
    }
    result.timings.generation_seconds = clock.seconds();
    return result;
  });
}

// ---- Generator: model + tokenizer + one session -------------------------------------------------

template <class Backend>
class BasicGenerator {
 public:
  using ModelType = BasicModel<Backend>;

  // n_ctx == 0: the model's max_position_embeddings, capped at 4096.
  BasicGenerator(std::shared_ptr<const ModelType> model, std::shared_ptr<const Tokenizer> tokenizer, index_t n_ctx = 0,
            GenerationDefaults defaults = {})
      : model_(std::move(model)),
        tokenizer_(std::move(tokenizer)),
        defaults_(std::move(defaults)),
        session_(model_, n_ctx == 0 ? default_n_ctx(model_) : n_ctx) {
    require(tokenizer_ != nullptr, ErrorCode::kInvalidArgument, "Generator: null tokenizer");
  }

  // Loads config.json + weights, tokenizer.json (+ tokenizer_config.json) and, if present,
  // generation_config.json from `folder`.
  static BasicGenerator from_folder(const std::filesystem::path& folder, index_t n_ctx = 0) {
    return catch_as_error("Generator::from_folder", [&]() -> BasicGenerator {
      auto model = load_model<Backend>(folder);
      auto tokenizer = std::make_shared<const Tokenizer>(io::load_tokenizer(folder));
      // A GGUF file has no generation_config.json: its defaults are the plain ones.
      return BasicGenerator(std::move(model), std::move(tokenizer), n_ctx, read_generation_config(folder));
    });
  }

  // Options as the model folder suggests them: its sampler settings and extra eos ids.
  GenerationOptions default_options() const {
    GenerationOptions o;
    o.sampler = defaults_.apply_to(o.sampler);
    o.eos_token_ids = defaults_.eos_token_ids;
    if (defaults_.max_new_tokens) o.max_new_tokens = *defaults_.max_new_tokens;
    return o;
  }

  // Starts a fresh sequence (the session is reset) from text or ids. The stop ids are the model
  // config's, generation_config.json's and options.eos_token_ids.
  GenerationResult generate(std::string_view prompt, const GenerationOptions& options, const TokenCallback& on_token = {}) {
    const std::vector<std::int32_t> ids = tokenizer_->encode(prompt, options.add_special_tokens);
    return generate(std::span<const std::int32_t>(ids), options, on_token);
  }
  GenerationResult generate(std::span<const std::int32_t> prompt, const GenerationOptions& options,
                            const TokenCallback& on_token = {}) {
    session_.reset();
    GenerationOptions o = options;
    o.eos_token_ids = merge_token_ids(defaults_.eos_token_ids, options.eos_token_ids);
    return moe::generate(session_, *tokenizer_, prompt, o, on_token);
  }

  BasicSession<Backend>& session() noexcept { return session_; }
  const ModelType& model() const noexcept { return *model_; }
  const std::shared_ptr<const ModelType>& model_ptr() const noexcept { return model_; }
  const Tokenizer& tokenizer() const noexcept { return *tokenizer_; }
  const std::shared_ptr<const Tokenizer>& tokenizer_ptr() const noexcept { return tokenizer_; }
  const GenerationDefaults& defaults() const noexcept { return defaults_; }

 private:
  static index_t default_n_ctx(const std::shared_ptr<const ModelType>& model) {
    require(model != nullptr, ErrorCode::kInvalidArgument, "Generator: null model");
    const index_t m = model->config().max_position_embeddings;
    return m == 0 ? 4096 : std::min<index_t>(m, 4096);
  }

  std::shared_ptr<const ModelType> model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  GenerationDefaults defaults_;
  BasicSession<Backend> session_;
};

using Generator = BasicGenerator<backend::cpu>;

// Compiled once for this project's own executables (instances/; see MOE_EXTERN_GRAPH in
// model/transformer.hpp).
#if defined(MOE_EXTERN_GRAPH)
extern template GenerationResult generate<backend::cpu>(BasicSession<backend::cpu>&, const Tokenizer&, std::span<const std::int32_t>,
                                const GenerationOptions&, const TokenCallback&);
extern template GenerationResult generate<backend::reference>(BasicSession<backend::reference>&, const Tokenizer&, std::span<const std::int32_t>,
                                const GenerationOptions&, const TokenCallback&);
#endif
#if defined(MOE_EXTERN_GRAPH_CUDA)
extern template GenerationResult generate<backend::cuda>(BasicSession<backend::cuda>&, const Tokenizer&, std::span<const std::int32_t>,
                                const GenerationOptions&, const TokenCallback&);
#endif

}  // namespace moe
